"""What every dataset gives the rest of seglab, and the one entry point that opens one by name."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import Dataset

from seglab.errors import SeglabError


@dataclass(frozen=True)
class DatasetInfo:
    """The facts about a dataset that travel with a trained model into its checkpoint."""

    name: str
    classes: tuple[str, ...]
    colors: tuple[tuple[int, int, int], ...]  # RGB per class, for overlays and palette PNGs
    in_channels: int = 3
    ignore_index: int = 255  # mask value excluded from loss and metrics

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "classes": list(self.classes),
            "colors": [list(c) for c in self.colors],
            "in_channels": self.in_channels,
            "ignore_index": self.ignore_index,
        }

    @classmethod
    def from_dict(cls, d: dict) -> DatasetInfo:
        return cls(
            name=d["name"],
            classes=tuple(d["classes"]),
            colors=tuple(tuple(c) for c in d["colors"]),
            in_channels=d["in_channels"],
            ignore_index=d["ignore_index"],
        )


class SegmentationDataset(Dataset):
    """Items are ``(image, mask)``: float C x H x W in [0, 1] and int64 H x W class indices."""

    info: DatasetInfo

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError


def open_dataset(data: str, split: str, seed: int = 0) -> SegmentationDataset:
    """The ``split`` of the dataset named by ``data`` (for now: ``synthetic``)."""
    from seglab.data.synthetic import SyntheticScenes

    if data == "synthetic":
        return SyntheticScenes(split, seed=seed)
    raise SeglabError(f"unknown dataset {data!r}: use 'synthetic'")
