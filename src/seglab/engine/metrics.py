"""Segmentation metrics from one dataset-wide confusion matrix, never a mean of per-image scores."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def confusion_matrix(
    pred: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int | None = None
) -> torch.Tensor:
    """``num_classes`` x ``num_classes`` int64 counts, rows = truth, columns = prediction.

    Pixels whose target is ``ignore_index`` (or outside the classes) are left out. One bincount on
    the tensors' device: no Python loop over pixels or images.
    """
    target = target.reshape(-1)
    pred = pred.reshape(-1)
    valid = (target >= 0) & (target < num_classes)
    if ignore_index is not None:
        valid &= target != ignore_index
    index = target[valid] * num_classes + pred[valid]
    return torch.bincount(index, minlength=num_classes**2).reshape(num_classes, num_classes)


def summarize(confusion: torch.Tensor, class_names: Sequence[str]) -> dict:
    """mIoU, pixel accuracy, mean class accuracy, frequency-weighted IoU, and per-class IoU, Dice
    and accuracy. A class absent from both truth and prediction has no IoU: it is left out of the
    mean and listed under ``absent_classes``."""
    cm = confusion.double().cpu()
    tp = cm.diag()
    truth, predicted = cm.sum(1), cm.sum(0)
    union = truth + predicted - tp
    present = union > 0
    iou = tp / union  # nan where the class is absent
    dice = 2 * tp / (truth + predicted)
    accuracy = tp / truth  # nan where the class never occurs in the truth
    total = cm.sum()
    frequency = truth / total if total > 0 else truth
    return {
        "miou": _mean(iou[present]),
        "pixel_accuracy": float(tp.sum() / total) if total > 0 else float("nan"),
        "mean_class_accuracy": _mean(accuracy[truth > 0]),
        "fw_iou": float((frequency[present] * iou[present]).sum()),
        "per_class": {
            name: {
                "iou": _num(iou[i]),
                "dice": _num(dice[i]),
                "accuracy": _num(accuracy[i]),
                "pixels": int(truth[i]),
            }
            for i, name in enumerate(class_names)
        },
        "absent_classes": [name for i, name in enumerate(class_names) if not present[i]],
        "pixels": int(total),
    }


def _mean(values: torch.Tensor) -> float:
    return float(values.mean()) if values.numel() else float("nan")


def _num(value: torch.Tensor) -> float | None:
    """JSON has no NaN: an undefined score is None."""
    return None if torch.isnan(value) else float(value)
