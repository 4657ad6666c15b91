"""The comparison's plots, drawn with matplotlib into PNG files (scores in percent)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no screen
import matplotlib.pyplot as plt
import numpy as np

from seglab.reporting.results import Comparison, HistoryPoint


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


def accuracy_cost_frontier(comparison: Comparison, path: Path) -> Path:
    """mIoU against batch-1 latency, marker size by GFLOPs."""
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for m in comparison.models:
        latency, miou = m.cost.latency_ms, 100 * m.metrics["miou"]
        ax.scatter(latency, miou, s=40 + m.cost.gflops, alpha=0.8)
        ax.annotate(m.name, (latency, miou), textcoords="offset points", xytext=(6, 6))
    ax.set_xlabel("inference latency, batch 1 (ms, median) - lower is cheaper")
    ax.set_ylabel("mIoU (%)")
    ax.set_title("Accuracy against cost (marker size: GFLOPs)")
    ax.grid(alpha=0.3)
    ax.margins(0.25)
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


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
