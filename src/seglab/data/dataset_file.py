"""What ``--data`` names, as one typed, checked DatasetFile: ``synthetic``, a dataset folder, or a
dataset YAML file.

A YAML file is checked whole before any image is read: an unknown key, or a value of the wrong
type or out of range, is one SeglabError line naming the file, the key, the bad value and what
is allowed.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seglab.config import read_yaml_mapping
from seglab.data.masks import IGNORE
from seglab.errors import SeglabError, first_line

RGB = tuple[int, int, int]

LAYOUT_NAMES = ("camvid", "pairs", "voc", "cityscapes", "synthetic")
MASK_ENCODINGS = ("index", "rgb", "binary")
SPLIT_NAMES = ("train", "val", "test")
# layouts of one file per image by their own naming, where band stacks do not apply
ONE_FILE_LAYOUTS = ("voc", "cityscapes")
ONE_FILE_LAYOUTS_NOTE = (
    "names one file per image; bands (a file per band) applies to layouts pairs and camvid "
    "and to splits given as folders"
)
BAND_PATTERN_ALLOWED = (
    "a path below an images folder holding {stem} and {band} once each, e.g. "
    "'{stem}_{band}' (tile_001_B02.tif) or '{band}/{stem}' (B02/tile_001.tif)"
)
SYNTHETIC_KEYS = ("size", "train", "val", "test")
FILE_KEYS = (
    "root",
    "name",
    "mask_encoding",
    "classes",
    "colors",
    "ignore_index",
    "ignore_colors",
    "val_ratio",
    "seed",
    "images",
    "masks",
    "splits",
    "groups",
    "split_by",
    "val_groups",
    "bands",
    "band_pattern",
)
KEYS = ("layout", *FILE_KEYS, *SYNTHETIC_KEYS)


@dataclass(frozen=True)
class ClassSpec:
    name: str
    color: RGB | None = None  # None: the default palette's colour


@dataclass(frozen=True)
class FolderSplit:
    """A split given as an image folder and a mask folder (files matched by stem)."""

    images: Path
    masks: Path


@dataclass(frozen=True)
class ListSplit:
    """A split given as a text file of names, one a line (VOC ImageSets style)."""

    path: Path


@dataclass(frozen=True)
class DatasetFile:
    """A dataset as its YAML file (or a bare folder, or ``synthetic``) describes it."""

    root: Path
    layout: str | None = None  # None: recognised from the folder
    path: Path | None = None  # the YAML file; None for a folder or a name given directly
    name: str | None = None
    mask_encoding: str | None = None  # None: the layout's own, or found from the masks
    classes: tuple[ClassSpec, ...] | None = None
    ignore_index: int = IGNORE
    ignore_colors: tuple[RGB, ...] = ()
    val_ratio: float = 0.2
    seed: int = 0
    images: str | None = None
    masks: str | None = None
    splits: Mapping[str, FolderSplit | ListSplit] = field(default_factory=dict)
    groups: re.Pattern[str] | None = None  # one capture group: a file's group from its name
    split_by: str | None = None  # "groups": train + val re-split so no group is in both
    val_groups: tuple[str, ...] = ()
    # each image as one file per band: the bands' names in channel order (empty: one file an
    # image), and where a band's file is (see seglab.data.files.BandSpec; None: found)
    bands: tuple[str, ...] = ()
    band_pattern: str | None = None
    size: tuple[int, int] = (128, 160)  # synthetic: image height and width
    lengths: Mapping[str, int] = field(default_factory=dict)  # synthetic: items per split

    @property
    def where(self) -> str:
        """What messages name: the YAML file, or the folder given directly."""
        return str(self.path or self.root)


def dataset_file(data: str | Path) -> DatasetFile:
    """``synthetic``, a dataset folder (layout recognised later) or a dataset YAML file."""
    if str(data) == "synthetic":
        return DatasetFile(root=Path("."), layout="synthetic")
    path = Path(data)
    if not path.exists():
        raise SeglabError(
            f"dataset {path} does not exist (give a folder, a YAML file or 'synthetic')"
        )
    if path.is_dir():
        return DatasetFile(root=path)
    if path.suffix.lower() not in (".yaml", ".yml"):
        raise SeglabError(f"{path}: a dataset file must be YAML (.yaml or .yml)")
    return read_dataset_file(path)


def read_dataset_file(path: Path) -> DatasetFile:
    """The YAML file parsed and checked; raises SeglabError on its first mistake."""
    spec = _load(path)
    fields = _Fields(path, spec)
    layout = fields.choice("layout", LAYOUT_NAMES, None)
    fields.check_keys(layout)
    if layout == "synthetic":
        return DatasetFile(
            root=path.parent,
            layout="synthetic",
            path=path,
            size=fields.size("size", (128, 160)),
            lengths={s: n for s in SPLIT_NAMES if (n := fields.count(s)) is not None},
        )
    if "val_groups" in spec and "val_ratio" in spec:
        raise SeglabError(f"{path}: val_groups and val_ratio both choose the val split; give one")
    root = (path.parent / fields.string("root", ".")).resolve()
    if not root.is_dir():
        raise SeglabError(f"{path}: root {root} is not a folder")
    return _checked(
        DatasetFile(
            root=root,
            layout=layout,
            path=path,
            name=fields.string("name", None),
            mask_encoding=fields.choice("mask_encoding", MASK_ENCODINGS, None),
            classes=fields.classes(),
            ignore_index=fields.integer("ignore_index", IGNORE, minimum=0),
            ignore_colors=tuple(fields.colors("ignore_colors")),
            val_ratio=fields.ratio("val_ratio", 0.2),
            seed=fields.integer("seed", 0),
            images=fields.string("images", None),
            masks=fields.string("masks", None),
            splits=fields.splits(root),
            groups=fields.pattern("groups"),
            split_by=fields.choice("split_by", ("groups",), None),
            val_groups=fields.group_names("val_groups"),
            bands=fields.band_names("bands"),
            band_pattern=fields.band_pattern("band_pattern"),
        )
    )


def _load(path: Path) -> dict:
    return read_yaml_mapping(path, "dataset file", "keys (root, layout, classes, ...)")


def _checked(spec: DatasetFile) -> DatasetFile:
    """Keys that only make sense together."""
    if spec.split_by == "groups" and spec.groups is None:
        raise SeglabError(
            f"{spec.path}: split_by: groups needs groups, a pattern whose capture group is a "
            "file's group (e.g. groups: '^(patient\\d+)_')"
        )
    if spec.val_groups and spec.split_by != "groups":
        raise SeglabError(f"{spec.path}: val_groups needs split_by: groups")
    if spec.band_pattern is not None and not spec.bands:
        raise SeglabError(f"{spec.path}: band_pattern needs bands (their names, in channel order)")
    if spec.bands and spec.layout in ONE_FILE_LAYOUTS:
        raise SeglabError(f"{spec.path}: bands: layout {spec.layout} {ONE_FILE_LAYOUTS_NOTE}")
    if spec.mask_encoding == "rgb" and spec.classes:
        for i, c in enumerate(spec.classes):
            if c.color is None:
                raise SeglabError(
                    f"{spec.path}: classes[{i}] ({c.name}) has no color; mask_encoding: rgb "
                    "needs the colour of every class"
                )
    return spec


def did_you_mean(word: str, choices: tuple[str, ...] | list[str], listed: bool = True) -> str:
    """'; did you mean X?' for a near miss, otherwise the list of what is allowed (unless the
    message lists it already)."""
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    if close:
        return f"; did you mean {close[0]}?"
    return f" (one of {', '.join(choices)})" if listed else ""


class _Fields:
    """Reads one key at a time from a parsed YAML mapping, checking its type and range."""

    def __init__(self, path: Path, spec: dict):
        self.path, self.spec = path, spec

    def fail(self, key: str, value: Any, allowed: str) -> SeglabError:
        return SeglabError(f"{self.path}: {key} must be {allowed}, got {_show(value)}")

    def check_keys(self, layout: str | None) -> None:
        for key in self.spec:
            if key not in KEYS:
                raise SeglabError(f"{self.path}: unknown key {key!r}{did_you_mean(key, KEYS)}")
        synthetic = layout == "synthetic"
        for key in self.spec:
            if synthetic and key in FILE_KEYS:
                raise SeglabError(
                    f"{self.path}: {key} does not apply to layout synthetic "
                    f"(its keys: {', '.join(SYNTHETIC_KEYS)})"
                )
            if not synthetic and key in SYNTHETIC_KEYS:
                raise SeglabError(f"{self.path}: {key} applies only to layout synthetic")

    def string(self, key: str, default: str | None) -> str | None:
        value = self.spec.get(key, default)
        if value is not None and not isinstance(value, str):
            raise self.fail(key, value, "a string")
        return value

    def choice(self, key: str, choices: tuple[str, ...], default: str | None) -> str | None:
        value = self.spec.get(key, default)
        if value is not None and value not in choices:
            raise SeglabError(
                f"{self.path}: {key} must be one of {', '.join(choices)}, got {_show(value)}"
                + (did_you_mean(value, choices, listed=False) if isinstance(value, str) else "")
            )
        return value

    def integer(self, key: str, default: int, minimum: int | None = None) -> int:
        value = self.spec.get(key, default)
        if not _is_int(value) or (minimum is not None and value < minimum):
            raise self.fail(key, value, "an integer" + (f" >= {minimum}" if minimum else ""))
        return value

    def count(self, key: str) -> int | None:
        return None if key not in self.spec else self.integer(key, 0, minimum=0)

    def ratio(self, key: str, default: float) -> float:
        value = self.spec.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
            raise self.fail(key, value, "a number between 0 and 1 (exclusive)")
        return float(value)

    def size(self, key: str, default: tuple[int, int]) -> tuple[int, int]:
        value = self.spec.get(key, list(default))
        if not (isinstance(value, list) and len(value) == 2 and all(_is_int(v) for v in value)):
            raise self.fail(key, value, "[height, width], two positive integers")
        if min(value) < 1:
            raise self.fail(key, value, "[height, width], two positive integers")
        return value[0], value[1]

    def color(self, key: str, value: Any) -> RGB:
        ok = isinstance(value, list | tuple) and len(value) == 3
        if not ok or not all(_is_int(v) and 0 <= v <= 255 for v in value):
            raise self.fail(key, value, "three integers 0-255 (R, G, B)")
        return value[0], value[1], value[2]

    def colors(self, key: str) -> list[RGB]:
        value = self.spec.get(key, [])
        if not isinstance(value, list):
            raise self.fail(key, value, "a list of colours, each three integers 0-255")
        return [self.color(f"{key}[{i}]", c) for i, c in enumerate(value)]

    def classes(self) -> tuple[ClassSpec, ...] | None:
        value = self.spec.get("classes")
        if value is None:
            if "colors" in self.spec:
                raise SeglabError(f"{self.path}: colors needs classes (their names)")
            return None
        if not isinstance(value, list) or not value:
            raise self.fail("classes", value, "a list of names or {name, color} mappings")
        entries = [self.class_entry(i, entry) for i, entry in enumerate(value)]
        if "colors" in self.spec:
            colors = self.colors("colors")
            if len(colors) != len(entries):
                allowed = f"{len(entries)} colours, one a class"
                raise self.fail("colors", self.spec["colors"], allowed)
            entries = [ClassSpec(e.name, c) for e, c in zip(entries, colors)]
        names = [e.name for e in entries]
        for name in names:
            if names.count(name) > 1:
                raise SeglabError(f"{self.path}: classes: {name!r} is named twice")
        return tuple(entries)

    def class_entry(self, i: int, entry: Any) -> ClassSpec:
        key = f"classes[{i}]"
        if isinstance(entry, str) or _is_int(entry):
            return ClassSpec(str(entry))
        if not isinstance(entry, dict) or "name" not in entry:
            raise self.fail(key, entry, "a name or a {name, color} mapping")
        for k in entry:
            if k not in ("name", "color"):
                raise SeglabError(
                    f"{self.path}: {key}: unknown key {k!r}{did_you_mean(k, ('name', 'color'))}"
                )
        name = entry["name"]
        if not (isinstance(name, str) or _is_int(name)):
            raise self.fail(f"{key}.name", name, "a string")
        color = entry.get("color")
        return ClassSpec(str(name), None if color is None else self.color(f"{key}.color", color))

    def splits(self, root: Path) -> dict[str, FolderSplit | ListSplit]:
        value = self.spec.get("splits", {})
        allowed = "a mapping of split names (train, val, test) to a list file or {images, masks}"
        if not isinstance(value, dict):
            raise self.fail("splits", value, allowed)
        splits: dict[str, FolderSplit | ListSplit] = {}
        for name, where in value.items():
            if name not in SPLIT_NAMES:
                raise SeglabError(
                    f"{self.path}: splits: unknown split {name!r}{did_you_mean(name, SPLIT_NAMES)}"
                )
            splits[name] = self.split(f"splits.{name}", where, root)
        return splits

    def split(self, key: str, where: Any, root: Path) -> FolderSplit | ListSplit:
        if isinstance(where, str):
            listing = (self.path.parent / where).resolve()
            if not listing.is_file():
                raise SeglabError(f"{self.path}: {key}: list file {listing} does not exist")
            return ListSplit(listing)
        if not (isinstance(where, dict) and set(where) == {"images", "masks"}):
            raise self.fail(key, where, "a list file, or {images: FOLDER, masks: FOLDER}")
        if not all(isinstance(v, str) for v in where.values()):
            raise self.fail(key, where, "{images: FOLDER, masks: FOLDER} with folder names")
        return FolderSplit(root / where["images"], root / where["masks"])

    def pattern(self, key: str) -> re.Pattern[str] | None:
        value = self.spec.get(key)
        if value is None:
            return None
        allowed = "a regular expression with one capture group (e.g. '^(patient\\d+)_')"
        if not isinstance(value, str):
            raise self.fail(key, value, allowed)
        try:
            compiled = re.compile(value)
        except re.error as err:
            raise SeglabError(
                f"{self.path}: {key} must be {allowed}, got {_show(value)} ({first_line(err)})"
            ) from None
        if compiled.groups != 1:
            raise SeglabError(
                f"{self.path}: {key} must be {allowed}, got {_show(value)} "
                f"({compiled.groups} capture groups)"
            )
        return compiled

    def group_names(self, key: str) -> tuple[str, ...]:
        value = self.spec.get(key, [])
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or (not value and key in self.spec):
            raise self.fail(key, value, "a list of group names")
        for name in value:
            if not isinstance(name, str):
                # YAML reads 0017 as the number 15: a group name must be quoted to keep its zeros
                raise self.fail(key, value, "a list of group names (quote them: '0017')")
        return tuple(value)

    def band_names(self, key: str) -> tuple[str, ...]:
        value = self.spec.get(key, [])
        allowed = "a list of band names in channel order, e.g. [B02, B03, B04, B08]"
        if not isinstance(value, list) or (not value and key in self.spec):
            raise self.fail(key, value, allowed)
        for name in value:
            if not isinstance(name, str):
                # YAML reads 08 as the number 8: a band name must be quoted to keep its zeros
                raise self.fail(key, value, f"{allowed} (quote numbers: '08')")
            if not name or "/" in name or "{" in name or "}" in name:
                raise self.fail(key, value, f"{allowed}, without '/', '{{' or '}}'")
            if value.count(name) > 1:
                raise SeglabError(f"{self.path}: {key}: {name!r} is named twice")
        return tuple(value)

    def band_pattern(self, key: str) -> str | None:
        value = self.spec.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self.fail(key, value, BAND_PATTERN_ALLOWED)
        fields = re.findall(r"\{[^{}]*\}", value)
        parts = value.split("/")
        if (
            sorted(fields) != ["{band}", "{stem}"]
            or value.count("{") != 2
            or value.count("}") != 2
            or value.startswith("/")
            or any(part in ("", ".", "..") for part in parts)
        ):
            raise self.fail(key, value, BAND_PATTERN_ALLOWED)
        return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)
