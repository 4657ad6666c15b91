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
