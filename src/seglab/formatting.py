"""Numbers and metrics as a person reads them: the one percent formatter, and the per-class table
that training's summary and ``seglab evaluate`` print (and its HTML twin, for Jupyter). No torch
here."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any


def percent(value: float | None, absent: str = "-") -> str:
    """A score (a fraction) in percent with 2 decimals; ``absent`` when there is none (not
    measured, or a class absent from truth and prediction)."""
    return absent if value is None else f"{100 * value:.2f}"


def number(value: float | None, spec: str, absent: str = "-") -> str:
    """``value`` formatted by ``spec``, ``absent`` when it was not measured."""
    return absent if value is None else format(value, spec)


# The columns of the per-class table, in the text and in HTML.
METRICS_HEADER = ("class", "IoU", "Dice", "acc", "prec", "pixels", "mostly taken for (share)")


def format_metrics(metrics: dict[str, Any]) -> str:
    """The per-class table a person reads, then the summary scores (all in percent)."""
    header = "".join(f"{h:>8}" for h in METRICS_HEADER[1:5])
    rows = [f"{'class':<18}{header}{'pixels':>12}  {METRICS_HEADER[-1]}"]
    for name, *scores, pixels, taken in class_rows(metrics):
        cells = "".join(f"{score:>8}" for score in scores)
        rows.append(f"{name:<18}{cells}{pixels:>12}{f'  {taken}' if taken else ''}")
    return "\n".join(rows + summary_lines(metrics))


def class_rows(metrics: dict[str, Any]) -> list[tuple[str, ...]]:
    """A row per class, the cells METRICS_HEADER names: scores in percent ("absent" for a class
    absent from truth and prediction), its pixels, and the class its pixels are most often
    taken for with the share ("" when none)."""
    rows = []
    for name, s in metrics["per_class"].items():
        # Metrics stored by an older seglab (a resumed run's best) lack precision and taken_for.
        scores = [
            percent(s[k], "absent") if k in s else "-"
            for k in ("iou", "dice", "accuracy", "precision")
        ]
        taken = s.get("taken_for")
        mistaken = f"{taken['class']} ({percent(taken['share'])}%)" if taken else ""
        rows.append((name, *scores, str(s["pixels"]), mistaken))
    return rows


def summary_lines(metrics: dict[str, Any]) -> list[str]:
    """What follows the per-class table: the summary scores, the warning that the model is
    useless (when it is), and the classes left out of mIoU."""
    lines = [
        f"mIoU {percent(metrics['miou'])}  pixel accuracy {percent(metrics['pixel_accuracy'])}  "
        f"mean class accuracy {percent(metrics['mean_class_accuracy'])}  "
        f"FW-IoU {percent(metrics['fw_iou'])}"
    ]
    if metrics.get("degenerate"):  # absent from records of an older seglab
        lines.append(
            f"warning: a useless model: it {metrics['degenerate']}. It has not learned the "
            "classes yet: train longer (a larger --time-budget, or --iterations), or check the "
            "labels (seglab data check)"
        )
    if metrics["absent_classes"]:
        lines.append(
            f"excluded from mIoU (absent from truth and prediction): "
            f"{', '.join(metrics['absent_classes'])}"
        )
    return lines


def undertrained_warning(reason: str, metrics: dict[str, Any]) -> str:
    """The warning that a model is undertrained (``reason``: why, and what to try), naming the
    class it does worst; when that class's pixels are mostly taken for another, the model is not
    one to use yet, whatever its mIoU."""
    line = f"warning: undertrained: {reason}"
    per_class = metrics.get("per_class", {})
    scored = [(s["iou"], name, s) for name, s in per_class.items() if s.get("iou") is not None]
    if not scored:
        return line
    iou, name, weakest = min(scored, key=lambda found: found[0])
    line += f". Its weakest class, {name}, has IoU {percent(iou)}"
    taken = weakest.get("taken_for")
    if taken and taken["share"] > 0.5:
        line += (
            f", and {percent(taken['share'])}% of its pixels are taken for {taken['class']}: not "
            "a model to use yet"
        )
    return line


def html_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """An HTML table of text cells (escaped): the first column left-aligned, the rest (numbers)
    right-aligned, as in the plain-text tables."""

    def row(cells: Sequence[str], tag: str) -> str:
        aligned = (
            f"<{tag} style='text-align:{'right' if i else 'left'}'>{html.escape(str(c))}</{tag}>"
            for i, c in enumerate(cells)
        )
        return f"<tr>{''.join(aligned)}</tr>"

    return f"<table>{row(header, 'th')}{''.join(row(r, 'td') for r in rows)}</table>"


def metrics_html(metrics: dict[str, Any], title: str = "") -> str:
    """:func:`format_metrics` as HTML (for Jupyter): the per-class table, then the summary."""
    heading = f"<b>{html.escape(title)}</b>" if title else ""
    notes = "".join(f"<p>{html.escape(line)}</p>" for line in summary_lines(metrics))
    return f"<div>{heading}{html_table(METRICS_HEADER, class_rows(metrics))}{notes}</div>"
