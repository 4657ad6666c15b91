"""`seglab data review`: which masks are probably wrong, and which unlabelled images to label
next, from a trained model's flip-averaged class probabilities (seglab.engine.inference, the
same inference as predict and evaluate).

**Suspect labels.** A labelled pixel counts against its mask where the model predicts another
class: its weight is the probability the model gives its own class minus the probability it
gives the mask's, in [0, 1] (a hesitant model weighs little, a confident one up to 1). Pixels of
the ignore value are not counted. Disagreeing pixels are grouped into connected regions
(8-connectivity); a region's score is the sum of its weights divided by the image's labelled
pixels (the share of the image the model confidently contradicts there) times the model's mean
probability of its own class in the region, so that of two regions that contradict the mask as
much, the one the model is sure of ranks first. An image's score is its highest region score:
one compact, confidently contradicted region is what a wrong label looks like, while the thin
slivers along class borders where any model hesitates stay small.
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

The scores are computed in seglab.reporting.label_scores (arrays in, numbers out: checked on
constructed probability maps); what the review writes, in seglab.reporting.review_page."""

from __future__ import annotations

import contextlib
import heapq
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from seglab.config import parse_fold
from seglab.data.dataset import Data, open_data
from seglab.data.dataset_file import dataset_file
from seglab.data.io import IMAGE_SUFFIXES
from seglab.data.segmentation_dataset import SegmentationDataset
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
from seglab.outputs import check_output_folder
from seglab.reporting.label_scores import (
    Candidate,
    Review,
    Suspect,
    class_contradiction,
    disagreement,
    disagreement_regions,
    entropy_uncertainty,
    image_score,
    margin_uncertainty,
    pick_diverse,
)
from seglab.reporting.review_page import Drawn, write_review

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
    write_review(found, drawn + drawn_next, out)
    return found


@dataclass
class Scorer:
    """A model that scores labelled images, and the items (see _item_key) it was trained on
    (None: not known)."""

    segmenter: Segmenter
    trained: set[str] | None
    name: str

    def trained_on(self, key: str) -> bool | None:
        """Whether the model was trained on the item ``key`` (None: not known)."""
        return None if self.trained is None else key in self.trained


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
        if scorer.trained_on(key) is False:
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


def score_labelled(
    scorers: Sequence[Scorer],
    dataset: Data,
    data: str,
    splits: list[str],
    top: int,
    batch_size: int,
    progress: bool,
) -> tuple[list[Suspect], list[Drawn], dict[str, dict[str, float]]]:
    """Every labelled image of ``splits`` scored (each by the model scorer_for picks), highest
    first; the pictures of the ``top`` ones; the contradicted share of each class over all."""
    info = scorers[0].segmenter.info
    sums, pixels = np.zeros(info.num_classes), np.zeros(info.num_classes)
    suspects: list[Suspect] = []
    # Only the ``top`` highest scores so far keep what their pictures are drawn from (a min-heap
    # of score, place, picture), so memory does not grow with the dataset.
    kept: list[tuple[float, int, Drawn]] = []
    assigned = _assign(scorers, dataset, data, splits)
    bar = tqdm(desc="review", unit="image", total=sum(map(len, assigned)), disable=not progress)
    for scorer, items in zip(scorers, assigned):
        for group, probs in _batch_probabilities(scorer, items, batch_size):
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
                        trained_on=scorer.trained_on(key),
                        score=image_score(regions),
                        disagreement=float(weights.sum() / max(int(class_pixels.sum()), 1)),
                        regions=regions,
                        per_class={
                            info.classes[c]: float(class_sums[c] / class_pixels[c])
                            for c in np.nonzero(class_pixels)[0]
                        },
                    )
                )
                drawn = Drawn({}, image, mask, torch.from_numpy(p.argmax(0)), labels > 0)
                heapq.heappush(kept, (suspects[-1].score, len(suspects) - 1, drawn))
                if len(kept) > top:
                    heapq.heappop(kept)
            bar.update(len(group))
    bar.close()
    pictures = {place: drawn for _, place, drawn in kept}
    order = sorted(range(len(suspects)), key=lambda i: -suspects[i].score)
    drawn_list = []
    for rank, place in enumerate(order, start=1):
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


def _assign(
    scorers: Sequence[Scorer], dataset: Data, data: str, splits: list[str]
) -> list[list[tuple[str, SegmentationDataset, int, str]]]:
    """Per scorer, the items (split, split dataset, index, key) scorer_for gives it."""
    assigned: list[list[tuple[str, SegmentationDataset, int, str]]] = [[] for _ in scorers]
    for split in splits:
        split_set = dataset.split(split)
        for index in range(len(split_set)):
            key = _item_key(split_set, data, split, index)
            assigned[scorer_for(key, scorers)].append((split, split_set, index, key))
    return assigned


def _batch_probabilities(
    scorer: Scorer, items: list[tuple[str, SegmentationDataset, int, str]], batch_size: int
) -> Iterator[tuple[list[tuple[tuple, torch.Tensor]], torch.Tensor]]:
    """(batch of _Items' entries, their flip-averaged probabilities) of ``items``, by
    ``scorer``'s model, in batches of up to ``batch_size`` images of one size."""
    for group in same_size_batches(_Items(items), batch_size):
        _, probs = batch_probabilities(scorer.segmenter, [image for _, image in group], flip=True)
        yield group, probs


def out_of_fold_probabilities(
    checkpoints: Sequence[str | os.PathLike],
    data: str,
    split: str = "train",
    device: str = "auto",
    batch_size: int = 4,
) -> Iterator[tuple[str, np.ndarray, bool | None]]:
    """(image key, K x H x W flip-averaged probabilities, whether its model trained on it) of
    every image of ``split`` of ``data``, each from the model the review would score it with:
    what the suspect scores are computed from, for studies of their rule that corrupt masks
    afresh without running the models again (benchmarks/review_rule_seeds.py)."""
    scorers = [_scorer(p, device)[0] for p in checkpoints]
    dataset = open_model_data(data, scorers[0].segmenter.info, scorers[0].name)
    for scorer, items in zip(scorers, _assign(scorers, dataset, data, [split])):
        for group, probs in _batch_probabilities(scorer, items, batch_size):
            for ((_, _, _, key, _), _), p in zip(group, probs):
                yield key, p.numpy(), scorer.trained_on(key)


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
) -> tuple[list[Candidate], list[Drawn]]:
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
    for rank, (index, distance, score) in enumerate(order, start=1):
        path, uncertainty, entropy, _, image, p = found[index]
        candidate = Candidate(path.name, str(path), uncertainty, entropy, distance, score)
        if rank <= top:
            stem = f"next-{rank:03d}-{path.stem}"
            files = {k: f"{stem}_{k}.png" for k in ("image", "prediction")}
            candidate.pictures = {k: f"pictures/{f}" for k, f in files.items()}
            drawn.append(Drawn(files, image, None, torch.from_numpy(p.argmax(0)), None))
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


def summary_lines(found: Review, out: str | os.PathLike, count: int = 5) -> list[str]:
    """What the command line prints: the first suspects and candidates, and where the rest is."""
    names = found.info.classes
    lines = [f"suspect labels ({len(found.suspects)} images, most suspect first):"]
    for rank, s in list(enumerate(found.suspects, start=1))[:count]:
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
        for rank, c in list(enumerate(found.candidates, start=1))[:count]:
            lines.append(
                f"  {rank}. {c.name}: uncertainty {c.uncertainty:.3f}, pick score {c.score:.3f}"
            )
    lines.append(f"wrote {Path(out) / 'review.html'} and review.json")
    return lines
