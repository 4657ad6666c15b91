"""The comparison's plots, drawn with matplotlib into PNG files."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no screen
import matplotlib.pyplot as plt
import numpy as np


def per_class_bars(models: list[dict], classes: list[str], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(classes) + 2), 3.8))
    width = 0.8 / len(models)
    x = np.arange(len(classes))
    for k, m in enumerate(models):
        values = [100 * (m["metrics"]["per_class"][c]["iou"] or 0) for c in classes]
        ax.bar(x + (k - (len(models) - 1) / 2) * width, values, width, label=m["name"])
    ax.set_xticks(x, classes, rotation=30, ha="right")
    ax.set_ylabel("IoU (%)")
    ax.set_ylim(0, 100)
    ax.set_title("Per-class IoU")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def accuracy_cost_frontier(models: list[dict], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for m in models:
        latency, miou = m["cost"]["latency_ms"], 100 * m["metrics"]["miou"]
        ax.scatter(latency, miou, s=40 + m["cost"]["gflops"], alpha=0.8)
        ax.annotate(m["name"], (latency, miou), textcoords="offset points", xytext=(6, 6))
    ax.set_xlabel("inference latency, batch 1 (ms, median) - lower is cheaper")
    ax.set_ylabel("mIoU (%)")
    ax.set_title("Accuracy against cost (marker size: GFLOPs)")
    ax.grid(alpha=0.3)
    ax.margins(0.25)
    return _save(fig, path)


def training_curves(models: list[dict], path: Path) -> Path:
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    for m in models:
        rows = m.get("history") or []
        if not rows:
            continue
        minutes = [float(r["seconds"]) / 60 for r in rows]
        left.plot(minutes, [100 * float(r["val_miou"]) for r in rows], marker="o", label=m["name"])
        right.plot(minutes, [float(r["train_loss"]) for r in rows], marker="o", label=m["name"])
    left.set(xlabel="training time (min)", ylabel="val mIoU (%)", title="Validation mIoU")
    right.set(xlabel="training time (min)", ylabel="loss", title="Training loss")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend()
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
