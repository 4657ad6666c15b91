"""A dataset on disk, described whole: its pairs per split, its classes and how its masks encode
them. ``describe`` builds it in one step from the listing, the dataset file and the scan of the
files (a ``pairs`` folder without a YAML file takes its classes from the mask values the scan
found, by :func:`mask_class_count`)."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from seglab.data.classes import ClassTable, default_colors
from seglab.data.dataset_file import DatasetFile
from seglab.data.files import Pair
from seglab.data.info import DatasetInfo
from seglab.data.layouts import Listing
from seglab.data.masks import (
    IGNORE,
    MaskEncoding,
    binary_encoding,
    index_encoding,
    rgb_encoding,
)
from seglab.data.scan import Record
from seglab.errors import SeglabError

# Where the classes come from the mask values (a pairs folder without YAML): a raw value is a
# class's when it holds at least this share of all mask pixels ...
MIN_CLASS_SHARE = 0.001
# ... and the classes 0..K-1 run up such values with no more than this many missing in a row
MAX_CLASS_GAP = 4


@dataclass(frozen=True)
class DatasetSource:
    """A dataset on disk, listed and understood: its files (the listing), what its dataset file
    says (the spec), and the classes and mask encoding they resolve to."""

    listing: Listing
    spec: DatasetFile
    info: DatasetInfo
    encoding: MaskEncoding

    @property
    def root(self) -> Path:
        return self.listing.root

    @property
    def layout(self) -> str:
        return self.listing.layout

    @property
    def splits(self) -> dict[str, list[Pair]]:
        return self.listing.splits

    @property
    def groups(self) -> re.Pattern[str] | None:
        """A file's group from its name (None: no groups)."""
        return self.spec.groups

    @property
    def grouped_split(self) -> bool:
        """split_by: groups, so no group is in two splits."""
        return self.spec.split_by == "groups"

    @property
    def classes_inferred(self) -> bool:
        """Whether the classes were taken from the mask values (by :func:`classes_from_masks`:
        neither the dataset file nor the layout gives them)."""
        spec = self.spec
        return spec.classes is None and spec.mask_encoding is None and self.listing.classes is None

    @property
    def where(self) -> str:
        """The dataset file or folder that messages name."""
        return self.spec.where

    def pairs(self, split: str) -> list[Pair]:
        if split not in self.splits:
            raise SeglabError(f"{self.root}: no {split!r} split (has {', '.join(self.splits)})")
        return self.splits[split]


def describe(listing: Listing, spec: DatasetFile, records: dict[str, Record]) -> DatasetSource:
    """The complete description of a listed and scanned dataset."""
    table = class_table(listing, spec, records)
    name = spec.name or (listing.layout if table is listing.classes else listing.root.name)
    info = DatasetInfo(name, table.names, table.colors, image_channels(records), IGNORE)
    return DatasetSource(listing, spec, info, table.encoding)


def image_channels(records: dict[str, Record]) -> int:
    """The bands of the dataset's images: where grey and colour images mix, 3 (the grey ones are
    repeated to RGB); otherwise the count most images have (the first image's when all agree, as
    they must: the data check names every image with another count). 3 without images."""
    counts = Counter(r["bands"] for r in records.values() if r["kind"] == "image" and "bands" in r)
    if not counts:
        return 3
    if set(counts) <= {1, 3}:
        return max(counts)
    return counts.most_common(1)[0][0]


def class_table(listing: Listing, spec: DatasetFile, records: dict[str, Record]) -> ClassTable:
    """The dataset file's classes and encoding over the layout's own; without either, what the
    mask values say."""
    if spec.classes is None and spec.mask_encoding is None:
        return listing.classes or classes_from_masks(records, spec.where)
    names, colors = _names_and_colors(listing, spec)
    kind = spec.mask_encoding or "index"
    if kind == "rgb":
        encoding = rgb_encoding(colors, spec.ignore_colors)
    elif kind == "binary":
        encoding = binary_encoding()
    else:
        encoding = index_encoding(len(names), ignore_values=[spec.ignore_index])
    return ClassTable(names, colors, encoding)


def _names_and_colors(listing: Listing, spec: DatasetFile):
    if spec.classes is not None:
        fallback = default_colors(len(spec.classes))
        names = tuple(c.name for c in spec.classes)
        return names, tuple(c.color or fallback[i] for i, c in enumerate(spec.classes))
    if spec.mask_encoding == "binary":
        return ("background", "foreground"), default_colors(2)
    if listing.classes is not None:
        return listing.classes.names, listing.classes.colors
    raise SeglabError(f"{spec.where}: the dataset YAML must list its classes (key classes)")


def classes_from_masks(records: dict[str, Record], where: str) -> ClassTable:
    """For a pairs folder without YAML, the classes the mask values say (see
    :func:`mask_class_count`): 0..K-1 (255 ignored), or binary for masks of 0 and 255. Colour
    masks need their colours from a YAML file."""
    masks = {path: r for path, r in records.items() if r["kind"] == "mask"}
    colour = next((path for path, r in masks.items() if r.get("rgb")), None)
    if colour is not None:
        raise SeglabError(
            f"{where}: masks are colour-coded RGB ({colour} is one); write a dataset YAML with "
            "mask_encoding: rgb and the classes' colours"
        )
    pixels: Counter[int] = Counter()
    for r in masks.values():
        pixels.update({int(v): n for v, n in r.get("values", {}).items()})
    count = mask_class_count(pixels)
    if count <= 1 and pixels[IGNORE]:
        return ClassTable(("background", "foreground"), default_colors(2), binary_encoding())
    names = tuple(f"class{i}" for i in range(max(count, 1)))
    encoding = index_encoding(len(names), ignore_values=[IGNORE])
    return ClassTable(names, default_colors(len(names)), encoding)


def mask_class_count(pixels: Counter[int]) -> int:
    """K, for masks holding classes 0..K-1, from each raw value's pixels over all masks: the one
    place that decides it, from what the masks mostly hold, never from their largest value. A
    value is a class's when it holds at least MIN_CLASS_SHARE of the pixels; K runs up these
    values from 0 for as long as no more than MAX_CLASS_GAP values in a row are missing (a class
    or two absent is a dataset's own; 128 in 0/255 masks is not 127 absent classes). Values below
    K holding fewer pixels are classes still (the data check warns of them), the others but 255
    (ignored) are strays (anti-aliased edges, a stray edit), which the data check names as
    problems. :func:`classes_from_masks` takes K <= 1 in masks that also hold 255 as binary
    masks (0 background, 255 foreground)."""
    total = sum(pixels.values())
    held = sorted(v for v, n in pixels.items() if v != IGNORE and n >= MIN_CLASS_SHARE * total)
    last = -1
    for value in held:
        if value - last > MAX_CLASS_GAP + 1:
            break
        last = value
    return last + 1
