"""What every format reads into (items of shapes with labels), and what is done with it: classes
resolved through an optional label map, shapes drawn into class-index masks under an overlap
rule, and the ``pairs`` layout written with its dataset YAML and an ``import.json`` record of
everything that could not be mapped.

Choices, stated once here and in every import's record:

- Classes: background is 0, then the source's classes in its own order (COCO category ids, CVAT's
  label list, YOLO's names; LabelMe declares none: its labels sorted by name). A label named
  ``background`` or ``_background_`` (LabelMe's) is class 0.
- A label map (``{source_name: target_name}``) renames and merges; a target ``ignore`` draws the
  shape as the ignore value 255, ``background`` as 0. Given a map, a label it does not name is
  unknown; so is a class id the source does not declare. Unknown labels are drawn as ignore (255):
  their pixels teach neither their class nor background. Both are counted and named.
- Overlap: ``later`` (default) draws the shapes in the source's order, the later on top (CVAT:
  by z_order first); ``smaller`` draws the larger first, so the smaller one is on top. Pixels
  claimed by shapes of two different classes are counted.
- Images on which nothing could be drawn (no shapes, or only shapes of other kinds) are left out
  and counted, unless ``keep_empty``: then they are kept as all background.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from seglab.config import read_yaml_mapping
from seglab.data.classes import default_colors
from seglab.data.io import IMAGE_SUFFIXES, is_tiff, orientation, tiff_size
from seglab.data.masks import IGNORE
from seglab.errors import SeglabError, first_line

OVERLAP_RULES = {
    "later": "the later annotation on top",
    "smaller": "the smaller area on top",
}
BACKGROUND_NAMES = ("background", "_background_")
IGNORE_TARGET = "ignore"
SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
}
TURNED = (5, 6, 7, 8)  # EXIF orientations that swap width and height

# A shape's pixels on an image of (height, width)
Draw = Callable[[int, int], np.ndarray]


@dataclass
class Shape:
    """One drawable annotation: its label as the source names it, and how to draw it."""

    label: str
    draw: Draw
    order: tuple[int, ...] = (0,)  # drawing order under the rule ``later`` (ascending)


@dataclass
class Item:
    """One image of the source with its drawable shapes and what was not drawable."""

    image: Path
    split: str | None = None
    shapes: list[Shape] = field(default_factory=list)
    other: Counter = field(default_factory=Counter)  # shapes of other kinds, by kind
    size: tuple[int, int] | None = None  # (height, width) as the source declares it


@dataclass
class Source:
    """A labelling tool's export, read: its items, its declared labels (in its order) and the
    problems met while reading it (each one line naming the file)."""

    format: str
    path: Path
    items: list[Item]
    labels: list[str] | None  # None: the format declares none (LabelMe)
    problems: list[str] = field(default_factory=list)


@dataclass
class ImportReport:
    """What an import did, as ``seglab data import`` prints it and ``import.json`` records it."""

    out: Path
    format: str
    source: Path
    classes: list[str]
    overlap: str
    keep_empty: bool
    images: Counter  # written, per split ("" when the source has none)
    empty: list[str]  # images with nothing drawable (left out unless keep_empty)
    unknown: Counter  # unknown labels: shapes per label
    ignored: Counter  # shapes drawn as ignore through the label map, per label
    other: Counter  # shapes of other kinds, per kind
    overlap_pixels: int
    overlap_images: int
    problems: list[str]  # images left out: missing, unreadable, of another size, ...
    renamed: list[str]
    unused_map: list[str]
    label_map: str | None
    notes: list[str] = field(default_factory=list)

    def record(self) -> dict:
        return {
            "format": self.format,
            "source": str(self.source),
            "label_map": self.label_map,
            "classes": self.classes,
            "overlap": {
                "rule": self.overlap,
                "meaning": OVERLAP_RULES[self.overlap],
                "pixels": self.overlap_pixels,
                "images": self.overlap_images,
            },
            "images": dict(self.images),
            "empty_images": {
                "kept_as_background": self.keep_empty,
                "count": len(self.empty),
                "names": self.empty,
            },
            "unknown_labels": {
                "drawn_as": IGNORE,
                "shapes": dict(self.unknown),
            },
            "ignored_by_label_map": dict(self.ignored),
            "other_shapes": dict(self.other),
            "left_out": self.problems,
            "renamed": self.renamed,
            "label_map_entries_not_used": self.unused_map,
            "notes": self.notes,
        }

    def lines(self) -> list[str]:
        splits = ", ".join(f"{s} {n}" for s, n in sorted(self.images.items()) if s)
        total = sum(self.images.values())
        lines = [
            f"imported {total} images from {self.format} {self.source}"
            + (f" ({splits})" if splits else "")
            + f": {len(self.classes)} classes ({', '.join(self.classes)})"
        ]
        if self.empty:
            done = "kept as all background" if self.keep_empty else "left out (--keep-empty keeps)"
            lines.append(f"  {_count(len(self.empty), 'image')} without annotations: {done}")
        if self.unknown:
            why = "not in the label map" if self.label_map else "not declared by the source"
            lines.append(
                f"  unknown labels ({why}), drawn as ignore ({IGNORE}): {_counted(self.unknown)}"
            )
        if self.ignored:
            lines.append(f"  drawn as ignore ({IGNORE}) by the label map: {_counted(self.ignored)}")
        if self.other:
            lines.append(f"  shapes of other kinds, not drawn: {_counted(self.other)}")
        rule = f"--overlap {self.overlap}: {OVERLAP_RULES[self.overlap]}"
        if self.overlap_pixels:
            lines.append(
                f"  overlaps: {_count(self.overlap_pixels, 'pixel')} in "
                f"{_count(self.overlap_images, 'image')} claimed by two classes ({rule})"
            )
        else:
            lines.append(f"  overlaps: none between classes ({rule})")
        if self.unused_map:
            lines.append(f"  label map entries not used: {', '.join(self.unused_map)}")
        lines += [f"  note: {n}" for n in self.notes]
        lines += [f"  renamed: {r}" for r in self.renamed]
        lines += [f"  left out: {p}" for p in self.problems]
        lines.append(f"wrote {self.out}/ (images/, masks/, dataset.yaml, import.json)")
        return lines


def json_documents(files: list[Path], problems: list[str]) -> list[tuple[Path, object]]:
    """Each file parsed as JSON, with its path; one that cannot be read or parsed is a problem
    naming it, and is left out."""
    documents = []
    for path in files:
        try:
            documents.append((path, json.loads(path.read_text())))
        except (OSError, ValueError) as err:
            problems.append(f"{path}: not readable JSON ({first_line(err)})")
    return documents


def read_label_map(path: str | os.PathLike) -> dict[str, str]:
    """A label map file: a YAML mapping of source label names to class names (or ``ignore``)."""
    loaded = read_yaml_mapping(path, "label map", "source labels to class names")
    label_map = {}
    for key, value in loaded.items():
        if not isinstance(value, str | int) or isinstance(value, bool):
            raise SeglabError(
                f"{path}: {key!r} must map to a class name (or {IGNORE_TARGET}), got {value!r}"
            )
        label_map[str(key)] = str(value)
    return label_map


def write_import(
    source: Source,
    out: str | os.PathLike,
    label_map: dict[str, str] | None = None,
    overlap: str = "later",
    keep_empty: bool = False,
    link: bool = False,
    label_map_path: str | None = None,
) -> ImportReport:
    """Draw ``source`` into the ``pairs`` layout at ``out`` (a folder that must not exist yet),
    with ``dataset.yaml`` and ``import.json``. Written to a hidden sibling folder first, then
    renamed: an import that fails leaves nothing behind."""
    out = Path(out)
    if out.exists():
        raise SeglabError(f"{out} already exists; import writes a new folder, give another --out")
    if overlap not in OVERLAP_RULES:
        raise SeglabError(f"overlap rule must be one of {', '.join(OVERLAP_RULES)}, got {overlap}")
    classes, class_of = _classes(source, label_map)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        report = _write(source, work, classes, class_of, overlap, keep_empty, link)
        report.out, report.label_map = out, label_map_path
        report.unused_map = sorted(set(label_map or {}) - _seen_labels(source))
        _write_yaml(work / "dataset.yaml", report)
        (work / "import.json").write_text(json.dumps(report.record(), indent=2) + "\n")
        work.rename(out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return report


def _seen_labels(source: Source) -> set[str]:
    return {s.label for item in source.items for s in item.shapes} | set(source.labels or ())


def _classes(
    source: Source, label_map: dict[str, str] | None
) -> tuple[list[str], Callable[[str], int | None]]:
    """The class names (background first) and each source label's value: a class index, IGNORE,
    or None for an unknown label (drawn as IGNORE, and reported)."""
    declared = source.labels
    if declared is None:  # LabelMe: every label is known, sorted by name
        declared = sorted(_seen_labels(source))
    targets: dict[str, str] = {}
    for label in declared:
        if label_map is not None:
            if label in label_map:
                targets[label] = label_map[label]
        else:
            targets[label] = label
    classes = ["background"]
    for target in targets.values():
        if target not in classes and target != IGNORE_TARGET and target not in BACKGROUND_NAMES:
            classes.append(target)
    if label_map is not None:  # a map may name labels the source did not declare
        for label, target in label_map.items():
            targets.setdefault(label, target)
            if target not in classes and target != IGNORE_TARGET and target not in BACKGROUND_NAMES:
                classes.append(target)

    def class_of(label: str) -> int | None:
        target = targets.get(label)
        if target is None:
            return None
        if target == IGNORE_TARGET:
            return IGNORE
        return 0 if target in BACKGROUND_NAMES else classes.index(target)

    if len(classes) > IGNORE:
        raise SeglabError(f"{source.path}: {len(classes)} classes; masks hold at most {IGNORE}")
    return classes, class_of


def _write(source, work, classes, class_of, overlap, keep_empty, link) -> ImportReport:
    report = ImportReport(
        out=work,
        format=source.format,
        source=source.path,
        classes=classes,
        overlap=overlap,
        keep_empty=keep_empty,
        images=Counter(),
        empty=[],
        unknown=Counter(),
        ignored=Counter(),
        other=Counter(),
        overlap_pixels=0,
        overlap_images=0,
        problems=list(source.problems),
        renamed=[],
        unused_map=[],
        label_map=None,
    )
    splits = {item.split for item in source.items}
    one_split = len(splits) == 1  # one split (or none): the pairs layout splits 80/20 itself
    if one_split and None not in splits:
        report.notes.append(
            f"the source has one split ({splits.pop()}): seglab splits it 80/20 (seed 0)"
        )
    elif None in splits and len(splits) > 1:
        report.notes.append("images the source puts in no split went to train")
    taken: set[tuple[str, str]] = set()
    for item in source.items:
        report.other.update(item.other)
        size = _checked_size(item, report.problems)
        if size is None:
            continue
        if not item.shapes:
            report.empty.append(str(item.image))
            if not keep_empty:
                continue
        mask, overlapped = _draw(item, size, class_of, overlap, report)
        report.overlap_pixels += overlapped
        report.overlap_images += overlapped > 0
        split = "" if one_split else (item.split or "train")
        name = _unique_name(item.image, split, taken, report.renamed)
        images, masks = work / "images" / split, work / "masks" / split
        images.mkdir(parents=True, exist_ok=True)
        masks.mkdir(parents=True, exist_ok=True)
        target = images / f"{name}{item.image.suffix.lower()}"
        if link:
            target.symlink_to(item.image.resolve())
        else:
            shutil.copyfile(item.image, target)
        Image.fromarray(mask, "L").save(masks / f"{name}.png")
        report.images[split] += 1
    if not sum(report.images.values()):
        why = [f"{len(report.empty)} without annotations (--keep-empty keeps them)"] * bool(
            report.empty
        )
        raise SeglabError(
            f"{source.path}: no image to import"
            + "".join(f"; {w}" for w in why + report.problems[:1])
        )
    return report


def _checked_size(item: Item, problems: list[str]) -> tuple[int, int] | None:
    """The image's (height, width) as seglab reads it (EXIF-upright); None, with the problem
    noted, when it is missing, unreadable, of an unsupported type or of another size than the
    annotations say."""
    if not item.image.is_file():
        problems.append(f"{item.image}: image not found")
        return None
    if item.image.suffix.lower() not in IMAGE_SUFFIXES:
        problems.append(
            f"{item.image}: not an image type seglab reads ({', '.join(IMAGE_SUFFIXES)})"
        )
        return None
    try:
        if is_tiff(item.image):
            width, height = tiff_size(item.image)
        else:
            with Image.open(item.image) as im:
                width, height = im.size
                if orientation(im) in TURNED:
                    width, height = height, width
    except Exception as err:
        problems.append(f"{item.image}: unreadable image ({first_line(err)})")
        return None
    if item.size is not None and item.size != (height, width):
        problems.append(
            f"{item.image}: the annotations are for {item.size[0]}x{item.size[1]}, "
            f"the image is {height}x{width}"
        )
        return None
    return height, width


def _draw(item: Item, size: tuple[int, int], class_of, overlap: str, report: ImportReport):
    """The item's class-index mask, and the number of pixels claimed by two classes."""
    height, width = size
    drawn = []
    for shape in item.shapes:
        value = class_of(shape.label)
        if value is None:
            report.unknown[shape.label] += 1
            value = IGNORE
        elif value == IGNORE:
            report.ignored[shape.label] += 1
        drawn.append((shape, value, shape.draw(height, width)))
    if overlap == "later":
        drawn.sort(key=lambda d: d[0].order)  # stable: the source's order within one z_order
    else:
        drawn.sort(key=lambda d: -int(d[2].sum()))  # stable: larger first, the smaller on top
    mask = np.zeros((height, width), dtype=np.uint8)
    painted = np.zeros((height, width), dtype=bool)
    overlapped = np.zeros((height, width), dtype=bool)
    for _, value, pixels in drawn:
        overlapped |= pixels & painted & (mask != value)
        mask[pixels] = value
        painted |= pixels
    return mask, int(overlapped.sum())


def _unique_name(image: Path, split: str, taken: set, renamed: list[str]) -> str:
    """The image's stem, made unique within its split (pairs match files by stem)."""
    name, n = image.stem, 1
    while (split, name) in taken:
        n += 1
        name = f"{image.stem}-{n}"
    if n > 1:
        renamed.append(f"{image} as {name} (another image of that name came first)")
    taken.add((split, name))
    return name


def _write_yaml(path: Path, report: ImportReport) -> None:
    colors = default_colors(len(report.classes))
    classes = [{"name": n, "color": list(c)} for n, c in zip(report.classes, colors)]
    header = [
        f"# Imported by `seglab data import {report.format}` from {report.source}",
        f"# Overlapping shapes of different classes: --overlap {report.overlap}, "
        f"{OVERLAP_RULES[report.overlap]}.",
        "# Unknown labels are drawn as ignore_index; import.json records what was not mapped.",
        "# Add groups: / split_by: here as for any dataset.",
    ]
    body = {"root": ".", "layout": "pairs", "mask_encoding": "index", "ignore_index": IGNORE}
    text = yaml.safe_dump(body, sort_keys=False)
    text += "classes:\n" + "".join(
        f"  - {{name: {json.dumps(c['name'])}, color: {c['color']}}}\n" for c in classes
    )
    path.write_text("\n".join(header) + "\n" + text)


def split_name(word: str) -> str | None:
    """A split named by a folder or file name (``train``, ``valid``, ``instances_val2017``)."""
    lowered = word.lower()
    if lowered in SPLIT_ALIASES:
        return SPLIT_ALIASES[lowered]
    for part in lowered.replace("-", "_").replace(".", "_").split("_"):
        stripped = part.rstrip("0123456789")
        if stripped in SPLIT_ALIASES:
            return SPLIT_ALIASES[stripped]
    return None


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


def _counted(counts: Counter) -> str:
    return ", ".join(f"{k} ({v})" for k, v in sorted(counts.items()))
