"""The comparison report, as Markdown (report.md, beside its PNGs) and as one self-contained
HTML file (report.html, images embedded) that opens in any browser. Both open with the verdict
and render the same tables (cells marked best as data, each writer drawing it its own way), and
the command line prints the summary table, the differences and the verdict from the same
functions."""

from __future__ import annotations

import base64
import html
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from seglab.engine.machine import describe_machine
from seglab.engine.metrics import DEGENERATE_SHARE
from seglab.formatting import percent
from seglab.reporting.checks import (
    UNDERTRAINED_SHARE,
    same_and_different,
    setup_differences,
    steps_done,
    why_not_judged,
)
from seglab.reporting.forms import FORMS
from seglab.reporting.results import Comparison, ModelResult
from seglab.reporting.verdict import frontier


@dataclass(frozen=True)
class Cell:
    text: str
    best: bool = False  # the best value of its row: bold in Markdown, highlighted in HTML


@dataclass(frozen=True)
class Table:
    title: str
    header: tuple[str, ...]
    rows: list[tuple[Cell, ...]]
    note: str  # the text after the table


def _minutes(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


SUMMARY_COLUMNS: list[tuple[str, Callable[[ModelResult], str]]] = [
    ("model", lambda m: m.name),
    ("mIoU %", lambda m: percent(m.metrics["miou"])),
    ("pixel acc %", lambda m: percent(m.metrics["pixel_accuracy"])),
    ("mean class acc %", lambda m: percent(m.metrics["mean_class_accuracy"])),
    ("params (M)", lambda m: f"{m.cost.parameters_m:.1f}"),
    ("GFLOPs", lambda m: f"{m.cost.gflops:.1f}"),
    ("latency ms (median)", lambda m: f"{m.cost.latency_ms:.1f}"),
    ("images/s", lambda m: f"{m.cost.images_per_s:.2f}"),
    ("peak memory MB", lambda m: f"{m.cost.peak_memory_mb:.0f}"),
    ("model memory MB", lambda m: f"{m.cost.model_memory_mb:.0f}"),
    ("training min", lambda m: _minutes(m.cost.training_minutes)),
    ("flags", lambda m: ", ".join(f.kind for f in m.flags) or "-"),
]


def summary_table(comparison: Comparison) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    """(header, rows) of the summary, as plain text: what the command line prints."""
    header = tuple(title for title, _ in SUMMARY_COLUMNS)
    return header, [tuple(cell(m) for _, cell in SUMMARY_COLUMNS) for m in comparison.models]


def difference_lines(comparison: Comparison) -> list[str]:
    """One line per model after the first: its mIoU difference to the first and the interval,
    and why it cannot be judged when a model involved is flagged."""
    lines = []
    for m in comparison.models[1:]:
        b = m.versus_first
        reason = why_not_judged(m, comparison.first)
        lines.append(
            f"{m.name} - {comparison.first.name}: {100 * b.difference:+.2f} mIoU points, "
            f"{round(100 * b.level)}% interval [{100 * b.ci_low:+.2f}, {100 * b.ci_high:+.2f}]"
            + (f"; cannot be judged: {reason}" if reason else "")
        )
    return lines


def _speed(ratio: float) -> str:
    return f"{ratio:.1f}x faster" if ratio >= 1 else f"{1 / ratio:.1f}x slower"


def _pytorch_latency(c: Comparison, model: str) -> float | None:
    return next((f.latency_ms for f in c.forms if f.model == model and f.form == "pytorch"), None)


def verdict_lines(c: Comparison) -> list[str]:
    """The verdict in words: the model x form chosen, how, what it gives up against the most
    accurate one and what it gains, and the cautions. Empty without a verdict."""
    v = c.verdict
    if v is None:
        return []
    chosen, best = v.chosen, v.best
    height, width = c.eval_size
    measured = (
        f"{percent(chosen.miou)}% mIoU, {chosen.latency_ms:.1f} ms per image (median, batch 1, "
        f"{height}x{width}, this machine's CPU), {chosen.model_memory_mb:.0f} MB model memory"
    )
    lines = [
        f"Choose {chosen.label}: {measured}."
        if v.fits
        else f"Nothing fits the budget; the closest is {chosen.label}: {measured}.",
        f"Rule: {v.rule}.",
    ]
    if chosen == best:
        lines.append("It is also the most accurate model x form measured.")
    else:
        b = chosen.versus_best
        lines.append(
            f"Against the most accurate, {best.label} ({percent(best.miou)}% at "
            f"{best.latency_ms:.1f} ms): {100 * b.difference:+.2f} mIoU points, "
            f"{round(100 * b.level)}% interval [{100 * b.ci_low:+.2f}, {100 * b.ci_high:+.2f}]; "
            f"{_speed(v.speedup)}."
        )
    pytorch = _pytorch_latency(c, chosen.model)
    if chosen.form != "pytorch" and pytorch is not None:
        lines.append(
            f"As {chosen.form} it runs {_speed(pytorch / chosen.latency_ms)} than in PyTorch "
            f"fp32 ({pytorch:.1f} ms)."
        )
    lines += [f"Caution: {caution}." for caution in v.cautions]
    if v.exported:
        name = Path(v.exported).name
        lines.append(f"Written to {v.exported}, its card beside it: {name}.card.json, .card.md.")
    return lines


def tables(comparison: Comparison) -> list[Table]:
    """The report's tables, in order: summary, per-class IoU, the difference, the setup."""
    differences = _setup_differences(comparison)
    return [
        _summary(comparison),
        *([_forms(comparison)] if comparison.forms else []),
        _per_class(comparison),
        _difference(comparison),
        _setup(comparison),
        *([differences] if differences.rows else []),
    ]


def _summary(c: Comparison) -> Table:
    header, rows = summary_table(c)
    flagged = [f"{m.name} is {f.kind}: {f.reason}." for m in c.models for f in m.flags]
    return Table(
        "Summary",
        header,
        [tuple(Cell(text) for text in row) for row in rows],
        f"Evaluated on {c.images} {c.split} images of {c.data} at "
        f"{c.eval_size[0]}x{c.eval_size[1]}. Latency: batch 1, median of repeats, PyTorch "
        f"{c.first.cost.precision} on this machine's CPU ({describe_machine(c.machine)}); "
        "peak memory: resident memory of a fresh process that "
        "loads the model and runs batch-1 inference; model memory: that peak less the same "
        "process before loading the model (PyTorch alone)."
        + (FLAGS_NOTE + " ".join(flagged) if flagged else ""),
    )


FLAGS_NOTE = (
    f" Flags: degenerate, a model that predicts one class on at least {DEGENERATE_SHARE:.0%} of "
    "the pixels or does no better than predicting the commonest class everywhere; undertrained, "
    f"a run stopped before {UNDERTRAINED_SHARE:.0%} of its planned steps. "
)


def _forms(c: Comparison) -> Table:
    level = next((round(100 * f.versus_best.level) for f in c.forms if f.versus_best), 95)
    on_frontier = frontier(c.forms)
    chosen = c.verdict.chosen if c.verdict else None
    rows = []
    for f in c.forms:
        b, pytorch = f.versus_best, _pytorch_latency(c, f.model)
        cells = (
            f.model,
            f.form,
            percent(f.miou),
            "most accurate" if b is None else f"{100 * b.difference:+.2f}",
            "-" if b is None else f"[{100 * b.ci_low:+.2f}, {100 * b.ci_high:+.2f}]",
            f"{f.latency_ms:.1f}",
            "-" if pytorch is None else f"{pytorch / f.latency_ms:.2f}",
            f"{f.model_memory_mb:.0f}",
            f"{f.peak_memory_mb:.0f}",
            "yes" if f in on_frontier else "",
        )
        rows.append(tuple(Cell(text, f == chosen) for text in cells))
    forms = " ".join(f"{form.name}: {form.description}." for form in FORMS)
    missing = "".join(
        f" Not measured here: {form} ({why})." for form, why in c.unavailable_forms.items()
    )
    return Table(
        "Every model in every form",
        (
            "model",
            "form",
            "mIoU %",
            "vs most accurate (points)",
            f"{level}% interval",
            "latency ms (median)",
            "speed vs PyTorch fp32",
            "model memory MB",
            "peak memory MB",
            "frontier",
        ),
        rows,
        f"{forms} INT8 calibrated on {c.calibration_images} training images. Each form "
        f"evaluated on the same {c.images} {c.split} images; latency at batch 1 and "
        f"{c.eval_size[0]}x{c.eval_size[1]} on this machine's CPU; memory as in the summary "
        "(a --memory budget applies to model memory). The interval: bootstrap over images of "
        "the mIoU difference to the most accurate model x form. Frontier: no other model x "
        f"form is both as fast and as accurate. The verdict's choice is in bold.{missing}",
    )


def _per_class(c: Comparison) -> Table:
    rows = []
    for name in c.classes:
        values = [m.iou(name) for m in c.models]
        present = [v for v in values if v is not None]
        # The best is marked only when unique: a tie (all models at 0, say) marks nobody.
        best = max(present) if present and present.count(max(present)) == 1 else None
        cells = (Cell(percent(v, "absent"), v is not None and v == best) for v in values)
        rows.append((Cell(name), *cells))
    absent = sorted({a for m in c.models for a in m.metrics["absent_classes"]})
    note = "The best model per class is in bold." + (
        f" Absent from truth and prediction, left out of mIoU: {', '.join(absent)}."
        if absent
        else ""
    )
    return Table("Per-class IoU (%)", ("class", *(m.name for m in c.models)), rows, note)


def _difference(c: Comparison) -> Table:
    rows, verdicts = [], []
    level = round(100 * c.models[1].versus_first.level)
    for m in c.models[1:]:
        b = m.versus_first
        rows.append(
            (
                Cell(f"{m.name} - {c.first.name}"),
                Cell(f"{100 * b.difference:+.2f}"),
                Cell(f"[{100 * b.ci_low:+.2f}, {100 * b.ci_high:+.2f}]"),
                Cell(f"{100 * b.p_a_better:.0f}%"),
            )
        )
        reason = why_not_judged(m, c.first)
        verdicts.append(
            f"{m.name} vs {c.first.name}: "
            + (
                f"cannot be judged: {reason}."
                if reason
                else "the interval excludes 0: unlikely to be chance on these images."
                if b.excludes_zero
                else "the interval includes 0: these images cannot tell the two apart."
            )
        )
    return Table(
        "Is the difference real?",
        ("difference", "mIoU points", f"{level}% interval", "resamples where it is ahead"),
        rows,
        f"Bootstrap over images: {c.models[1].versus_first.samples} resamples of the "
        f"{c.images} images with replacement, mIoU recomputed from the summed confusion "
        "matrices each time. " + " ".join(verdicts),
    )


def _setup(c: Comparison) -> Table:
    rows = [
        (
            Cell(m.name),
            Cell(m.encoder),
            Cell(m.setup.run),
            Cell(m.setup.encoder_weights),
            Cell(m.setup.schedule),
            Cell(steps_done(m)),
        )
        for m in c.models
    ]
    same, different = same_and_different(c.models)
    claims = (
        f"Same for every model, from the recorded configurations: {', '.join(same)}. "
        if same
        else "No part of the set-up is the same for every model, or it is not recorded. "
    )
    if different:
        claims += f"Different: {', '.join(different)} (see Setup differences). "
    return Table(
        "Setup",
        ("model", "encoder", "run", "encoder weights", "training schedule", "steps done"),
        rows,
        f"{claims}Every model evaluated on the same {c.images} {c.split} images of {c.data} "
        f"at the original resolution. seglab {c.seglab_version}, "
        f"PyTorch {c.machine['versions']['torch']}.",
    )


def _setup_differences(c: Comparison) -> Table:
    rows = [
        (Cell(name), *(Cell(v) for v in values)) for name, values in setup_differences(c.models)
    ]
    return Table(
        "Setup differences",
        ("option", *(m.name for m in c.models)),
        rows,
        "Every recorded training option whose value is not the same for every run (the run "
        "folder, progress bars and data-loading processes aside), and the steps each ran.",
    )


FIGURES = [
    ("per_class", "Per-class IoU"),
    ("confusion", "Confusion matrices"),
    ("frontier", "Accuracy against cost: every model in every form"),
    ("curves", "Training curves"),
    ("examples", "Examples"),
]


def examples_caption(comparison: Comparison) -> str:
    names = ", ".join(m.name for m in comparison.models)
    return (
        f"Columns: image, ground truth, then {names}. The first rows are the images where the "
        "models disagree most; the rest are spread through the split."
    )


def title(comparison: Comparison) -> str:
    return f"seglab comparison: {' vs '.join(m.name for m in comparison.models)}"


def write_reports(comparison: Comparison, figures: dict[str, Path], out: Path) -> None:
    """report.md and report.html in ``out``; ``figures`` maps each FIGURES key to its PNG."""
    (out / "report.md").write_text(markdown(comparison, figures))
    (out / "report.html").write_text(html_page(comparison, figures))


def markdown(comparison: Comparison, figures: dict[str, Path]) -> str:
    lines = [f"# {title(comparison)}", ""]
    verdict = verdict_lines(comparison)
    if verdict:
        lines += ["## Verdict", "", *(f"- {line}" for line in verdict), ""]
    for table in tables(comparison):
        lines += [
            f"## {table.title}",
            "",
            "| " + " | ".join(table.header) + " |",
            "|" + "|".join(" --- " for _ in table.header) + "|",
        ]
        lines += [
            "| " + " | ".join(f"**{c.text}**" if c.best else c.text for c in row) + " |"
            for row in table.rows
        ]
        lines += ["", table.note, ""]
    for key, heading in FIGURES:
        lines += [f"## {heading}", "", f"![{heading}]({figures[key].name})", ""]
        if key == "examples":
            lines += [examples_caption(comparison), ""]
    return "\n".join(lines)


CSS = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: .5rem 0; font-size: .92rem; }
th, td { border: 1px solid #ccc; padding: .3rem .6rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f3f3f3; } td.best { font-weight: bold; background: #e8f4e8; }
img { max-width: 100%; border: 1px solid #eee; } p.note { color: #555; font-size: .9rem; }
"""


def html_page(comparison: Comparison, figures: dict[str, Path]) -> str:
    esc = html.escape
    heading = title(comparison)
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(heading)}</title>",
        f"<style>{CSS}</style></head><body><h1>{esc(heading)}</h1>",
    ]
    verdict = verdict_lines(comparison)
    if verdict:
        items = "".join(f"<li>{esc(line)}</li>" for line in verdict)
        parts.append(f"<h2>Verdict</h2><ul class='verdict'>{items}</ul>")
    for table in tables(comparison):
        parts.append(f"<h2>{esc(table.title)}</h2><table><tr>")
        parts += [f"<th>{esc(h)}</th>" for h in table.header]
        parts.append("</tr>")
        for row in table.rows:
            cells = "".join(
                f"<td class='best'>{esc(c.text)}</td>" if c.best else f"<td>{esc(c.text)}</td>"
                for c in row
            )
            parts.append(f"<tr>{cells}</tr>")
        parts.append(f"</table><p class='note'>{esc(table.note)}</p>")
    for key, figure_title in FIGURES:
        data = base64.b64encode(figures[key].read_bytes()).decode()
        parts.append(
            f"<h2>{esc(figure_title)}</h2>"
            f"<img alt='{esc(figure_title)}' src='data:image/png;base64,{data}'>"
        )
        if key == "examples":
            parts.append(f"<p class='note'>{esc(examples_caption(comparison))}</p>")
    parts.append("</body></html>")
    return "\n".join(parts)
