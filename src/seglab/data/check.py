"""The data check: every problem in a dataset, one line each naming the file, and what it holds."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from seglab.data.layouts import DatasetSource
from seglab.data.masks import IGNORE, INVALID
from seglab.data.scan import Record


@dataclass
class SplitSummary:
    pairs: int
    image_sizes: Counter  # (width, height) -> count
    class_pixels: np.ndarray  # per class
    ignored_pixels: int
    class_images: np.ndarray  # images in which each class occurs
    pixels_of_images_with_class: np.ndarray  # total pixels of those images (median frequency)


@dataclass
class CheckReport:
    source: DatasetSource
    splits: dict[str, SplitSummary]
    problems: list[str] = field(default_factory=list)


def check_source(source: DatasetSource, records: dict[str, Record]) -> CheckReport:
    assert source.info is not None and source.encoding is not None
    num_classes = source.info.num_classes
    problems = list(source.listing_problems)
    splits = {}
    for split, pairs in source.splits.items():
        summary = SplitSummary(
            0,
            Counter(),
            np.zeros(num_classes, np.int64),
            0,
            np.zeros(num_classes, np.int64),
            np.zeros(num_classes, np.int64),
        )
        complete = [(i, m) for i, m in pairs if i is not None and m is not None]
        if not complete:
            problems.append(f"{source.root}: split {split!r} is empty")
        for image, mask in complete:
            summary.pairs += 1
            problems += _pair_problems(
                image, mask, records[str(image)], records[str(mask)], source, summary
            )
        splits[split] = summary
    return CheckReport(source, splits, problems)


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
    if problems:
        return problems
    summary.image_sizes[tuple(irec["size"])] += 1
    if irec["size"] != mrec["size"]:
        problems.append(
            f"{mask}: mask is {_wh(mrec['size'])} but its image {image.name} is {_wh(irec['size'])}"
        )
    raw = np.array([int(v) for v in mrec["values"]], dtype=np.int64)
    counts = np.array(list(mrec["values"].values()), dtype=np.int64)
    decoded = source.encoding.decode(raw)
    bad = decoded == INVALID
    if bad.any():
        what = ", ".join(source.encoding.describe(int(v)) for v in raw[bad][:5])
        if source.encoding.kind == "rgb":
            problems.append(
                f"{mask}: {int(counts[bad].sum())} pixels of colours not in the palette: {what}"
            )
        else:
            problems.append(
                f"{mask}: {int(counts[bad].sum())} pixels with {what}: neither a class "
                f"(0-{source.info.num_classes - 1} after decoding) nor the ignore value"
            )
    classes = decoded[(decoded != INVALID) & (decoded != IGNORE)]
    class_counts = counts[(decoded != INVALID) & (decoded != IGNORE)]
    per_class = np.bincount(classes, weights=class_counts, minlength=source.info.num_classes)
    summary.class_pixels += per_class.astype(np.int64)
    summary.ignored_pixels += int(counts[decoded == IGNORE].sum())
    present = per_class > 0
    summary.class_images += present
    summary.pixels_of_images_with_class += present * int(counts.sum())
    return problems


def _wh(size: list[int]) -> str:
    return f"{size[0]}x{size[1]}"


def format_report(report: CheckReport) -> str:
    info = report.source.info
    lines = [
        f"dataset {report.source.root} (layout {report.source.layout}, "
        f"{info.num_classes} classes, {info.in_channels}-channel images)"
    ]
    for split, s in report.splits.items():
        sizes = ", ".join(f"{w}x{h} ({n})" for (w, h), n in s.image_sizes.most_common(3))
        more = f" and {len(s.image_sizes) - 3} more" if len(s.image_sizes) > 3 else ""
        lines.append(f"{split}: {s.pairs} pairs; image sizes {sizes or '-'}{more}")
        total = s.class_pixels.sum() + s.ignored_pixels
        if total:
            shares = [
                f"{name} {100 * n / total:.2f}%" for name, n in zip(info.classes, s.class_pixels)
            ]
            shares.append(f"ignored {100 * s.ignored_pixels / total:.2f}%")
            lines.append("  pixels: " + ", ".join(shares))
    if report.problems:
        lines.append(f"{len(report.problems)} problem(s):")
        lines += [f"  {p}" for p in report.problems]
    else:
        lines.append("no problems found")
    return "\n".join(lines)
