"""The facts about a dataset that travel with a trained model."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DatasetInfo:
    """The facts about a dataset that travel with a trained model into its checkpoint."""

    name: str
    classes: tuple[str, ...]
    colors: tuple[tuple[int, int, int], ...]  # RGB per class, for overlays and palette PNGs
    in_channels: int = 3
    ignore_index: int = 255  # mask value excluded from loss and metrics
    # Per band, the mean and std a model of this data normalises its input by: the training
    # split's, for images other than 8-bit RGB or grey (multi-band, 16-bit, float). None: the
    # encoder weights' own ImageNet statistics, which describe 8-bit colour photographs.
    input_mean: tuple[float, ...] | None = None
    input_std: tuple[float, ...] | None = None

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
            "input_mean": None if self.input_mean is None else list(self.input_mean),
            "input_std": None if self.input_std is None else list(self.input_std),
        }

    @classmethod
    def from_dict(cls, d: dict) -> DatasetInfo:
        return cls(
            name=d["name"],
            classes=tuple(d["classes"]),
            colors=tuple(tuple(c) for c in d["colors"]),
            in_channels=d["in_channels"],
            ignore_index=d["ignore_index"],
            # absent from the records of seglab before per-band statistics
            input_mean=_floats(d.get("input_mean")),
            input_std=_floats(d.get("input_std")),
        )


def _floats(values: list | None) -> tuple[float, ...] | None:
    return None if values is None else tuple(float(v) for v in values)
