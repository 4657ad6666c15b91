"""Evaluation: the dataset-wide confusion matrix of a model's predictions, summarised. Under DDP
each process evaluates its share and the confusion matrices are summed across processes."""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from seglab.data.info import DatasetInfo
from seglab.engine.distributed import Dist, all_reduce_sum
from seglab.engine.inference import predict_probabilities
from seglab.engine.metrics import confusion_matrix, summarize


@torch.inference_mode()
def evaluate(
    model: torch.nn.Module,
    loader: DataLoader,
    info: DatasetInfo,
    device: torch.device,
    progress: bool = True,
    *,
    dist: Dist | None = None,
    flip: bool = False,
    scales: Sequence[float] = (1.0,),
    window: tuple[int, int] | None = None,
    autocast_dtype: torch.dtype | None = None,
    channels_last: bool = False,
) -> dict:
    if isinstance(model, torch.nn.Module):
        model.eval()
    confusion = torch.zeros(info.num_classes, info.num_classes, dtype=torch.int64, device=device)
    for images, masks in tqdm(loader, desc="evaluate", leave=False, disable=not progress):
        images, masks = images.to(device, non_blocking=True), masks.to(device, non_blocking=True)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        probs = predict_probabilities(
            model, images, flip=flip, scales=scales, window=window, autocast_dtype=autocast_dtype
        )
        confusion += confusion_matrix(probs.argmax(1), masks, info.num_classes, info.ignore_index)
    all_reduce_sum(confusion, dist or Dist())
    return summarize(confusion, info.classes)


def evaluate_checkpoint(
    checkpoint: str | os.PathLike,
    data: str | None = None,
    split: str = "val",
    *,
    flip: bool = False,
    scales: Sequence[float] = (1.0,),
    window: tuple[int, int] | None = None,
    batch_size: int = 4,
    device: str = "auto",
    workers: int = 2,
    progress: bool = True,
) -> dict:
    """Metrics of a checkpoint on ``split`` of ``data`` (default: the data it was trained on),
    at the original resolution, with the test-time augmentation asked for."""
    from seglab.data.dataset import open_data
    from seglab.data.loading import make_loader
    from seglab.engine.checkpoint import load_model
    from seglab.engine.performance import pick_device

    model, payload = load_model(checkpoint)
    data = data or payload["config"]["data"]
    dataset = open_data(data, progress=progress).require_clean(data)
    dataset.require_classes(payload["dataset"]["classes"], str(checkpoint), data)
    info = dataset.info
    target = pick_device(device)
    loader = make_loader(
        dataset.split(split),
        batch_size,
        0,
        info.ignore_index,
        train=False,
        workers=workers,
        pin_memory=target.type == "cuda",
    )
    metrics = evaluate(
        model.to(target), loader, info, target, progress, flip=flip, scales=scales, window=window
    )
    metrics["evaluation"] = {
        "checkpoint": str(checkpoint),
        "data": data,
        "split": split,
        "flip": flip,
        "scales": list(scales),
        "window": list(window) if window else None,
    }
    return metrics


def format_metrics(metrics: dict) -> str:
    """The per-class table a person reads, then the summary scores."""
    rows = [f"{'class':<18}{'IoU':>8}{'Dice':>8}{'acc':>8}{'pixels':>12}"]
    for name, s in metrics["per_class"].items():
        cells = [
            "  absent" if s[k] is None else f"{100 * s[k]:8.2f}"
            for k in ("iou", "dice", "accuracy")
        ]
        rows.append(f"{name:<18}{''.join(cells)}{s['pixels']:>12}")
    rows.append(
        f"mIoU {100 * metrics['miou']:.2f}  pixel accuracy {100 * metrics['pixel_accuracy']:.2f}  "
        f"mean class accuracy {100 * metrics['mean_class_accuracy']:.2f}  "
        f"FW-IoU {100 * metrics['fw_iou']:.2f}"
    )
    if metrics["absent_classes"]:
        rows.append(
            f"excluded from mIoU (absent from truth and prediction): "
            f"{', '.join(metrics['absent_classes'])}"
        )
    return "\n".join(rows)
