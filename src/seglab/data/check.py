"""The data check: every problem in a dataset, one line each naming the file, and what it holds.

Problems stop training; warnings (a validation group also seen in training, a class with almost no
pixels, masks that fit their images whether or not EXIF orientation is applied) only inform."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from seglab.data.files import Pair
from seglab.data.io import bit_depth, describe_orientation, fits, unpack_rgb
from seglab.data.masks import IGNORE, INVALID, binary_encoding
from seglab.data.scan import Record
from seglab.data.source import DatasetSource
from seglab.data.splits import group_of

SHOWN_GROUPS = 8  # groups listed per split before "and N more"
SHOWN_LEAKS = 5  # leakage warnings before one line sums up the rest
SHOWN_VALUES = 5  # stray mask values named per file
# A class holding less than this share of the labelled pixels (over every split) is warned of:
# too few pixels to learn or to score it, and often a stray value rather than a class
RARE_CLASS_SHARE = 1e-4


@dataclass
class SplitSummary:
    pairs: int
    image_sizes: Counter  # (height, width) -> count
    ignored_pixels: int
    pixels_of_images_with_class: np.ndarray  # total pixels of those images (median frequency)
    groups: Counter = field(default_factory=Counter)  # group -> images, when groups are given
    image_class_pixels: list[np.ndarray] = field(default_factory=list)  # per pair, per class
    bit_depths: Counter = field(default_factory=Counter)  # "8-bit", "16-bit", ... -> images
    band_sum: np.ndarray | None = None  # per band, over the images with the dataset's bands
    band_squares: np.ndarray | None = None
    band_pixels: int = 0  # pixels per band summed in band_sum
    # images turned by their EXIF orientation whose masks fit them turned or not (square images,
    # or a turn by 180° or a mirror), with the orientation: the check cannot tell which was meant
    turned_either_way: list[tuple[Path, int]] = field(default_factory=list)

    @property
    def class_pixels(self) -> np.ndarray:
        """Pixels of each class in the split."""
        if not self.image_class_pixels:
            return np.zeros_like(self.pixels_of_images_with_class)
        return np.sum(self.image_class_pixels, axis=0)

    def band_statistics(self) -> tuple[list[float], list[float]] | None:
        """Each band's mean and std over the split's pixels (None without readable images): a
        model of images of other than 3 bands normalises its input by the training split's."""
        if not self.band_pixels or self.band_sum is None or self.band_squares is None:
            return None
        mean = self.band_sum / self.band_pixels
        variance = np.maximum(self.band_squares / self.band_pixels - mean**2, 0.0)
        # a constant band (std 0) would divide by zero: it carries no information anyway
        std = np.where(variance > 0, np.sqrt(variance), 1.0)
        return [float(m) for m in mean], [float(s) for s in std]

    def add_bands(self, record: Record, channels: int) -> None:
        """Counts the image's bit depth and adds its per-band sums (a grey image in a colour
        dataset as the three equal bands it is read as)."""
        self.bit_depths[bit_depth(record["dtype"])] += 1
        repeat = 3 if (record["bands"], channels) == (1, 3) else 1
        sums = np.repeat(np.asarray(record["band_sum"], np.float64), repeat)
        squares = np.repeat(np.asarray(record["band_squares"], np.float64), repeat)
        if len(sums) != channels:
            return  # a band count the data check reports as a problem
        self.band_sum = sums if self.band_sum is None else self.band_sum + sums
        self.band_squares = squares if self.band_squares is None else self.band_squares + squares
        self.band_pixels += record["size"][0] * record["size"][1]


@dataclass
class CheckReport:
    source: DatasetSource
    splits: dict[str, SplitSummary]
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def check_source(source: DatasetSource, records: dict[str, Record]) -> CheckReport:
    num_classes = source.info.num_classes
    problems = list(source.listing.problems)
    splits = {}
    for split, pairs in source.splits.items():
        summary = SplitSummary(0, Counter(), 0, np.zeros(num_classes, np.int64))
        complete = [(i, m) for i, m in pairs if i is not None and m is not None]
        if not complete:
            problems.append(f"{source.root}: split {split!r} is empty")
        for image, mask in complete:
            summary.pairs += 1
            problems += _pair_problems(
                image, mask, records[str(image)], records[str(mask)], source, summary
            )
        problems += _count_groups(complete, source, summary)
        splits[split] = summary
    warnings = leakage_warnings(source, splits) + rare_class_warnings(source, splits)
    return CheckReport(source, splits, problems, warnings + _orientation_warnings(splits))


def rare_class_warnings(source: DatasetSource, splits: dict[str, SplitSummary]) -> list[str]:
    """One line per class holding almost none of the labelled pixels over every split."""
    per_image = [row for s in splits.values() for row in s.image_class_pixels]
    if not per_image:
        return []
    pixels = np.sum(per_image, axis=0)
    files = np.count_nonzero(per_image, axis=0)
    total = int(pixels.sum())
    warnings = []
    for name, n, k in zip(source.info.classes, pixels, files):
        if total and n < RARE_CLASS_SHARE * total:
            held = f"holds {n} pixels ({100 * n / total:.2g}% of the labelled pixels, {k} masks)"
            warnings.append(
                f"class {name} {held if n else 'has no pixels in any mask'}: too few to learn "
                "or to score"
                + (
                    "; if its value is a stray one, not a class, relabel those pixels"
                    if n and source.classes_inferred
                    else ""
                )
            )
    return warnings


def _orientation_warnings(splits: dict[str, SplitSummary]) -> list[str]:
    """One line for the images an EXIF orientation turns whose masks fit either way."""
    turned = [t for s in splits.values() for t in s.turned_either_way]
    if not turned:
        return []
    path, turn = turned[0]
    return [
        f"{len(turned)} image(s) are turned by their EXIF orientation as viewers turn them (e.g. "
        f"{path}: {describe_orientation(turn)}), and their masks fit them turned or not; "
        "see with 'seglab data show' that the masks were drawn on the images as viewers show them"
    ]


def _count_groups(pairs: list[Pair], source: DatasetSource, summary: SplitSummary) -> list[str]:
    if source.groups is None:
        return []
    problems = []
    for pair in pairs:
        group = group_of(pair, source.groups)
        if group is None:
            problems.append(
                f"{pair[0]}: name has no group (groups: '{source.groups.pattern}' "
                f"in {source.where} does not match it)"
            )
        else:
            summary.groups[group] += 1
    return problems


def leakage_warnings(source: DatasetSource, splits: dict[str, SplitSummary]) -> list[str]:
    """One line per group found both in training and in another split."""
    train = splits.get("train")
    if train is None:
        return []
    leaks = [
        f"{split} group {group} also in train ({train.groups[group]} train / {n} {split} "
        f"images); {split} measures fit to seen groups, not new ones"
        for split, s in splits.items()
        if split != "train"
        for group, n in sorted(s.groups.items())
        if group in train.groups
    ]
    warnings = leaks[:SHOWN_LEAKS]
    if len(leaks) > SHOWN_LEAKS:
        warnings.append(f"{len(leaks) - SHOWN_LEAKS} more groups are in train and another split")
    if leaks and not source.grouped_split:
        warnings.append(f"to keep each group in one split, add split_by: groups to {source.where}")
    return warnings


def _pair_problems(
    image: Path,
    mask: Path,
    irec: Record,
    mrec: Record,
    source: DatasetSource,
    summary: SplitSummary,
) -> list[str]:
    problems = []
    for path, rec, what in ((image, irec, "image"), (mask, mrec, "mask")):
        if "error" in rec:
            problems.append(f"{path}: unreadable or truncated {what} ({rec['error']})")
        if "problem" in rec:  # a stack of band files that do not make one image
            problems.append(f"{path}: {rec['problem']}")
    if problems:
        return problems
    summary.image_sizes[_height_width(irec["size"])] += 1
    summary.add_bands(irec, source.info.in_channels)
    if not fits(irec["bands"], source.info.in_channels):
        problems.append(
            f"{image}: a {irec['bands']}-band image in a dataset of {source.info.in_channels}-band "
            "images (every image needs the same bands)"
        )
    problems += _size_problems(image, mask, irec, mrec, summary)
    raw = np.array([int(v) for v in mrec["values"]], dtype=np.int64)
    counts = np.array(list(mrec["values"].values()), dtype=np.int64)
    decoded = source.encoding.decode(raw)
    bad = decoded == INVALID
    if bad.any():
        problems.append(_invalid_values(mask, mrec, raw[bad], counts[bad], source))
    classes = decoded[(decoded != INVALID) & (decoded != IGNORE)]
    class_counts = counts[(decoded != INVALID) & (decoded != IGNORE)]
    per_class = np.bincount(classes, weights=class_counts, minlength=source.info.num_classes)
    summary.image_class_pixels.append(per_class.astype(np.int64))
    summary.ignored_pixels += int(counts[decoded == IGNORE].sum())
    present = per_class > 0
    summary.pixels_of_images_with_class += present * int(counts.sum())
    return problems


def _size_problems(
    image: Path, mask: Path, irec: Record, mrec: Record, summary: SplitSummary
) -> list[str]:
    """A mask of another size than its image, told apart from a mask that fits the image only
    as stored, before its EXIF orientation (or the mask's own) turns it."""
    turn, mask_turn = irec.get("orientation", 1), mrec.get("orientation", 1)
    if irec["size"] == mrec["size"]:
        stored, mask_stored = irec.get("stored_size"), mrec.get("stored_size")
        if turn not in (1, mask_turn) and (stored or irec["size"]) == (mask_stored or mrec["size"]):
            summary.turned_either_way.append((image, turn))
        return []
    if turn != 1 and mrec["size"] == irec["stored_size"]:
        return [
            f"{image}: its EXIF orientation ({describe_orientation(turn)}) is applied; its mask "
            "fits the unrotated pixels: redraw the mask on the image as viewers show it, or strip "
            "the tag"
        ]
    if mask_turn != 1 and mrec["stored_size"] == irec["size"]:
        return [
            f"{mask}: its EXIF orientation ({describe_orientation(mask_turn)}) is applied; it fits "
            f"its image {image.name} only unrotated: strip the tag from the mask"
        ]
    sizes = f"mask is {_hw(mrec['size'])} but its image {image.name} is {_hw(irec['size'])}"
    return [f"{mask}: {sizes}"]


def _invalid_values(
    mask: Path, mrec: Record, values: np.ndarray, counts: np.ndarray, source: DatasetSource
) -> str:
    """The problem line for mask values that are no class (``counts``: each one's pixels): for
    an RGB file in a dataset of class-number masks, say so (its packed colours mean nothing as
    numbers); where the classes came from the mask values, these are strays, never a class."""
    encoding, pixels = source.encoding, int(counts.sum())
    if encoding.kind == "rgb":
        what = ", ".join(encoding.describe(int(v)) for v in values[:5])
        return f"{mask}: {pixels} pixels of colours not in the palette: {what}"
    if mrec.get("rgb"):
        colours = [unpack_rgb(int(v)) for v in values[:3]]
        grey = all(r == g == b for r, g, b in colours)
        return (
            f"{mask}: a colour (RGB) mask, but this dataset's masks hold class numbers "
            f"({pixels} pixels of colours {', '.join(map(str, colours))}); for colour masks set "
            "mask_encoding: rgb in a dataset YAML with the classes' colours"
            + ("; for class numbers stored as grey, save the mask with one channel" if grey else "")
        )
    if len(values) == 1:
        what = encoding.describe(int(values[0]))
    else:
        shown = [f"{v} ({n})" for v, n in zip(values[:SHOWN_VALUES], counts[:SHOWN_VALUES])]
        more = f" and {len(values) - SHOWN_VALUES} more" if len(values) > SHOWN_VALUES else ""
        what = f"values {', '.join(shown)}{more}"
    if encoding.mapping == binary_encoding().mapping:
        first, second = source.info.classes
        meaning = f"neither 0 ({first}) nor 255 ({second})"
    else:
        meaning = (
            f"neither a class (0-{source.info.num_classes - 1} after decoding) nor the ignore value"
        )
    hint = (
        "; stray values (anti-aliased edges?), never a class: classes are the values most mask "
        "pixels hold, unless a dataset YAML lists them"
        if source.classes_inferred
        else ""
    )
    return f"{mask}: {pixels} pixels with {what}: {meaning}{hint}"


def _height_width(size: list[int]) -> tuple[int, int]:
    return size[1], size[0]  # records hold Pillow's (width, height)


def _hw(size: list[int]) -> str:
    """HxW, as every size flag takes it."""
    return "{}x{}".format(*_height_width(size))


def format_report(report: CheckReport) -> str:
    info = report.source.info
    lines = [
        f"dataset {report.source.root} (layout {report.source.layout}, "
        f"{info.num_classes} classes, {info.in_channels}-channel images)"
    ]
    lines += _bands_lines(report) + _inferred_classes_lines(report)
    for split, s in report.splits.items():
        sizes = ", ".join(f"{h}x{w} ({n})" for (h, w), n in s.image_sizes.most_common(3))
        more = f" and {len(s.image_sizes) - 3} more" if len(s.image_sizes) > 3 else ""
        lines.append(f"{split}: {s.pairs} pairs; image sizes {sizes or '-'}{more}")
        if s.groups:
            lines.append(_groups_line(s.groups))
        pixels = s.class_pixels  # summed over the split's images: sum once
        total = pixels.sum() + s.ignored_pixels
        if total:
            shares = [f"{name} {100 * n / total:.2f}%" for name, n in zip(info.classes, pixels)]
            shares.append(f"ignored {100 * s.ignored_pixels / total:.2f}%")
            lines.append("  pixels: " + ", ".join(shares))
        lines += _statistics_lines(s)
    lines += [f"warning: {w}" for w in report.warnings]
    if report.problems:
        lines.append(f"{len(report.problems)} problem(s):")
        lines += [f"  {p}" for p in report.problems]
    else:
        lines.append("no problems found")
    return "\n".join(lines)


def _inferred_classes_lines(report: CheckReport) -> list[str]:
    """Where no file names the classes, which mask value each name stands for: the names are
    seglab's (binary masks give background and foreground whatever they show, e.g. ISBI's
    membranes are its 0s, so "background")."""
    source = report.source
    if not source.classes_inferred:
        return []
    names = source.info.classes
    if source.encoding.mapping == binary_encoding().mapping:
        values = f"{names[0]} = 0 (black), {names[1]} = 255 (white)"
    elif len(names) <= 3:
        values = ", ".join(f"{name} = {value}" for value, name in enumerate(names))
    else:
        values = f"{names[0]} = 0, {names[1]} = 1, ..., {names[-1]} = {len(names) - 1}"
    return [
        f"classes named by their mask values: {values}; to name them, list them under classes: "
        "in a dataset YAML"
    ]


def _bands_lines(report: CheckReport) -> list[str]:
    """The images' bands and bit depth, e.g. "images: 5 bands, 16-bit"."""
    depths: Counter = Counter()
    for s in report.splits.values():
        depths += s.bit_depths
    if not depths:
        return []
    depth = ", ".join(
        f"{name} ({n})" if len(depths) > 1 else name for name, n in depths.most_common()
    )
    bands = report.source.info.in_channels
    return [f"images: {bands} band{'s' if bands > 1 else ''}, {depth}"]


def _statistics_lines(summary: SplitSummary) -> list[str]:
    """Each band's mean and std in the split, as the model takes the values (in [0, 1] for
    integer files)."""
    statistics = summary.band_statistics()
    if statistics is None:
        return []
    mean, std = (", ".join(f"{v:.4g}" for v in values) for values in statistics)
    return [f"  band mean {mean}; std {std}"]


def _groups_line(groups: Counter) -> str:
    names = sorted(groups)
    shown = ", ".join(f"{g} ({groups[g]})" for g in names[:SHOWN_GROUPS])
    more = f" and {len(names) - SHOWN_GROUPS} more" if len(names) > SHOWN_GROUPS else ""
    return f"  {len(names)} group{'s' if len(names) > 1 else ''}: {shown}{more}"
