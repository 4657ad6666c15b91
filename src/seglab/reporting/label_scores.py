"""The scores of `seglab data review` (seglab.reporting.review says what they mean), arrays in
and numbers out, with no files and no model, so that each can be checked on constructed
probability maps; and the records they make (Suspect, Candidate, Review: what review.json
holds)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import cv2
import numpy as np

from seglab.data.info import DatasetInfo

REGIONS_KEPT = 5  # regions recorded per image, highest score first


@dataclass
class Region:
    """A connected region where the model contradicts the mask. ``box``: x0, y0, x1, y1 (x1, y1
    exclusive); classes by index; ``confidence``: the model's mean probability of its own class
    there; ``score``: its weights' sum over the image's labelled pixels, times ``confidence``."""

    box: tuple[int, int, int, int]
    area: int
    mask_class: int
    predicted_class: int
    confidence: float
    score: float


def disagreement(probs: np.ndarray, mask: np.ndarray, ignore_index: int) -> np.ndarray:
    """H x W weights: where the most probable class of ``probs`` (K x H x W) is not the mask's
    label, its probability minus the probability of the mask's label; 0 elsewhere, and on
    ignored pixels (or labels the model has no class for)."""
    classes = probs.shape[0]
    labelled = (mask != ignore_index) & (mask >= 0) & (mask < classes)
    label = np.where(labelled, mask, 0)
    own = probs.max(axis=0)
    of_mask = np.take_along_axis(probs, label[None], axis=0)[0]
    contradicted = labelled & (probs.argmax(axis=0) != label)
    return np.where(contradicted, own - of_mask, 0.0).astype(np.float32)


def connected_regions(where: np.ndarray) -> tuple[int, np.ndarray]:
    """(count + 1, H x W int32 labels) of the 8-connected regions of the True pixels of
    ``where``, 0 for the rest (OpenCV's connected components)."""
    count, labels = cv2.connectedComponents(where.astype(np.uint8), connectivity=8)
    return count, labels


def disagreement_regions(
    probs: np.ndarray,
    mask: np.ndarray,
    ignore_index: int,
    keep: int = REGIONS_KEPT,
    weights: np.ndarray | None = None,
) -> tuple[list[Region], np.ndarray]:
    """The ``keep`` highest-scoring regions of disagreement (see the module's rule) and the
    H x W map of every region (0: agreement), for outlining; ``weights``: disagreement()'s,
    when the caller has them already."""
    if weights is None:
        weights = disagreement(probs, mask, ignore_index)
    count, labels = connected_regions(weights > 0)
    labelled = max(int(((mask != ignore_index) & (mask < probs.shape[0])).sum()), 1)
    flat = labels.ravel()
    sums = np.bincount(flat, weights=weights.ravel(), minlength=count)[1:]
    areas = np.bincount(flat, minlength=count)[1:]
    confidences = np.bincount(flat, weights=probs.max(axis=0).ravel(), minlength=count)[1:]
    confidences /= np.maximum(areas, 1)
    # weighted by the confidence a second time: of two regions that contradict the mask as much,
    # the one the model is sure of is the likelier label error (on CamVid's corruptions it found
    # 23% of them in the top 10% where the sum alone found 16%; docs/benchmarks.md)
    scores = sums / labelled * confidences
    predicted = probs.argmax(axis=0)
    regions = []
    for index in np.argsort(-scores, kind="stable")[:keep]:
        inside = labels == index + 1
        rows, columns = np.nonzero(inside)
        regions.append(
            Region(
                box=(
                    int(columns.min()),
                    int(rows.min()),
                    int(columns.max()) + 1,
                    int(rows.max()) + 1,
                ),
                area=int(areas[index]),
                mask_class=_commonest(mask[inside]),
                predicted_class=_commonest(predicted[inside]),
                confidence=float(confidences[index]),
                score=float(scores[index]),
            )
        )
    return regions, labels


def _commonest(values: np.ndarray) -> int:
    return int(np.bincount(values.ravel().astype(np.int64)).argmax())


def image_score(regions: Sequence[Region]) -> float:
    """An image's suspicion: its highest region score (0 when the model agrees everywhere)."""
    return max((r.score for r in regions), default=0.0)


def class_contradiction(
    weights: np.ndarray, mask: np.ndarray, num_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per class: the summed disagreement weights on its labelled pixels, and its pixels."""
    labelled = (mask >= 0) & (mask < num_classes)
    label = mask[labelled].astype(np.int64)
    sums = np.bincount(label, weights=weights[labelled], minlength=num_classes)
    return sums, np.bincount(label, minlength=num_classes)


def margin_uncertainty(probs: np.ndarray) -> float:
    """1 minus the mean margin between the two most probable classes of ``probs``
    (K x H x W): 0 for a model sure of every pixel, 1 for a coin toss everywhere."""
    if probs.shape[0] < 2:
        return 0.0
    top2 = np.partition(probs, -2, axis=0)[-2:]
    return float(1.0 - (top2[1] - top2[0]).mean())


def entropy_uncertainty(probs: np.ndarray) -> float:
    """The mean per-pixel entropy of ``probs`` (K x H x W) over its largest, log K: 0 sure,
    1 uniform. Recorded beside the margin; the margin ranks."""
    if probs.shape[0] < 2:
        return 0.0
    entropy = -(probs * np.log(np.clip(probs, 1e-12, None))).sum(axis=0)
    return float(entropy.mean() / np.log(probs.shape[0]))


def pick_diverse(
    uncertainty: Sequence[float], embeddings: np.ndarray
) -> list[tuple[int, float, float]]:
    """Every image, in the order to label them: (index, distance to the nearest image chosen
    before it, score = uncertainty x that distance); the distance is the cosine distance of the
    embeddings centred on their mean, halved into [0, 1], and the first image's is 1. Greedy:
    each next pick has the highest score among the rest, so of two identical images the second
    comes after every different one that is at all uncertain."""
    values = np.asarray(uncertainty, dtype=np.float64)
    vectors = np.asarray(embeddings, dtype=np.float64).reshape(len(values), -1)
    # Centred first: pooled ReLU features all point the same way (cosine similarity near 1
    # for any two images); what tells images apart is how each differs from the set's mean.
    vectors = vectors - vectors.mean(axis=0)
    vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    nearest = np.ones(len(values))  # cosine distance to the nearest chosen one
    left = np.ones(len(values), dtype=bool)
    order = []
    for _ in range(len(values)):
        scores = np.where(left, values * nearest, -np.inf)
        pick = int(np.argmax(scores))
        order.append((pick, float(nearest[pick]), float(scores[pick])))
        left[pick] = False
        distance = np.clip((1.0 - vectors @ vectors[pick]) / 2, 0.0, 1.0)
        nearest = np.minimum(nearest, distance)
    return order


# --- what the review finds ----------------------------------------------------------------------


@dataclass
class Suspect:
    """A labelled image, scored. ``trained_on``: whether the model was trained on it (None: not
    known); ``per_class``: the contradicted share of each class present; ``pictures``: the
    files drawn for it (image, mask, prediction), relative to the review's folder."""

    name: str
    split: str
    image: str
    model: str  # the model that scored it
    trained_on: bool | None
    score: float
    disagreement: float  # every disagreeing pixel's weight over the labelled pixels
    regions: list[Region]
    per_class: dict[str, float]
    pictures: dict[str, str] = field(default_factory=dict)


@dataclass
class Candidate:
    """An unlabelled image, in the order to label them."""

    name: str
    image: str
    uncertainty: float
    entropy: float
    distance: float
    score: float
    pictures: dict[str, str] = field(default_factory=dict)


@dataclass
class Review:
    checkpoint: str
    data: str
    splits: list[str]
    info: DatasetInfo
    suspects: list[Suspect]
    candidates: list[Candidate] | None
    classes: dict[str, dict[str, float]]  # per class: pixels and the contradicted share
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        names = self.info.classes
        return {
            "checkpoint": self.checkpoint,
            "data": self.data,
            "splits": self.splits,
            "flip": True,
            "rule": RULE,
            "notes": self.notes,
            "classes": self.classes,
            "suspects": [
                _suspect_record(s, rank, names) for rank, s in enumerate(self.suspects, start=1)
            ],
            "label_next": None
            if self.candidates is None
            else [{"rank": rank, **asdict(c)} for rank, c in enumerate(self.candidates, start=1)],
        }


RULE = (
    "pixel weight: where the model's class is not the mask's, p(model's class) - p(mask's "
    "class), flip-averaged; region score: its weights' sum over the image's labelled pixels, "
    "times the model's mean probability of its own class in the region; image score: its "
    "highest region score. Label next: greedy by (1 - mean top-2 margin) x cosine distance "
    "(halved, of the encoder's pooled deepest features centred on their mean) to the nearest "
    "one chosen before."
)


def _suspect_record(s: Suspect, rank: int, names: Sequence[str]) -> dict[str, Any]:
    record = {"rank": rank, **asdict(s)}
    record["regions"] = [
        {
            **asdict(r),
            "mask_class": names[r.mask_class],
            "predicted_class": names[r.predicted_class],
        }
        for r in s.regions
    ]
    return record
