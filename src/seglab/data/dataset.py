"""Datasets as the engine sees them, and open_data: the one way in for every command."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from seglab.data.check import CheckReport, check_source
from seglab.data.dataset_file import DatasetFile, dataset_file
from seglab.data.info import DatasetInfo
from seglab.data.io import read_image, read_raw_mask
from seglab.data.layouts import list_files
from seglab.data.masks import IGNORE, INVALID
from seglab.data.scan import scan_files
from seglab.data.segmentation_dataset import SegmentationDataset, Transform
from seglab.data.source import DatasetSource, describe
from seglab.data.synthetic import SyntheticScenes
from seglab.errors import SeglabError


class FolderDataset(SegmentationDataset):
    """One split of a dataset on disk."""

    def __init__(self, source: DatasetSource, split: str, transform: Transform | None = None):
        self.info, self.encoding = source.info, source.encoding
        self.pairs = [(i, m) for i, m in source.pairs(split) if i is not None and m is not None]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.pairs)

    def load(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image_path, mask_path = self.pairs[index]
        image = read_image(image_path, self.info.in_channels)
        classes = self.encoding.decode(read_raw_mask(mask_path))
        classes[classes == INVALID] = IGNORE  # the data check reports these before training
        return image, torch.from_numpy(classes)


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

    def require_classes(self, classes: list[str], checkpoint: str, name: str) -> None:
        """Raise unless a model trained on ``classes`` can be scored on this data."""
        if list(classes) != list(self.info.classes):
            raise SeglabError(
                f"{checkpoint} was trained on {len(classes)} classes "
                f"({', '.join(classes[:4])}...), {name} has {self.info.num_classes} "
                f"({', '.join(self.info.classes[:4])}...)"
            )


def open_data(data: str, seed: int = 0, progress: bool = True) -> Data:
    """``synthetic``, a dataset folder whose layout is recognised, or a dataset YAML file; folders
    are scanned and checked (cached per file) before anything trains on them."""
    spec = dataset_file(data)
    if spec.layout == "synthetic":
        return _synthetic(spec, seed)
    listing = list_files(spec)
    records = scan_files(listing.root, listing.splits, progress=progress)
    source = describe(listing, spec, records)
    report = check_source(source, records)
    return Data(source.info, lambda split, t: FolderDataset(source, split, t), report)


def _synthetic(spec: DatasetFile, seed: int) -> Data:
    """The generated dataset: no files, nothing to check."""

    def make_split(split: str, transform: Transform | None) -> SegmentationDataset:
        return SyntheticScenes(
            split, spec.size, seed=seed, length=spec.lengths.get(split), transform=transform
        )

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
