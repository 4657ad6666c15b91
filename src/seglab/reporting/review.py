"""`seglab data review`: which masks are probably wrong, and which unlabelled images to label
next, from a trained model's flip-averaged class probabilities (seglab.engine.inference, the
same inference as predict and evaluate).

**Suspect labels.** A labelled pixel counts against its mask where the model predicts another
class: its weight is the probability the model gives its own class minus the probability it
gives the mask's, in [0, 1] (a hesitant model weighs little, a confident one up to 1). Pixels of
the ignore value are not counted. Disagreeing pixels are grouped into connected regions
(8-connectivity); a region's score is the sum of its weights divided by the image's labelled
pixels, i.e. the share of the image the model confidently contradicts there. An image's score
is its highest region score: one compact, confidently contradicted region is what a wrong label
looks like, while the thin slivers along class borders where any model hesitates stay small.
Per class, the share of the class's labelled pixels the model contradicts (the same weights)
is recorded for each image and over the whole review. A model scores images it was trained on
too; each image says whether it was (it has then seen the label, so a contradiction there is
stronger evidence). Given several models (the fold runs of ``compare --folds``), each image is
scored by one that was not trained on it, where there is one: out-of-fold predictions, which
have not learnt the label in question.

**What to label next.** Each unlabelled image's uncertainty is 1 minus the mean margin between
its two most probable classes (0: sure everywhere, 1: a coin toss everywhere). Images are chosen
greedily: each next one maximises uncertainty x the distance, in the encoder's deepest features
averaged over the image (centred on the images' mean; cosine distance halved into [0, 1]), to the
nearest image already chosen (the first: uncertainty alone), so near-identical frames are not
chosen together.

The functions that compute scores take arrays and give numbers (no files, no model), so they can
be checked on constructed probability maps."""

from __future__ import annotations

import contextlib
import heapq
import html
import io
import json
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm.auto import tqdm

from seglab.config import parse_fold
from seglab.data.dataset import Data, open_data
from seglab.data.dataset_file import dataset_file
from seglab.data.info import DatasetInfo
from seglab.data.io import IMAGE_SUFFIXES
from seglab.data.segmentation_dataset import SegmentationDataset
from seglab.data.show import overlay
from seglab.data.synthetic import SPLITS as SYNTHETIC_SPLITS
from seglab.deployment.artifacts import load_segmenter, model_warnings, record_warnings
from seglab.deployment.formats import is_artifact
from seglab.deployment.measure import open_model_data
from seglab.deployment.predict import batch_probabilities, input_image, same_size_batches
from seglab.engine.checkpoint import Checkpoint
from seglab.engine.data_record import resolve_data
from seglab.engine.run_folder import model_file
from seglab.engine.segmenter import Segmenter, checkpoint_segmenter
from seglab.errors import SeglabError, SeglabWarning
from seglab.outputs import check_output_folder, write_atomic, write_text_atomic
from seglab.reporting.report import CSS

REGIONS_KEPT = 5  # regions recorded per image, highest score first
OUTLINE = (255, 0, 255)  # the disagreeing regions' outline: magenta, in no class palette here
PICTURE_WIDTH = 640  # pictures wider than this are drawn smaller on the page


# --- scores: arrays in, numbers out -------------------------------------------------------------


@dataclass
class Region:
    """A connected region where the model contradicts the mask. ``box``: x0, y0, x1, y1 (x1, y1
    exclusive); classes by index; ``confidence``: the model's mean probability of its own class
    there; ``score``: its weights' sum over the image's labelled pixels."""

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
    own = np.bincount(flat, weights=probs.max(axis=0).ravel(), minlength=count)[1:]
    predicted = probs.argmax(axis=0)
    regions = []
    for index in np.argsort(-sums, kind="stable")[:keep]:
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
                confidence=float(own[index] / areas[index]),
                score=float(sums[index] / labelled),
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
            "suspects": [_suspect_record(s, rank, names) for rank, s in _ranked(self.suspects)],
            "label_next": None
            if self.candidates is None
            else [{"rank": rank, **asdict(c)} for rank, c in _ranked(self.candidates)],
        }


RULE = (
    "pixel weight: where the model's class is not the mask's, p(model's class) - p(mask's "
    "class), flip-averaged; region score: its weights' sum over the image's labelled pixels; "
    "image score: its highest region score. Label next: greedy by (1 - mean top-2 margin) x "
    "cosine distance (halved, of the encoder's pooled deepest features centred on their mean) to "
    "the nearest one chosen before."
)


def _ranked(items: list) -> Iterator[tuple[int, Any]]:
    return enumerate(items, start=1)


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


# --- running it ---------------------------------------------------------------------------------


def review(
    checkpoint: str | os.PathLike | Sequence[str | os.PathLike],
    data: str,
    out: str | os.PathLike,
    *,
    unlabelled: str | os.PathLike | None = None,
    splits: Sequence[str] | None = None,
    top: int = 20,
    device: str = "auto",
    batch_size: int = 4,
    progress: bool = True,
) -> Review:
    """``seglab data review``: ``checkpoint`` (a checkpoint, a run folder or an exported model;
    or several, such as the fold runs of ``compare --folds``) run on every labelled image of
    ``splits`` of ``data`` (default: all its labelled splits) and, given ``unlabelled``, on that
    folder's images; writes ``out``/review.json, review.html and the pictures of the ``top``
    images of each list. ``out`` must not exist. With several models, each image is scored by
    the first one not trained on it (out of fold), where the records say so."""
    out = _new_folder(out)
    if top < 0 or batch_size < 1:
        raise SeglabError("review: --top must be at least 0 and the batch size at least 1")
    paths = [checkpoint] if isinstance(checkpoint, (str, os.PathLike)) else list(checkpoint)
    if not paths:
        raise SeglabError("review: give at least one checkpoint")
    images = _unlabelled_images(Path(unlabelled)) if unlabelled is not None else None
    scorers, notes = zip(*(_scorer(p, device) for p in paths))
    first = scorers[0]
    for other in scorers[1:]:
        if other.segmenter.info.classes != first.segmenter.info.classes:
            raise SeglabError(
                f"review: {other.name} has other classes than {first.name}: "
                f"{other.segmenter.info.classes} against {first.segmenter.info.classes}"
            )
    dataset = open_model_data(data, first.segmenter.info, first.name)
    labelled = _labelled_splits(data, dataset)
    chosen = list(splits) if splits else labelled
    for split in chosen:
        if split not in labelled:
            raise SeglabError(f"review: {data} has no labelled split {split!r}: {labelled}")
    scored = score_labelled(list(scorers), dataset, data, chosen, top, batch_size, progress)
    suspects, drawn, classes = scored
    candidates, drawn_next = None, []
    if images is not None:
        candidates, drawn_next = rank_unlabelled(first.segmenter, images, top, progress)
    if len(scorers) > 1:  # say which model each note is about
        notes = [[f"{s.name}: {line}" for line in said] for s, said in zip(scorers, notes)]
    notes = [line for said in notes for line in said]
    model = first.name if len(scorers) == 1 else ", ".join(s.name for s in scorers)
    found = Review(model, data, chosen, first.segmenter.info, suspects, candidates, classes, notes)
    _write(found, drawn + drawn_next, out)
    return found


@dataclass
class Scorer:
    """A model that scores labelled images, and the items (see _item_key) it was trained on
    (None: not known)."""

    segmenter: Segmenter
    trained: set[str] | None
    name: str


def _scorer(checkpoint: str | os.PathLike, device: str) -> tuple[Scorer, list[str]]:
    """The model in ``checkpoint`` (its own record's warnings said) with what it was trained on,
    and the notes on what is not known."""
    path = model_file(Path(checkpoint), "review: checkpoint")
    loaded = None if is_artifact(path) else Checkpoint.load(path)
    segmenter = (
        load_segmenter(path, device)
        if loaded is None
        else checkpoint_segmenter(loaded, device, name=str(path))
    )
    said = model_warnings(path) if loaded is None else record_warnings(str(path), loaded.metrics)
    for line in said:  # a checkpoint's own record: not loaded a second time
        warnings.warn(line, SeglabWarning, stacklevel=3)
    trained, notes = _trained_items(loaded)
    return Scorer(segmenter, trained, str(path)), notes


def scorer_for(key: str, scorers: Sequence[Scorer]) -> int:
    """The place of the model that scores the item ``key``: the first known not to have been
    trained on it (its predictions are out of fold), else the first whose training is not
    known, else the first."""
    for place, scorer in enumerate(scorers):
        if scorer.trained is not None and key not in scorer.trained:
            return place
    for place, scorer in enumerate(scorers):
        if scorer.trained is None:
            return place
    return 0


def _new_folder(out: str | os.PathLike) -> Path:
    out = Path(out)
    if out.exists():
        raise SeglabError(f"review: --out {out} already exists; review writes a new folder")
    return check_output_folder(out, "review: --out")


def _unlabelled_images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise SeglabError(f"review: --unlabelled {folder} is not a folder")
    found = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not found:
        raise SeglabError(f"review: --unlabelled {folder} holds no images")
    return found


def _labelled_splits(data: str, dataset: Data) -> list[str]:
    """The splits of ``data`` that hold labelled images, in train, val, test order."""
    if dataset.report is not None:
        return [s for s, found in dataset.report.splits.items() if found.pairs]
    lengths = dataset_file(data).lengths  # generated: the splits it sizes, else all
    return [s for s in SYNTHETIC_SPLITS if not lengths or s in lengths]


def _item_key(dataset: SegmentationDataset, data: str, split: str, index: int) -> str:
    """What names an item across datasets: its image file, resolved; a generated item by its
    dataset, split and place."""
    pairs = getattr(dataset, "pairs", None)
    if pairs is not None:
        return str(Path(pairs[index][0]).resolve())
    return f"{resolve_data(data)}#{split}/{index}"


def _trained_items(checkpoint: Checkpoint | None) -> tuple[set[str] | None, list[str]]:
    """The items the checkpoint's run trained on (its data's train split, or its fold's), or
    None and why not."""
    if checkpoint is None:
        return None, ["an exported model: which images it was trained on is not known"]
    config = checkpoint.config
    fold = parse_fold(config.fold) if config.fold else None
    try:
        recorded = open_data(config.data, progress=False, fold=fold)
        train = recorded.split("train")
    except SeglabError as err:
        return None, [f"whether the model was trained on an image is not known: {err}"]
    if fold is not None and getattr(train, "pairs", None) is None:
        return None, ["a fold of generated data: which images it was trained on is not known"]
    return {_item_key(train, config.data, "train", i) for i in range(len(train))}, []


@dataclass
class _Drawn:
    """An image of the page: what to draw and the files it goes to."""

    files: dict[str, str]  # picture kind -> file name in pictures/
    image: torch.Tensor
    mask: torch.Tensor | None
    predicted: torch.Tensor
    outline: np.ndarray | None


def score_labelled(
    scorers: Sequence[Scorer],
    dataset: Data,
    data: str,
    splits: list[str],
    top: int,
    batch_size: int,
    progress: bool,
) -> tuple[list[Suspect], list[_Drawn], dict[str, dict[str, float]]]:
    """Every labelled image of ``splits`` scored (each by the model scorer_for picks), highest
    first; the pictures of the ``top`` ones; the contradicted share of each class over all."""
    info = scorers[0].segmenter.info
    sums, pixels = np.zeros(info.num_classes), np.zeros(info.num_classes)
    suspects: list[Suspect] = []
    # Only the ``top`` highest scores so far keep what their pictures are drawn from (a min-heap
    # of score, place, picture), so memory does not grow with the dataset.
    kept: list[tuple[float, int, _Drawn]] = []
    assigned: list[list[tuple[str, SegmentationDataset, int, str]]] = [[] for _ in scorers]
    for split in splits:
        split_set = dataset.split(split)
        for index in range(len(split_set)):
            key = _item_key(split_set, data, split, index)
            assigned[scorer_for(key, scorers)].append((split, split_set, index, key))
    bar = tqdm(desc="review", unit="image", total=sum(map(len, assigned)), disable=not progress)
    for scorer, items in zip(scorers, assigned):
        for group in same_size_batches(_Items(items), batch_size):
            images = [image for _, image in group]
            _, probs = batch_probabilities(scorer.segmenter, images, flip=True)
            for ((split, split_set, index, key, mask), image), p in zip(group, probs):
                p, m = p.numpy(), mask.numpy()
                weights = disagreement(p, m, info.ignore_index)
                regions, labels = disagreement_regions(p, m, info.ignore_index, weights=weights)
                class_sums, class_pixels = class_contradiction(weights, m, info.num_classes)
                sums, pixels = sums + class_sums, pixels + class_pixels
                suspects.append(
                    Suspect(
                        name=_item_name(split_set, split, index),
                        split=split,
                        image=key,
                        model=scorer.name,
                        trained_on=None if scorer.trained is None else key in scorer.trained,
                        score=image_score(regions),
                        disagreement=float(weights.sum() / max(int(class_pixels.sum()), 1)),
                        regions=regions,
                        per_class={
                            info.classes[c]: float(class_sums[c] / class_pixels[c])
                            for c in np.nonzero(class_pixels)[0]
                        },
                    )
                )
                drawn = _Drawn({}, image, mask, torch.from_numpy(p.argmax(0)), labels > 0)
                heapq.heappush(kept, (suspects[-1].score, len(suspects) - 1, drawn))
                if len(kept) > top:
                    heapq.heappop(kept)
            bar.update(len(group))
    bar.close()
    pictures = {place: drawn for _, place, drawn in kept}
    order = sorted(range(len(suspects)), key=lambda i: -suspects[i].score)
    drawn_list = []
    for rank, place in _ranked(order):
        if place in pictures:
            suspect, picture = suspects[place], pictures[place]
            stem = f"{rank:03d}-{suspect.split}-{Path(suspect.name).stem}"
            picture.files = {k: f"{stem}_{k}.png" for k in ("image", "mask", "prediction")}
            suspect.pictures = {k: f"pictures/{f}" for k, f in picture.files.items()}
            drawn_list.append(picture)
    classes = {
        info.classes[c]: {"pixels": int(pixels[c]), "contradicted": float(sums[c] / pixels[c])}
        for c in np.nonzero(pixels)[0]
    }
    return [suspects[i] for i in order], drawn_list, classes


class _Items:
    """((split, split dataset, index, key, mask), image) of each of ``items`` (split, split
    dataset, index, key), loaded as they are reached."""

    def __init__(self, items: list[tuple[str, SegmentationDataset, int, str]]):
        self.items = items

    def __iter__(self) -> Iterator[tuple[tuple, torch.Tensor]]:
        for split, split_set, index, key in self.items:
            image, mask = split_set[index]
            yield (split, split_set, index, key, mask), image


def _item_name(split_set: SegmentationDataset, split: str, index: int) -> str:
    pairs = getattr(split_set, "pairs", None)
    return Path(pairs[index][0]).name if pairs is not None else f"{split}-{index:04d}"


def rank_unlabelled(
    segmenter: Segmenter, paths: list[Path], top: int, progress: bool
) -> tuple[list[Candidate], list[_Drawn]]:
    """The unlabelled images in the order to label them (see the module's rule), and the
    pictures of the first ``top``. An unreadable image is said and left out."""
    found: list[tuple[Path, float, float, np.ndarray, torch.Tensor, torch.Tensor]] = []
    for path in tqdm(paths, desc="review unlabelled", unit="image", disable=not progress):
        try:
            image = input_image(path, segmenter.info.in_channels)
        except SeglabError as err:
            warnings.warn(f"{err}; left out", SeglabWarning, stacklevel=2)
            continue
        with encoder_features(segmenter) as features:
            _, probs = batch_probabilities(segmenter, [image], flip=True)
        p = probs[0].numpy()
        embedding = _embedding(features, probs)
        found.append((path, margin_uncertainty(p), entropy_uncertainty(p), embedding, image, p))
    if not found:
        raise SeglabError("review: no image of --unlabelled could be read")
    order = pick_diverse([f[1] for f in found], np.stack([f[3] for f in found]))
    candidates, drawn = [], []
    for rank, (index, distance, score) in _ranked(order):
        path, uncertainty, entropy, _, image, p = found[index]
        candidate = Candidate(path.name, str(path), uncertainty, entropy, distance, score)
        if rank <= top:
            stem = f"next-{rank:03d}-{path.stem}"
            files = {k: f"{stem}_{k}.png" for k in ("image", "prediction")}
            candidate.pictures = {k: f"pictures/{f}" for k, f in files.items()}
            drawn.append(_Drawn(files, image, None, torch.from_numpy(p.argmax(0)), None))
        candidates.append(candidate)
    return candidates, drawn


@contextlib.contextmanager
def encoder_features(segmenter: Segmenter) -> Iterator[list[torch.Tensor]]:
    """While open, each forward pass of a PyTorch U-Net's encoder adds its deepest features,
    averaged over the image (N x D), to the list given; nothing for an exported model."""
    module = getattr(segmenter, "module", None)
    encoder = getattr(module, "encoder", None)
    found: list[torch.Tensor] = []
    if encoder is None:
        yield found
        return
    tap = module.taps[-1]

    def keep(_module, _inputs, output) -> None:
        found.append(output[tap].float().mean(dim=(2, 3)).cpu())

    handle = encoder.register_forward_hook(keep)
    try:
        yield found
    finally:
        handle.remove()


def _embedding(features: list[torch.Tensor], probs: torch.Tensor) -> np.ndarray:
    """One image's embedding: its encoder features averaged over the passes (the image and its
    mirror); for a model without them, its class probabilities pooled to a 4 x 4 grid."""
    if features:
        return torch.stack(features).mean(0)[0].numpy()
    return F.adaptive_avg_pool2d(probs, 4)[0].flatten().numpy()


# --- writing it ---------------------------------------------------------------------------------


def _write(found: Review, drawn: list[_Drawn], out: Path) -> None:
    (out / "pictures").mkdir(parents=True)
    for picture in drawn:
        for kind, name in picture.files.items():
            _save_png(out / "pictures" / name, _picture(picture, kind, found.info))
    write_text_atomic(out / "review.json", json.dumps(found.to_dict(), indent=2))
    write_text_atomic(out / "review.html", html_page(found))


def _picture(drawn: _Drawn, kind: str, info: DatasetInfo) -> Image.Image:
    """The image as it is, or with the mask or the prediction overlaid and the disagreeing
    regions outlined."""
    if kind == "image":  # every pixel ignored: the image as it is, in RGB uint8
        picture = overlay(drawn.image, torch.full(drawn.image.shape[-2:], 255), info)
    else:
        classes = drawn.mask if kind == "mask" else drawn.predicted
        picture = overlay(drawn.image, classes.long(), info)
    array = picture.permute(1, 2, 0).numpy().copy()
    if kind != "image" and drawn.outline is not None:
        array[outline(drawn.outline)] = OUTLINE
    image = Image.fromarray(array)
    if image.width > PICTURE_WIDTH:
        height = round(image.height * PICTURE_WIDTH / image.width)
        image = image.resize((PICTURE_WIDTH, height), Image.NEAREST)
    return image


def outline(region: np.ndarray) -> np.ndarray:
    """The border of ``region`` (H x W bool), two pixels wide: its pixels with a 4-neighbour
    outside it (the image's edge counts as outside), and their 4-neighbours inside."""
    inside = region.astype(np.uint8)
    edge = inside & ~cv2.erode(inside, CROSS, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    grown = cv2.dilate(edge, CROSS, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return (grown & inside).astype(bool)


CROSS = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))  # a pixel and its 4 neighbours


def _save_png(path: Path, image: Image.Image) -> None:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    data = buffer.getvalue()
    write_atomic(path, lambda f: f.write(data), len(data))


# --- the page -----------------------------------------------------------------------------------

PAGE_CSS = """
h1 { overflow-wrap: anywhere; }
table.sortable th[data-sort] { cursor: pointer; user-select: none; }
table.sortable th[data-dir=asc]::after { content: " \\25B2"; }
table.sortable th[data-dir=desc]::after { content: " \\25BC"; }
td.pictures { white-space: normal; text-align: left; border-top: none; }
div.panels { display: flex; flex-wrap: wrap; gap: .4rem; position: sticky; left: .6rem;
  max-width: calc(100vw - 3rem); }
figure { margin: 0; } figure img { width: 240px; max-width: calc(100vw - 4rem); }
figcaption { font-size: .8rem; color: #555; text-align: left; }
"""

# Click a column's header to sort by it (numbers by their data-value), again to reverse. Each
# item is a tbody of its row and, for the first items, the row of its pictures under it.
SORT_SCRIPT = """
document.querySelectorAll('table.sortable').forEach(function (table) {
  table.querySelectorAll('th[data-sort]').forEach(function (th) {
    th.addEventListener('click', function () {
      var column = th.cellIndex, numeric = th.dataset.sort === 'number';
      var dir = th.dataset.dir === 'desc' ? 'asc' : (th.dataset.dir === 'asc' ? 'desc'
        : (numeric ? 'desc' : 'asc'));
      table.querySelectorAll('th[data-sort]').forEach(function (h) { delete h.dataset.dir; });
      th.dataset.dir = dir;
      var items = Array.prototype.slice.call(table.tBodies);
      var value = function (item) {
        var cell = item.rows[0].cells[column];
        return numeric ? parseFloat(cell.dataset.value) : cell.textContent.trim();
      };
      items.sort(function (a, b) {
        var x = value(a), y = value(b);
        var order = numeric ? x - y : String(x).localeCompare(String(y));
        return dir === 'asc' ? order : -order;
      });
      items.forEach(function (item) { table.appendChild(item); });
    });
  });
});
"""


def html_page(found: Review) -> str:
    """One page that opens from the file system (pictures beside it in pictures/, referenced
    relatively) and reads on a phone: the viewport follows the device, tables scroll sideways."""
    esc = html.escape
    heading = f"Label review: {Path(found.checkpoint).name} on {found.data}"
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(heading)}</title><style>{CSS}{PAGE_CSS}</style></head>",
        f"<body><h1>{esc(heading)}</h1>",
        f"<p class='note'>Model {esc(found.checkpoint)}; splits {esc(', '.join(found.splits))}; "
        "probabilities averaged with the mirror image. Magenta outlines the regions where the "
        "model contradicts the mask.</p>",
        *(f"<p class='note'>{esc(note)}</p>" for note in found.notes),
        "<h2>Suspect labels</h2>",
        "<p class='note'>Highest score first: the share of the image in its most confidently "
        "contradicted region. Click a column to sort.</p>",
        _suspects_table(found),
        _classes_table(found),
    ]
    if found.candidates is not None:
        parts += [
            "<h2>What to label next</h2>",
            "<p class='note'>In the order to label them: uncertainty (1 - the mean margin "
            "between the two likeliest classes) x distance to the nearest image chosen before "
            "(encoder features), so near-identical frames are not chosen together.</p>",
            _candidates_table(found.candidates),
        ]
    parts.append(f"<script>{SORT_SCRIPT}</script></body></html>")
    return "\n".join(parts)


def _th(text: str, sort: str | None = None, direction: str | None = None) -> str:
    sort_attr = f" data-sort='{sort}'" if sort else ""
    dir_attr = f" data-dir='{direction}'" if direction else ""
    return f"<th{sort_attr}{dir_attr}>{html.escape(text)}</th>"


def _number(value: float, text: str) -> str:
    return f"<td data-value='{value:.9g}'>{html.escape(text)}</td>"


def _text(value: str) -> str:
    return f"<td>{html.escape(value)}</td>"


def _item(cells: list[str], pictures: dict[str, str] | None = None) -> str:
    """One item of a table: its row, and its pictures side by side in a row under it."""
    row = f"<tr class='row'>{''.join(cells)}</tr>"
    if not pictures:
        return f"<tbody>{row}</tbody>"
    figures = "".join(
        f"<figure><img alt='{html.escape(kind)}' src='{html.escape(src)}'>"
        f"<figcaption>{html.escape(kind)}</figcaption></figure>"
        for kind, src in pictures.items()
    )
    panels = f"<td class='pictures' colspan='{len(cells)}'><div class='panels'>{figures}</div></td>"
    return f"<tbody>{row}<tr>{panels}</tr></tbody>"


def _table(table_id: str, header: list[str], items: list[str]) -> str:
    return (
        f"<div class='scroll'><table id='{table_id}' class='sortable'><thead><tr>"
        + "".join(header)
        + "</tr></thead>"
        + "\n".join(items)
        + "</table></div>"
    )


def _suspects_table(found: Review) -> str:
    names = found.info.classes
    several = len({s.model for s in found.suspects}) > 1  # out-of-fold: say which model
    header = [
        _th("#", "number", "asc"),
        _th("image", "text"),
        _th("split", "text"),
        *([_th("scored by", "text")] if several else []),
        _th("trained on", "text"),
        _th("score", "number"),
        _th("class (mask → model)", "text"),
        _th("region (pixels)", "number"),
        _th("confidence", "number"),
    ]
    items = []
    for rank, s in _ranked(found.suspects):
        region = s.regions[0] if s.regions else None
        cells = [
            _number(rank, str(rank)),
            _text(s.name),
            _text(s.split),
            *([_text(s.model)] if several else []),
            _text({True: "yes", False: "no", None: "unknown"}[s.trained_on]),
            _number(s.score, f"{100 * s.score:.2f}%"),
        ]
        if region:
            cells += [
                _text(f"{names[region.mask_class]} → {names[region.predicted_class]}"),
                _number(region.area, str(region.area)),
                _number(region.confidence, f"{region.confidence:.2f}"),
            ]
        else:
            cells += [_text(""), _number(0, ""), _number(0, "")]
        items.append(_item(cells, s.pictures))
    return _table("suspects", header, items)


def _classes_table(found: Review) -> str:
    header = [_th("class", "text"), _th("pixels", "number"), _th("contradicted", "number")]
    items = [
        _item(
            [
                _text(name),
                _number(c["pixels"], str(c["pixels"])),
                _number(c["contradicted"], f"{100 * c['contradicted']:.2f}%"),
            ]
        )
        for name, c in found.classes.items()
    ]
    return (
        "<h2>Per class</h2><p class='note'>The share of each class's labelled pixels the model "
        "contradicts, weighted by its confidence.</p>" + _table("classes", header, items)
    )


def _candidates_table(candidates: list[Candidate]) -> str:
    header = [
        _th("#", "number", "asc"),
        _th("image", "text"),
        _th("uncertainty", "number"),
        _th("distance", "number"),
        _th("score", "number"),
    ]
    items = [
        _item(
            [
                _number(rank, str(rank)),
                _text(c.name),
                _number(c.uncertainty, f"{c.uncertainty:.3f}"),
                _number(c.distance, f"{c.distance:.3f}"),
                _number(c.score, f"{c.score:.3f}"),
            ],
            c.pictures,
        )
        for rank, c in _ranked(candidates)
    ]
    return _table("label-next", header, items)


def summary_lines(found: Review, out: str | os.PathLike, count: int = 5) -> list[str]:
    """What the command line prints: the first suspects and candidates, and where the rest is."""
    names = found.info.classes
    lines = [f"suspect labels ({len(found.suspects)} images, most suspect first):"]
    for rank, s in list(_ranked(found.suspects))[:count]:
        region = s.regions[0] if s.regions else None
        where = (
            f"{names[region.mask_class]} labelled where the model sees "
            f"{names[region.predicted_class]} ({region.area} px at {region.box[:2]})"
            if region
            else "no disagreement"
        )
        trained = {True: ", trained on", False: "", None: ""}[s.trained_on]
        if len({s.model for s in found.suspects}) > 1:
            trained += f", scored by {s.model}"
        lines.append(f"  {rank}. {s.split}/{s.name}{trained}: {100 * s.score:.2f}%, {where}")
    if found.candidates is not None:
        lines.append(f"label next ({len(found.candidates)} images, first first):")
        for rank, c in list(_ranked(found.candidates))[:count]:
            lines.append(
                f"  {rank}. {c.name}: uncertainty {c.uncertainty:.3f}, pick score {c.score:.3f}"
            )
    lines.append(f"wrote {Path(out) / 'review.html'} and review.json")
    return lines
