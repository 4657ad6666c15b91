"""A dataset on disk, described whole: its pairs per split, its classes and how its masks encode
them. ``describe`` builds it in one step from the listing, the dataset file and the scan of the
files (a ``pairs`` folder without a YAML file takes its classes from the mask values the scan
found)."""

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
    """For a pairs folder without YAML: 0/255 masks are binary; otherwise values 0..K are classes
    (255 ignored). Colour masks need their colours from a YAML file."""
    masks = {path: r for path, r in records.items() if r["kind"] == "mask"}
    colour = next((path for path, r in masks.items() if r.get("rgb")), None)
    if colour is not None:
        raise SeglabError(
            f"{where}: masks are colour-coded RGB ({colour} is one); write a dataset YAML with "
            "mask_encoding: rgb and the classes' colours"
        )
    raw_values = {int(v) for r in masks.values() for v in r.get("values", {})}
    if raw_values <= {0, 255} and 255 in raw_values:
        return ClassTable(("background", "foreground"), default_colors(2), binary_encoding())
    top = max((v for v in raw_values if v != IGNORE), default=0)
    names = tuple(f"class{i}" for i in range(top + 1))
    encoding = index_encoding(len(names), ignore_values=[IGNORE])
    return ClassTable(names, default_colors(len(names)), encoding)
