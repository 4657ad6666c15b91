"""Evaluation: the dataset-wide confusion matrix of a segmenter's predictions, summarised. The
one evaluation loop of seglab: training's validation, ``seglab evaluate``, the benchmark's
per-backend mIoU and the comparison all run it. Under DDP each process evaluates its share and
the confusion matrices are summed across processes."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Subset
from tqdm.auto import tqdm

from seglab.data.dataset import Data, open_data
from seglab.data.loading import make_loader
from seglab.engine.checkpoint import Checkpoint
from seglab.engine.distributed import Dist, all_reduce_sum
from seglab.engine.inference import predict_probabilities
from seglab.engine.metrics import confusion_matrix, summarize
from seglab.engine.segmenter import Segmenter, checkpoint_segmenter
from seglab.errors import SeglabError


@dataclass
class Evaluation:
    """What one evaluation found. ``metrics``: JSON-ready scores (fractions, see
    seglab.engine.metrics.summarize). With ``per_image``: ``confusions``, N x K x K int64 (one
    confusion matrix per image, summing to ``confusion``), and ``predictions``, each image's
    scored prediction (uint8 class indices, ``ignore_index`` where the truth is ignored or
    padded), in loader order."""

    metrics: dict[str, Any]
    confusion: torch.Tensor  # K x K int64, rows truth, columns prediction
    confusions: np.ndarray | None = None
    predictions: list[np.ndarray] | None = None


@torch.inference_mode()
def evaluate(
    segmenter: Segmenter,
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    *,
    progress: bool = True,
    dist: Dist | None = None,
    flip: bool = False,
    scales: Sequence[float] = (1.0,),
    window: tuple[int, int] | None = None,
    per_image: bool = False,
) -> Evaluation:
    """Scores ``segmenter`` on the (images, masks) batches of ``loader`` against its classes
    (``segmenter.info``: classes and ignore index), with the test-time augmentation asked for.
    Under DDP (``dist``) the confusion matrix is summed over processes; the per-image results
    are this process's images only."""
    info = segmenter.info
    classes, ignore = info.num_classes, info.ignore_index
    confusion = torch.zeros(classes, classes, dtype=torch.int64, device=segmenter.device)
    confusions, predictions = [], []
    with reproducible(segmenter.device):
        for images, masks in tqdm(loader, desc="evaluate", leave=False, disable=not progress):
            images = images.to(segmenter.device, non_blocking=True)
            masks = masks.to(segmenter.device, non_blocking=True)
            predicted = predict_probabilities(
                segmenter, images, flip=flip, scales=scales, window=window
            ).argmax(1)
            if not per_image:
                confusion += confusion_matrix(predicted, masks, classes, ignore)
                continue
            for pred, mask in zip(predicted, masks):
                image_confusion = confusion_matrix(pred, mask, classes, ignore)
                confusion += image_confusion
                confusions.append(image_confusion.cpu().numpy())
                scored = pred.masked_fill((mask < 0) | (mask >= classes) | (mask == ignore), ignore)
                predictions.append(scored.to(torch.uint8).cpu().numpy())
    all_reduce_sum(confusion, dist or Dist())
    return Evaluation(
        summarize(confusion, info.classes),
        confusion.cpu(),
        np.stack(confusions) if per_image and confusions else None,
        predictions if per_image else None,
    )


def reproducible(device: torch.device) -> contextlib.AbstractContextManager:
    """On a GPU, cuDNN's deterministic convolution algorithms (chosen without timing runs) in
    true fp32 (no TF32): the same weights then give the same scores in every process, so
    ``seglab evaluate`` reproduces the metrics training's validation stored. Nothing on a CPU."""
    if device.type != "cuda":
        return contextlib.nullcontext()
    return torch.backends.cudnn.flags(
        enabled=True, benchmark=False, deterministic=True, allow_tf32=False
    )


def evaluate_split(
    segmenter: Segmenter,
    data: Data,
    split: str = "val",
    *,
    batch_size: int = 1,
    limit: int | None = None,
    workers: int = 0,
    progress: bool = True,
    flip: bool = False,
    scales: Sequence[float] = (1.0,),
    window: tuple[int, int] | None = None,
    per_image: bool = False,
) -> Evaluation:
    """:func:`evaluate` on ``split`` of ``data`` (its first ``limit`` images when given), at the
    original resolution, in batches of ``batch_size`` (images of different sizes are padded,
    and padding is never scored). ``data`` must hold the segmenter's classes (see
    :func:`open_data_for`)."""
    dataset = data.split(split)
    if limit:
        dataset = Subset(dataset, range(min(limit, len(dataset))))
    loader = make_loader(
        dataset,
        batch_size,
        0,
        segmenter.info.ignore_index,
        train=False,
        workers=workers,
        pin_memory=segmenter.device.type == "cuda",
    )
    return evaluate(
        segmenter,
        loader,
        progress=progress,
        flip=flip,
        scales=scales,
        window=window,
        per_image=per_image,
    )


def open_data_for(data: str, classes: Sequence[str], model: str, progress: bool = True) -> Data:
    """The dataset ``data``, checked clean and holding the ``classes`` that ``model`` (its name
    for messages) was trained on; one-line SeglabError otherwise."""
    opened = open_data(data, progress=progress).require_clean(data)
    opened.require_classes(list(classes), model, data)
    return opened


def evaluate_checkpoint(
    checkpoint: str | os.PathLike,
    data: str | None = None,
    split: str = "val",
    *,
    flip: bool = False,
    scales: Sequence[float] = (1.0,),
    window: tuple[int, int] | None = None,
    batch_size: int | None = None,
    device: str = "auto",
    workers: int = 2,
    progress: bool = True,
) -> dict[str, Any]:
    """Metrics of a checkpoint on ``split`` of ``data`` (default: the data it was trained on),
    at the original resolution, with the test-time augmentation asked for. Evaluated as its
    training validated it (fp32, the run's memory format, batches of the run's batch size unless
    ``batch_size`` is given), so on the machine that trained it, it gives the metrics stored in
    the checkpoint. Returns the metrics with an ``evaluation`` entry saying what was done."""
    if batch_size is not None and batch_size < 1:
        raise SeglabError(f"evaluate: --batch-size {batch_size} must be at least 1")
    ckpt = Checkpoint.load(checkpoint)
    segmenter = checkpoint_segmenter(ckpt, device, name=str(checkpoint))
    data = data or ckpt.config.data
    dataset = open_data_for(data, ckpt.dataset.classes, str(checkpoint), progress)
    return evaluation_record(
        segmenter,
        str(checkpoint),
        data,
        dataset,
        split,
        batch_size=batch_size or ckpt.config.batch_size,
        workers=workers,
        progress=progress,
        flip=flip,
        scales=scales,
        window=window,
    )


def evaluation_record(
    segmenter: Segmenter,
    model: str,
    data_name: str,
    data: Data,
    split: str,
    *,
    batch_size: int,
    flip: bool = False,
    scales: Sequence[float] = (1.0,),
    window: tuple[int, int] | None = None,
    workers: int = 2,
    progress: bool = True,
) -> dict[str, Any]:
    """``seglab evaluate``'s record: the metrics of ``segmenter`` (from the file ``model``) on
    ``split`` of ``data`` (named ``data_name``), with an ``evaluation`` entry saying what was
    done."""
    result = evaluate_split(
        segmenter,
        data,
        split,
        batch_size=batch_size,
        workers=workers,
        progress=progress,
        flip=flip,
        scales=scales,
        window=window,
    )
    return {
        **result.metrics,
        "evaluation": {
            "checkpoint": model,
            "data": data_name,
            "split": split,
            "flip": flip,
            "scales": list(scales),
            "window": list(window) if window else None,
            "batch_size": batch_size,
            "device": str(segmenter.device),
        },
    }


def default_metrics_path(checkpoint: str | os.PathLike, split: str) -> Path:
    """Where `seglab evaluate` writes its metrics without --out: beside the checkpoint,
    e.g. runs/x/best_val_metrics.json."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(f"{checkpoint.stem}_{split}_metrics.json")


def confusion_figure_path(metrics_path: str | os.PathLike) -> Path:
    """Where `seglab evaluate` draws the confusion matrix: beside its metrics JSON,
    e.g. runs/x/best_val_confusion.png."""
    metrics_path = Path(metrics_path)
    return metrics_path.with_name(f"{metrics_path.stem.removesuffix('_metrics')}_confusion.png")


def percent(value: float | None) -> str:
    """A score as printed everywhere: percent with 2 decimals ("absent" for no score)."""
    return "absent" if value is None else f"{100 * value:.2f}"


def format_metrics(metrics: dict[str, Any]) -> str:
    """The per-class table a person reads, then the summary scores (all in percent)."""
    header = "".join(f"{h:>8}" for h in ("IoU", "Dice", "acc", "prec"))
    rows = [f"{'class':<18}{header}{'pixels':>12}  mostly taken for (share)"]
    for name, s in metrics["per_class"].items():
        # Metrics stored by an older seglab (a resumed run's best) lack precision and taken_for.
        scores = [
            percent(s[k]) if k in s else "-" for k in ("iou", "dice", "accuracy", "precision")
        ]
        cells = [f"{score:>8}" for score in scores]
        taken = s.get("taken_for")
        mistaken = f"  {taken['class']} ({percent(taken['share'])}%)" if taken else ""
        rows.append(f"{name:<18}{''.join(cells)}{s['pixels']:>12}{mistaken}")
    rows.append(
        f"mIoU {percent(metrics['miou'])}  pixel accuracy {percent(metrics['pixel_accuracy'])}  "
        f"mean class accuracy {percent(metrics['mean_class_accuracy'])}  "
        f"FW-IoU {percent(metrics['fw_iou'])}"
    )
    if metrics["absent_classes"]:
        rows.append(
            f"excluded from mIoU (absent from truth and prediction): "
            f"{', '.join(metrics['absent_classes'])}"
        )
    return "\n".join(rows)
