"""The comparison's plots, drawn with matplotlib into PNG files (scores in percent), and its
grid of example predictions. Figures are made without pyplot, so drawing them never switches the
backend of a notebook that imports seglab."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedFormatter, FixedLocator, NullFormatter
from matplotlib.transforms import Bbox
from PIL import Image
from torchvision.utils import make_grid

from seglab.data.info import DatasetInfo
from seglab.data.show import colorize, with_legend
from seglab.reporting.results import Comparison, FormResult, HistoryPoint
from seglab.reporting.verdict import frontier


def per_class_bars(comparison: Comparison, path: Path) -> Path:
    """Per-class IoU and mIoU of each model (see per_class_figure)."""
    return _save(per_class_figure(comparison), path)


def per_class_figure(comparison: Comparison) -> Figure:
    """Per-class IoU, one bar per model in each class (an absent class draws no bar), and last
    each model's mIoU, with an error bar (sd over seeds) where a model ran several seeds: the
    per-class bars are of the runs pooled, the spread is known for the mIoU only."""
    classes, models = comparison.classes, comparison.models
    fig = _figure(figsize=(max(6, 0.9 * (len(classes) + 1) + 2), 3.8))
    ax = fig.subplots()
    width = 0.8 / len(models)
    x = np.arange(len(classes) + 1)  # the classes, then mIoU
    for k, m in enumerate(models):
        values = [np.nan if m.iou(c) is None else 100 * m.iou(c) for c in classes]
        offset = x + (k - (len(models) - 1) / 2) * width
        ax.bar(offset, [*values, 100 * m.miou], width, label=m.name, color=f"C{k % 10}")
        if m.miou_sd is not None:
            ax.errorbar(
                offset[-1],
                100 * m.miou,
                yerr=100 * m.miou_sd,
                fmt="none",
                ecolor="black",
                capsize=3,
                linewidth=1,
            )
    ax.axvline(len(classes) - 0.5, color="0.6", linewidth=0.8)
    ax.set_xticks(x, [*classes, "mIoU"], rotation=30, ha="right")
    ax.set_ylabel("IoU (%)")
    ax.set_ylim(0, 100)
    several = any(m.miou_sd is not None for m in models)
    ax.set_title("Per-class IoU" + (" (mIoU: mean ± sd over seeds)" if several else ""))
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.grid(axis="y", alpha=0.3)
    return fig


def confusion_matrices(
    matrices: Mapping[str, Sequence[Sequence[int]]], classes: Sequence[str], path: Path
) -> Path:
    """Confusion matrices (name -> K x K counts, rows truth) side by side, each row as shares of
    that true class's pixels, so a small class's errors show as plainly as a large one's."""
    side = min(0.45 * len(classes) + 2, 14)  # inches: 150 classes stay a readable page
    labelled = len(classes) <= 30  # beyond that the numbers would not fit their cells
    fig = _figure(figsize=(side * len(matrices), side + 0.8))
    axes = fig.subplots(1, len(matrices), squeeze=False)
    for ax, (name, matrix) in zip(axes[0], matrices.items()):
        counts = np.asarray(matrix, dtype=np.float64)
        shares = 100 * counts / np.maximum(counts.sum(1, keepdims=True), 1)
        ax.imshow(shares, cmap="Blues", vmin=0, vmax=100)
        for (row, col), share in np.ndenumerate(shares):
            if labelled and share >= 1:  # a label on every cell would hide the pattern
                colour = "white" if share > 60 else "black"
                ax.text(
                    col, row, f"{share:.0f}", ha="center", va="center", fontsize=7, color=colour
                )
        ticks = np.arange(len(classes))
        fontsize = 8 if labelled else 4
        ax.set_xticks(ticks, classes, rotation=60, ha="right", fontsize=fontsize)
        ax.set_yticks(ticks, classes, fontsize=fontsize)
        ax.set(xlabel="predicted", ylabel="true class", title=name)
    fig.suptitle("Where each class's pixels go (% of the true class)")
    return _save(fig, path)


# One marker per form (colour is the model); a form missing here is drawn as a circle.
FORM_MARKERS = {
    "pytorch": "o",
    "onnx": "s",
    "onnx-int8": "^",
    "executorch": "D",
    "executorch-int8": "v",
}
MARKER_SIZE = 60  # points squared, as scatter takes it
RING_SIZE = 380  # the ring around the verdict's choice


def accuracy_cost_frontier(comparison: Comparison, path: Path) -> Path:
    """mIoU against batch-1 latency of every model x form (colour: model, marker: form), the
    frontier joined by a dashed line, the verdict's choice ringed (see frontier_figure)."""
    return _save(frontier_figure(comparison), path, layout=False)


def frontier_figure(comparison: Comparison) -> Figure:
    """The accuracy-cost figure, laid out: each point labelled beside it without covering
    another label or point where one of a few places allows, error bars (sd over seeds) on
    models with several seeds, latency on a log axis labelled in plain milliseconds."""
    fig = _figure(figsize=(7.5, 4.8))
    ax = fig.subplots()
    colours = {m.name: f"C{k % 10}" for k, m in enumerate(comparison.models)}
    spread = {m.name: m.miou_sd for m in comparison.models}
    for p in comparison.forms:
        marker = FORM_MARKERS.get(p.form, "o")
        ax.scatter(
            p.latency_ms,
            100 * p.miou,
            color=colours[p.model],
            marker=marker,
            s=MARKER_SIZE,
            zorder=3,
        )
        if spread.get(p.model) is not None:
            ax.errorbar(
                p.latency_ms,
                100 * p.miou,
                yerr=100 * spread[p.model],
                fmt="none",
                ecolor=colours[p.model],
                alpha=0.6,
                capsize=3,
                zorder=2,
            )
    handles = _legend_handles(comparison, colours)
    edge = frontier(comparison.forms)
    if edge:
        x, y = [p.latency_ms for p in edge], [100 * p.miou for p in edge]
        handles += ax.plot(x, y, "--", color="0.5", zorder=2, label="frontier")
    if comparison.verdict is not None:
        handles.append(_ring(ax, comparison.verdict.chosen))
    ax.set_xlabel("latency, batch 1 (ms, median, log scale)")
    ax.set_ylabel("mIoU (%)")
    ax.set_title("Accuracy against cost: every model in every form")
    ax.grid(alpha=0.3, which="both")
    ax.margins(0.15)
    if comparison.forms:
        _plain_log_axis(ax)
    ax.legend(handles=handles, fontsize="small", loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.tight_layout()  # before the labels: they are placed in the final pixels
    ringed = comparison.verdict.chosen if comparison.verdict is not None else None
    _label_points(ax, comparison.forms, colours, ringed)
    return fig


def _legend_handles(comparison: Comparison, colours: Mapping[str, str]) -> list:
    handles = [
        Line2D([], [], color=colour, marker="o", linestyle="", label=name)
        for name, colour in colours.items()
    ]
    return handles + [
        Line2D([], [], color="0.35", marker=FORM_MARKERS.get(form, "o"), linestyle="", label=form)
        for form in dict.fromkeys(p.form for p in comparison.forms)
    ]


def _ring(ax, chosen: FormResult) -> Line2D:
    """A red ring around the verdict's choice, and its legend entry."""
    ax.scatter(
        chosen.latency_ms,
        100 * chosen.miou,
        s=RING_SIZE,
        facecolors="none",
        edgecolors="red",
        linewidths=2,
        zorder=4,
    )
    return Line2D(
        [],
        [],
        color="red",
        marker="o",
        markerfacecolor="none",
        markersize=14,
        linestyle="",
        label=f"verdict: {chosen.label}",
    )


def latency_ticks(low: float, high: float) -> list[float]:
    """Readable latencies between ``low`` and ``high`` ms, 3 to 8 where possible: 1, 2, 5 x
    10^k; powers of ten alone over a wide range; finer steps over a narrow one."""
    decades = range(math.floor(math.log10(low)) - 1, math.ceil(math.log10(high)) + 1)

    def within(mantissas: Sequence[float]) -> list[float]:
        ticks = (float(f"{m * 10.0**d:.6g}") for d in decades for m in mantissas)
        return [t for t in ticks if low <= t <= high]

    ticks = within((1, 2, 5))
    if len(ticks) > 8:
        return within((1,))
    for finer in ((1, 1.5, 2, 3, 5, 7), (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 8, 9)):
        if len(ticks) >= 3:
            break
        ticks = within(finer)
    if len(ticks) >= 2:
        return ticks
    return [float(f"{t:.2g}") for t in (low, math.sqrt(low * high), high)]


def _plain_log_axis(ax) -> None:
    """A log latency axis whose labels read "20", "50", "100" (ms), not powers of ten."""
    ax.set_xscale("log")
    low, high = ax.get_xlim()
    ticks = latency_ticks(low, high)
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FixedFormatter([f"{t:g}" for t in ticks]))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlim(low, high)


# Where a label may sit, in points from its point (its near corner or edge there): right, left,
# above, below, then further out above and below.
LABEL_OFFSETS = [(6, 1), (6, -1), (-6, 1), (-6, -1), (0, 7), (0, -7)]
LABEL_OFFSETS += [(dx, dy) for dy in (10, -10, 20, -20) for dx in (6, -6)]


def _label_points(
    ax, points: Sequence[FormResult], colours: Mapping[str, str], ringed: FormResult | None
) -> None:
    """Each point's "model form" beside it, in the first of LABEL_OFFSETS where it covers no
    other label, point or the ``ringed`` one's ring and stays inside the axes (the first
    offset when none does)."""
    renderer = ax.figure.canvas.get_renderer()
    taken = [_box(ax, p, MARKER_SIZE) for p in points]
    taken += [_box(ax, ringed, RING_SIZE)] if ringed is not None else []
    inside = ax.get_window_extent(renderer)
    for p in sorted(points, key=lambda p: (p.latency_ms, -p.miou)):
        for offset in LABEL_OFFSETS:
            text = _annotate(ax, p, colours[p.model], offset)
            box = text.get_window_extent(renderer)
            clear = not any(box.overlaps(other) for other in taken)
            if clear and inside.contains(box.x0, box.y0) and inside.contains(box.x1, box.y1):
                break
            text.remove()
        else:
            box = _annotate(ax, p, colours[p.model], LABEL_OFFSETS[0]).get_window_extent(renderer)
        taken.append(box)


def _annotate(ax, point: FormResult, colour: str, offset: tuple[float, float]):
    dx, dy = offset
    return ax.annotate(
        f"{point.model} {point.form}",
        (point.latency_ms, 100 * point.miou),
        xytext=offset,
        textcoords="offset points",
        fontsize=7,
        color=colour,
        ha="left" if dx > 0 else "right" if dx < 0 else "center",
        va="bottom" if dy >= 0 else "top",
    )


def _box(ax, point: FormResult, size: float) -> Bbox:
    """The pixels a marker of ``size`` (points squared) covers at ``point``."""
    x, y = ax.transData.transform((point.latency_ms, 100 * point.miou))
    radius = math.sqrt(size) * ax.figure.dpi / 72 / 2 + 1
    return Bbox.from_extents(x - radius, y - radius, x + radius, y + radius)


def training_curves(curves: Mapping[str, Sequence[HistoryPoint]], path: Path) -> Path:
    """Validation mIoU and training loss against training time, one line per run (name ->
    its history, see seglab.reporting.results.read_history)."""
    fig = _figure(figsize=(10, 3.8))
    left, right = fig.subplots(1, 2)
    for name, points in curves.items():
        if not points:
            continue
        minutes = [p.seconds / 60 for p in points]
        left.plot(minutes, [100 * p.val_miou for p in points], marker="o", label=name)
        right.plot(minutes, [p.train_loss for p in points], marker="o", label=name)
    left.set(xlabel="training time (min)", ylabel="val mIoU (%)", title="Validation mIoU")
    right.set(xlabel="training time (min)", ylabel="loss", title="Training loss")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    return _save(fig, path)


GAP = 6  # white pixels between the cells of the example grid


class Example(NamedTuple):
    """One row of the example grid: an image (C x H x W in [0, 1]), its ground truth and each
    model's prediction (H x W class indices)."""

    image: torch.Tensor
    truth: torch.Tensor
    predictions: Sequence[torch.Tensor]


def examples_grid(examples: Sequence[Example], info: DatasetInfo, path: Path) -> Path:
    """One row per example: the image, its ground truth and each model's prediction in the class
    colours; small images drawn larger; a legend of the classes below."""
    cells = []
    for example in examples:
        rgb = (example.image.clamp(0, 1) * 255).round().to(torch.uint8)
        cells.append(rgb.expand(3, -1, -1) if rgb.shape[0] == 1 else rgb[:3])
        cells += [_colours(classes, info) for classes in (example.truth, *example.predictions)]
    height = max(c.shape[-2] for c in cells)
    width = max(c.shape[-1] for c in cells)
    padded = torch.full((len(cells), 3, height, width), 255, dtype=torch.uint8)
    for k, cell in enumerate(cells):  # images of other sizes: padded white at bottom and right
        padded[k, :, : cell.shape[-2], : cell.shape[-1]] = cell
    columns = 2 + len(examples[0].predictions)
    grid = make_grid(padded, nrow=columns, padding=GAP, pad_value=255)
    picture = Image.fromarray(grid[:, GAP:-GAP, GAP:-GAP].permute(1, 2, 0).numpy())
    scale = max(1, round(160 / height))  # small images drawn larger
    if scale > 1:
        picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
    with_legend(picture, info).save(path)
    return path


def _colours(classes: torch.Tensor, info: DatasetInfo) -> torch.Tensor:
    """3 x H x W uint8: each class in its colour, ignored pixels black."""
    return torch.from_numpy(colorize(classes.numpy(), info)).permute(2, 0, 1)


def _figure(**options) -> Figure:
    """A figure drawn by Agg, to files only: no pyplot, so no backend of the process changes."""
    fig = Figure(**options)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: Path, layout: bool = True) -> Path:
    """``layout``: fit the figure first (a figure already laid out is left as it is)."""
    if layout:
        fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path
