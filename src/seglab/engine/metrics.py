"""Segmentation metrics from one dataset-wide confusion matrix, never a mean of per-image scores."""

from __future__ import annotations

from collections.abc import Sequence

import torch

# A model that predicts one class on at least this share of the scored pixels is degenerate.
DEGENERATE_SHARE = 0.99


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
    """mIoU, pixel accuracy, mean class accuracy, frequency-weighted IoU, and per class: IoU,
    Dice, accuracy (recall), precision, and ``taken_for``, the other class that receives most of
    its pixels (where the errors go: a model that carries badly to new images shows it here).
    A class absent from both truth and prediction has no IoU: it is left out of the mean and
    listed under ``absent_classes``. ``confusion`` is the matrix itself, rows truth."""
    cm = confusion.double().cpu()
    tp = cm.diag()
    truth, predicted = cm.sum(1), cm.sum(0)
    union = truth + predicted - tp
    present = union > 0
    iou = tp / union  # nan where the class is absent
    dice = 2 * tp / (truth + predicted)
    accuracy = tp / truth  # nan where the class never occurs in the truth
    precision = tp / predicted  # nan where the class is never predicted
    errors = cm - torch.diag(tp)
    total = cm.sum()
    frequency = truth / total if total > 0 else truth
    miou = _mean(iou[present])
    return {
        "miou": miou,
        "pixel_accuracy": float(tp.sum() / total) if total > 0 else float("nan"),
        "mean_class_accuracy": _mean(accuracy[truth > 0]),
        "fw_iou": float((frequency[present] * iou[present]).sum()),
        "per_class": {
            name: {
                "iou": _num(iou[i]),
                "dice": _num(dice[i]),
                "accuracy": _num(accuracy[i]),
                "precision": _num(precision[i]),
                "taken_for": _taken_for(errors[i], truth[i], class_names),
                "pixels": int(truth[i]),
            }
            for i, name in enumerate(class_names)
        },
        "absent_classes": [name for i, name in enumerate(class_names) if not present[i]],
        "pixels": int(total),
        "confusion": confusion.cpu().long().tolist(),
        "degenerate": degenerate(cm, class_names, miou),
    }


def degenerate(confusion: torch.Tensor, class_names: Sequence[str], miou: float) -> str | None:
    """Why a model (its K x K confusion matrix, rows truth) is useless, or None: it predicts one
    class on at least DEGENERATE_SHARE of the scored pixels, or its ``miou`` is no better than
    predicting the commonest true class everywhere would score."""
    cm = torch.as_tensor(confusion, dtype=torch.float64)
    predicted, truth = cm.sum(0), cm.sum(1)
    total = float(predicted.sum())
    if total == 0:
        return None
    top = int(predicted.argmax())
    if predicted[top] >= DEGENERATE_SHARE * total:
        return (
            f"predicts {class_names[top]} on {100 * predicted[top] / total:.1f}% of scored pixels"
        )
    # Everywhere the commonest class: its IoU is its share, every other present class scores 0.
    commonest = int(truth.argmax())
    floor = float(truth[commonest] / total / (truth > 0).sum())
    if miou <= floor:
        return (
            f"scores mIoU {100 * miou:.2f}%, no better than predicting "
            f"{class_names[commonest]} everywhere ({100 * floor:.2f}%)"
        )
    return None


def _taken_for(
    errors: torch.Tensor, truth: torch.Tensor, class_names: Sequence[str]
) -> dict | None:
    """The class that most of this class's misread pixels go to, and its share of the class's
    pixels; None when no pixel of the class is misread."""
    if errors.sum() == 0:
        return None
    other = int(errors.argmax())
    return {"class": class_names[other], "share": float(errors[other] / truth)}


def _mean(values: torch.Tensor) -> float:
    return float(values.mean()) if values.numel() else float("nan")


def _num(value: torch.Tensor) -> float | None:
    """JSON has no NaN: an undefined score is None."""
    return None if torch.isnan(value) else float(value)
