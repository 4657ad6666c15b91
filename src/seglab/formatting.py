"""Numbers and metrics as a person reads them: the one percent formatter, and the per-class table
that training's summary and ``seglab evaluate`` print. No torch here."""

from __future__ import annotations

from typing import Any


def percent(value: float | None, absent: str = "-") -> str:
    """A score (a fraction) in percent with 2 decimals; ``absent`` when there is none (not
    measured, or a class absent from truth and prediction)."""
    return absent if value is None else f"{100 * value:.2f}"


def number(value: float | None, spec: str, absent: str = "-") -> str:
    """``value`` formatted by ``spec``, ``absent`` when it was not measured."""
    return absent if value is None else format(value, spec)


def format_metrics(metrics: dict[str, Any]) -> str:
    """The per-class table a person reads, then the summary scores (all in percent)."""
    header = "".join(f"{h:>8}" for h in ("IoU", "Dice", "acc", "prec"))
    rows = [f"{'class':<18}{header}{'pixels':>12}  mostly taken for (share)"]
    for name, s in metrics["per_class"].items():
        # Metrics stored by an older seglab (a resumed run's best) lack precision and taken_for.
        scores = [
            percent(s[k], "absent") if k in s else "-"
            for k in ("iou", "dice", "accuracy", "precision")
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
    if metrics.get("degenerate"):  # absent from records of an older seglab
        rows.append(
            f"warning: a useless model: it {metrics['degenerate']}. It has not learned the "
            "classes yet: train longer (a larger --time-budget, or --iterations), or check the "
            "labels (seglab data check)"
        )
    if metrics["absent_classes"]:
        rows.append(
            f"excluded from mIoU (absent from truth and prediction): "
            f"{', '.join(metrics['absent_classes'])}"
        )
    return "\n".join(rows)
