"""Datasets as the engine sees them, and open_data: the one way in for every command."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

from seglab.data.check import CheckReport, check_source
from seglab.data.dataset_file import DatasetFile, dataset_file
from seglab.data.files import Pair, name_of
from seglab.data.info import DatasetInfo
from seglab.data.io import fits, read_image, read_raw_mask
from seglab.data.layouts import list_files
from seglab.data.masks import IGNORE, INVALID
from seglab.data.scan import Record, scan_files
from seglab.data.segmentation_dataset import SegmentationDataset, Transform
from seglab.data.source import DatasetSource, describe
from seglab.data.splits import assign_folds, group_of
from seglab.data.synthetic import SyntheticScenes
from seglab.errors import BadFileError, SeglabError, first_line

T = TypeVar("T")
FOLD_SEED = 0  # folds never follow a run's seed: every seed of a comparison sees the same folds


class FolderDataset(SegmentationDataset):
    """One split of a dataset on disk. A file that cannot be decoded when an item is loaded (it
    changed or broke after the data check) raises BadFileError naming the split, the file and the
    problem in one line, which the training and evaluation loops report as it is."""

    def __init__(self, source: DatasetSource, split: str, transform: Transform | None = None):
        self.info, self.encoding = source.info, source.encoding
        self.split = split
        self.pairs = _complete(source, split)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.pairs)

    def load(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        path = self.pairs[index][0]
        image = self._read("image", path, lambda: read_image(path, self.info.in_channels))
        return image, self.load_mask(index)

    def load_mask(self, index: int) -> torch.Tensor:
        """The item's mask alone (int64 classes), for measuring masks without reading images."""
        path = self.pairs[index][1]
        classes = self.encoding.decode(self._read("mask", path, lambda: read_raw_mask(path)))
        classes[classes == INVALID] = IGNORE  # the data check reports these before training
        return torch.from_numpy(classes)

    def _read(self, what: str, path: Path, read: Callable[[], T]) -> T:
        """``read()``, any failure of it a BadFileError: "train image PATH cannot be read: ..."."""
        try:
            return read()
        except Exception as err:
            problem = first_line(err)
            if isinstance(err, SeglabError):  # its message names the file already
                problem = problem.removeprefix(f"{path}: ")
            message = f"{self.split} {what} {path} cannot be read: {problem}"
            raise BadFileError(message) from err


class ItemsOf(SegmentationDataset):
    """Chosen items of other datasets as one dataset: a cross-validation fold of generated data,
    which has no files to list."""

    def __init__(
        self,
        info: DatasetInfo,
        items: Sequence[tuple[SegmentationDataset, int]],
        transform: Transform | None = None,
    ):
        self.info, self.items, self.transform = info, list(items), transform

    def __len__(self) -> int:
        return len(self.items)

    def load(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        dataset, item = self.items[index]
        return dataset.load(item)


@dataclass
class Data:
    """A dataset ready to train on: its facts, its checked splits and their statistics."""

    info: DatasetInfo
    make_split: Callable[[str, Transform | None], SegmentationDataset]
    report: CheckReport | None = None

    def split(self, name: str, transform: Transform | None = None) -> SegmentationDataset:
        return self.make_split(name, transform)

    def train_statistics(self, samples: int = 128) -> tuple[np.ndarray, np.ndarray]:
        """Per class: its pixels in the training split, and the pixels of the images it occurs in
        (what class weighting needs). Generated datasets are measured on ``samples`` items."""
        if self.report is not None:
            s = self.report.splits["train"]
            return s.class_pixels, s.pixels_of_images_with_class
        rows, image_pixels = self._measure("train", samples)
        return rows.sum(axis=0), ((rows > 0) * image_pixels[:, None]).sum(axis=0)

    def image_class_pixels(self, split: str = "train") -> np.ndarray:
        """Pixels of each class in each image of ``split``, images in the split's order
        (N x classes): what class-balanced sampling draws by. Generated datasets are measured."""
        if self.report is not None:
            return np.stack(self.report.splits[split].image_class_pixels)
        return self._measure(split)[0]

    def _measure(self, split: str, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Class pixels per image (N x classes) and each image's pixel count, read from the
        masks of the first ``limit`` items (all by default): for datasets without a scan."""
        dataset = self.split(split)
        rows, image_pixels = [], []
        for i in range(min(limit or len(dataset), len(dataset))):
            mask = dataset.load(i)[1].numpy()
            valid = mask[mask != self.info.ignore_index]
            rows.append(np.bincount(valid, minlength=self.info.num_classes))
            image_pixels.append(mask.size)
        return np.stack(rows), np.array(image_pixels)

    def groups(self, split: str) -> list[str] | None:
        """Each item's group, in the split's order, when the dataset declares groups (None when
        it does not): what a bootstrap over groups resamples. An item whose name has no group
        (a problem the data check reports) is a group of its own, named by its file."""
        if self.report is None or self.report.source.groups is None:
            return None
        pattern = self.report.source.groups
        return [
            group_of(p, pattern) or name_of(p).name for p in _complete(self.report.source, split)
        ]

    @property
    def problems(self) -> list[str]:
        return self.report.problems if self.report else []

    def require_clean(self, name: str, say: Callable[[str], None] | None = None) -> Data:
        """Raise if the data check found problems (listing them through ``say`` first)."""
        if self.problems:
            for problem in self.problems if say else []:
                say(problem)
            listed = ", listed above" if say else ""
            raise SeglabError(
                f"{name}: {len(self.problems)} problem(s) in the data{listed}; "
                f"fix them (see 'seglab data check {name}')"
            )
        return self

    def with_bands(self, in_channels: int, model: str, name: str) -> Data:
        """This data as a model of ``in_channels`` input bands takes it: as it is, or grey
        images repeated for a colour model and colour ones averaged for a grey one (see
        seglab.data.io.fits), the per-band statistics fitted alike. Anything else raises, naming
        ``model`` and the data's ``name``."""
        have = self.info.in_channels
        if have == in_channels:
            return self
        if not fits(have, in_channels):
            raise SeglabError(
                f"{model} takes {in_channels}-band images, {name} has {have}-band images (only "
                "grey images feed a colour model, repeated, and colour images a grey one, averaged)"
            )
        info = replace(
            self.info,
            in_channels=in_channels,
            input_mean=_fitted_statistic(self.info.input_mean, in_channels),
            input_std=_fitted_statistic(self.info.input_std, in_channels, spread=True),
        )

        def make_split(split: str, transform: Transform | None) -> SegmentationDataset:
            dataset = self.make_split(split, transform)
            dataset.info = info  # items are read, or fitted, to its bands
            return dataset

        return replace(self, info=info, make_split=make_split)

    def require_classes(self, classes: list[str], checkpoint: str, name: str) -> None:
        """Raise unless a model trained on ``classes`` can be scored on this data."""
        if list(classes) != list(self.info.classes):
            raise SeglabError(
                f"{checkpoint} was trained on {len(classes)} classes "
                f"({', '.join(classes[:4])}...), {name} has {self.info.num_classes} "
                f"({', '.join(self.info.classes[:4])}...)"
            )


def open_data(
    data: str, seed: int = 0, progress: bool = True, fold: tuple[int, int] | None = None
) -> Data:
    """``synthetic``, a dataset folder whose layout is recognised, or a dataset YAML file; folders
    are scanned and checked (cached per file) before anything trains on them. ``fold`` (I, K):
    cross-validation, training on the other folds of train+val pooled and validating on fold I
    (1-based); other splits (test) stay as they are."""
    spec = dataset_file(data)
    if spec.layout == "synthetic":
        return _synthetic(spec, seed, fold)
    listing = list_files(spec)
    records = scan_files(listing.root, listing.splits, progress=progress)
    source = describe(listing, spec, records)
    report = check_source(source, records)
    if fold is not None:
        source, report = _fold_source(source, records, report, fold)
    source = _with_input_statistics(source, report)
    return Data(source.info, lambda split, t: FolderDataset(source, split, t), report)


def _fitted_statistic(
    values: tuple[float, ...] | None, channels: int, spread: bool = False
) -> tuple[float, ...] | None:
    """A per-band mean (or, with ``spread``, std) for images fitted to ``channels`` bands: one
    band's repeated, or the average of several (stds averaged as variances)."""
    if values is None or len(values) == channels:
        return values
    if len(values) == 1:
        return values * channels
    array = np.asarray(values, dtype=np.float64)
    return (float(np.sqrt(np.mean(array**2)) if spread else np.mean(array)),)


def _with_input_statistics(source: DatasetSource, report: CheckReport) -> DatasetSource:
    """``source`` whose info carries the training split's per-band mean and std where a model
    should normalise its input by them: images of other than 1 or 3 bands, or not 8-bit.
    ImageNet's mean and std (the encoder weights' own, kept for 8-bit RGB and grey, as seglab's
    measured figures were made) describe photographs, not a near-infrared band or 12-bit values
    in a 16-bit file (all under 0.0625 once read)."""
    train = report.splits.get("train")
    statistics = train.band_statistics() if train is not None else None
    depths = {depth for s in report.splits.values() for depth in s.bit_depths}
    if statistics is None or (source.info.in_channels in (1, 3) and depths <= {"8-bit"}):
        return source
    mean, std = statistics
    info = replace(source.info, input_mean=tuple(mean), input_std=tuple(std))
    return replace(source, info=info)


def _complete(source: DatasetSource, split: str) -> list[Pair]:
    """The split's whole pairs (image and mask), the ones a FolderDataset holds, in its order."""
    return [(i, m) for i, m in source.pairs(split) if i is not None and m is not None]


def _fold_source(
    source: DatasetSource, records: dict[str, Record], report: CheckReport, fold: tuple[int, int]
) -> tuple[DatasetSource, CheckReport]:
    """The source with train+val re-split into fold I's train and val, grouped by the dataset's
    groups (else by image), and its check: the fold's own statistics, the data check's problems
    (the same files, so the same problems, whichever fold)."""
    pooled = [
        p for split in ("train", "val") if split in source.splits for p in _complete(source, split)
    ]
    pattern = source.groups
    groups = [None if pattern is None else group_of(p, pattern) for p in pooled]
    in_val = in_fold(groups, fold, source.where)
    splits = source.splits | {
        "train": [p for p, v in zip(pooled, in_val) if not v],
        "val": [p for p, v in zip(pooled, in_val) if v],
    }
    folded = replace(source, listing=replace(source.listing, splits=splits))
    return folded, replace(check_source(folded, records), problems=list(report.problems))


def in_fold(groups: Sequence[str | None], fold: tuple[int, int], where: str) -> list[bool]:
    """Whether each item is in fold I of K (1-based), items of a group together; the folds come
    from FOLD_SEED alone, never from a run's seed."""
    index, count = fold
    if count < 2 or not 1 <= index <= count:
        raise SeglabError(f"{where}: fold {index}/{count}: needs 2 <= K and 1 <= I <= K")
    try:
        folds = assign_folds(groups, count, FOLD_SEED)
    except SeglabError as err:
        raise SeglabError(f"{where}: fold {index}/{count}: {err}") from None
    return [f == index - 1 for f in folds]


def _synthetic(spec: DatasetFile, seed: int, fold: tuple[int, int] | None = None) -> Data:
    """The generated dataset: no files, nothing to check. With a fold, its train and val items
    pooled and split by item (they have no groups)."""

    def scenes(split: str, transform: Transform | None = None) -> SyntheticScenes:
        length = spec.lengths.get(split)
        return SyntheticScenes(split, spec.size, seed=seed, length=length, transform=transform)

    if fold is None:
        return Data(SyntheticScenes.info, scenes)
    items = [(split, i) for split in ("train", "val") for i in range(len(scenes(split)))]
    in_val = in_fold([None] * len(items), fold, spec.where)
    chosen = {
        "train": [item for item, v in zip(items, in_val) if not v],
        "val": [item for item, v in zip(items, in_val) if v],
    }

    def make_split(split: str, transform: Transform | None) -> SegmentationDataset:
        if split not in chosen:
            return scenes(split, transform)
        sources = {name: scenes(name) for name in ("train", "val")}
        picked = [(sources[name], i) for name, i in chosen[split]]
        return ItemsOf(SyntheticScenes.info, picked, transform)

    return Data(SyntheticScenes.info, make_split)


def pad_collate(ignore_index: int) -> Callable[[list], tuple[torch.Tensor, torch.Tensor]]:
    """Batches images of different sizes: each is padded at the bottom and right to the largest
    (image with 0, mask with ``ignore_index``, so padding never counts in loss or metrics)."""

    def collate(items: list) -> tuple[torch.Tensor, torch.Tensor]:
        height = max(image.shape[-2] for image, _ in items)
        width = max(image.shape[-1] for image, _ in items)
        images = torch.zeros(len(items), items[0][0].shape[0], height, width)
        masks = torch.full((len(items), height, width), ignore_index, dtype=torch.int64)
        for k, (image, mask) in enumerate(items):
            images[k, :, : image.shape[-2], : image.shape[-1]] = image
            masks[k, : mask.shape[-2], : mask.shape[-1]] = mask
        return images, masks

    return collate
