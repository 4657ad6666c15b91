"""Datasets as the engine sees them, and open_data: the one way in for every command."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml
from torch.utils.data import Dataset

from seglab.data.check import CheckReport, check_source
from seglab.data.info import DatasetInfo
from seglab.data.io import read_image, read_raw_mask
from seglab.data.layouts import DatasetSource, open_source
from seglab.data.masks import IGNORE, INVALID
from seglab.data.scan import scan_source
from seglab.data.transforms import eval_transform
from seglab.errors import SeglabError

Transform = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


class SegmentationDataset(Dataset):
    """Items are ``(image, mask)``: float C x H x W in [0, 1] and int64 H x W class indices
    (``info.ignore_index`` where ignored), after the dataset's ``transform``."""

    info: DatasetInfo
    transform: Transform | None = None

    def load(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The item as stored: image uint8 or float, mask int64."""
        raise NotImplementedError

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self.load(index)
        return (self.transform or eval_transform)(image, mask)


class FolderDataset(SegmentationDataset):
    """One split of a dataset on disk."""

    def __init__(self, source: DatasetSource, split: str, transform: Transform | None = None):
        assert source.info is not None and source.encoding is not None, "scan the source first"
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
        dataset = self.split("train")
        pixels = np.zeros(self.info.num_classes, np.int64)
        with_class = np.zeros(self.info.num_classes, np.int64)
        for i in range(min(samples, len(dataset))):
            mask = dataset.load(i)[1].numpy()
            counts = np.bincount(
                mask[mask != self.info.ignore_index], minlength=self.info.num_classes
            )
            pixels += counts
            with_class += (counts > 0) * mask.size
        return pixels, with_class

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
    from seglab.data.synthetic import SyntheticScenes

    options = synthetic_options(data)
    if options is not None:
        return Data(
            SyntheticScenes.info,
            lambda split, t: SyntheticScenes(split, seed=seed, transform=t, **options(split)),
        )
    source = open_source(data)
    records = scan_source(source, progress=progress)
    report = check_source(source, records)
    assert source.info is not None
    return Data(source.info, lambda split, t: FolderDataset(source, split, t), report)


def synthetic_options(data: str):
    """For ``synthetic`` or a YAML file with ``layout: synthetic`` (keys ``size: [H, W]`` and
    ``train``/``val``/``test`` lengths): a function of the split giving SyntheticScenes options.
    None for any other dataset."""
    if data == "synthetic":
        return lambda split: {}
    path = Path(data)
    if path.suffix.lower() not in (".yaml", ".yml") or not path.is_file():
        return None
    try:
        spec = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError:
        return None  # open_source reports the file's problem
    if not isinstance(spec, dict) or spec.get("layout") != "synthetic":
        return None
    size = tuple(spec.get("size", (128, 160)))
    return lambda split: {"size": size, "length": spec.get(split)}


def open_dataset(data: str, split: str, seed: int = 0) -> SegmentationDataset:
    """One split, untransformed (evaluation view)."""
    return open_data(data, seed).split(split)


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
