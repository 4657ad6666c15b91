"""How a dataset's mask files encode classes, and their decoding to seglab's class-index masks.

Inside seglab a mask holds class indices 0..C-1 and ``IGNORE`` (255) for pixels to leave out of
loss and metrics. A file's raw value (index, id or packed colour) maps to one of those, or to
``INVALID`` when it is neither a class nor the ignore value: the data check reports those.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from seglab.data.io import pack_rgb, unpack_rgb

IGNORE = 255
INVALID = -1


@dataclass(frozen=True)
class MaskEncoding:
    """``index``: the raw value is looked up in ``mapping`` (raw -> class, or IGNORE); raw values
    not in it are INVALID. ``rgb``: the same, with raw values being packed RGB colours."""

    kind: str  # "index" | "rgb"
    mapping: Mapping[int, int] = field(default_factory=dict)

    @cached_property
    def _lookup(self) -> tuple[np.ndarray, np.ndarray]:
        """Raw values sorted, and their classes: built once, used for every mask decoded."""
        keys = np.array(sorted(self.mapping), dtype=np.int64)
        return keys, np.array([self.mapping[k] for k in keys], dtype=np.int64)

    def decode(self, raw: np.ndarray) -> np.ndarray:
        keys, values = self._lookup
        if not len(keys):
            return np.full(raw.shape, INVALID, dtype=np.int64)
        pos = np.clip(np.searchsorted(keys, raw), 0, len(keys) - 1)
        return np.where(keys[pos] == raw, values[pos], INVALID)

    def describe(self, raw_value: int) -> str:
        return f"colour {unpack_rgb(raw_value)}" if self.kind == "rgb" else f"value {raw_value}"


def index_encoding(num_classes: int, ignore_values: Iterable[int] = (IGNORE,)) -> MaskEncoding:
    """Masks that store class indices 0..C-1 and one or more ignore values."""
    mapping = {i: i for i in range(num_classes)}
    mapping.update({int(v): IGNORE for v in ignore_values})
    return MaskEncoding("index", mapping)


def binary_encoding() -> MaskEncoding:
    """Masks stored as 0/255: background 0, foreground 1."""
    return MaskEncoding("index", {0: 0, 255: 1})


def rgb_encoding(
    colors: Iterable[tuple[int, int, int]], ignore_colors: Iterable[tuple[int, int, int]] = ()
) -> MaskEncoding:
    """Colour-coded masks: class i is painted in ``colors[i]``."""
    mapping = {pack_rgb(c): i for i, c in enumerate(colors)}
    mapping.update({pack_rgb(c): IGNORE for c in ignore_colors})
    return MaskEncoding("rgb", mapping)
