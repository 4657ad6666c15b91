"""The comparison's plots, drawn with matplotlib into PNG files (scores in percent), and its
grid of example predictions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import matplotlib

matplotlib.use("Agg")  # files only, no screen
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.lines import Line2D
from PIL import Image
from torchvision.utils import make_grid

from seglab.data.info import DatasetInfo
from seglab.data.show import colorize, with_legend
from seglab.reporting.results import Comparison, HistoryPoint
from seglab.reporting.verdict import frontier


def per_class_bars(comparison: Comparison, path: Path) -> Path:
    """Per-class IoU, one bar per model in each class (an absent class draws no bar)."""
    classes, models = comparison.classes, comparison.models
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(classes) + 2), 3.8))
    width = 0.8 / len(models)
    x = np.arange(len(classes))
    for k, m in enumerate(models):
        values = [np.nan if m.iou(c) is None else 100 * m.iou(c) for c in classes]
        ax.bar(x + (k - (len(models) - 1) / 2) * width, values, width, label=m.name)
    ax.set_xticks(x, classes, rotation=30, ha="right")
    ax.set_ylabel("IoU (%)")
    ax.set_ylim(0, 100)
    ax.set_title("Per-class IoU")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def confusion_matrices(
    matrices: Mapping[str, Sequence[Sequence[int]]], classes: Sequence[str], path: Path
) -> Path:
    """Confusion matrices (name -> K x K counts, rows truth) side by side, each row as shares of
    that true class's pixels, so a small class's errors show as plainly as a large one's."""
    side = min(0.45 * len(classes) + 2, 14)  # inches: 150 classes stay a readable page
    labelled = len(classes) <= 30  # beyond that the numbers would not fit their cells
    fig, axes = plt.subplots(
        1, len(matrices), figsize=(side * len(matrices), side + 0.8), squeeze=False
    )
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
FORM_MARKERS = {"pytorch": "o", "onnx": "s", "onnx-int8": "^", "executorch": "D"}


def accuracy_cost_frontier(comparison: Comparison, path: Path) -> Path:
    """mIoU against batch-1 latency of every model x form (colour: model, marker: form), the
    frontier joined by a dashed line, the verdict's choice ringed."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    colours = {m.name: f"C{k % 10}" for k, m in enumerate(comparison.models)}
    for p in comparison.forms:
        marker = FORM_MARKERS.get(p.form, "o")
        ax.scatter(
            p.latency_ms, 100 * p.miou, color=colours[p.model], marker=marker, s=60, zorder=3
        )
    handles = [
        Line2D([], [], color=colour, marker="o", linestyle="", label=name)
        for name, colour in colours.items()
    ]
    handles += [
        Line2D([], [], color="0.35", marker=FORM_MARKERS.get(form, "o"), linestyle="", label=form)
        for form in dict.fromkeys(p.form for p in comparison.forms)
    ]
    edge = frontier(comparison.forms)
    if edge:
        x, y = [p.latency_ms for p in edge], [100 * p.miou for p in edge]
        handles += ax.plot(x, y, "--", color="0.5", zorder=2, label="frontier")
    if comparison.verdict is not None:
        chosen = comparison.verdict.chosen
        ax.scatter(
            chosen.latency_ms,
            100 * chosen.miou,
            s=380,
            facecolors="none",
            edgecolors="red",
            linewidths=2,
            zorder=4,
        )
        handles.append(
            Line2D(
                [],
                [],
                color="red",
                marker="o",
                markerfacecolor="none",
                markersize=14,
                linestyle="",
                label=f"verdict: {chosen.label}",
            )
        )
    if comparison.forms:
        ax.set_xscale("log")
    ax.set_xlabel("latency, batch 1 (ms, median, log scale)")
    ax.set_ylabel("mIoU (%)")
    ax.set_title("Accuracy against cost: every model in every form")
    ax.grid(alpha=0.3, which="both")
    ax.margins(0.15)
    ax.legend(handles=handles, fontsize="small", loc="center left", bbox_to_anchor=(1.02, 0.5))
    return _save(fig, path)


def training_curves(curves: Mapping[str, Sequence[HistoryPoint]], path: Path) -> Path:
    """Validation mIoU and training loss against training time, one line per run (name ->
    its history, see seglab.reporting.results.read_history)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
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


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
