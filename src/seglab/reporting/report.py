"""The comparison report, as Markdown (report.md, beside its PNGs) and as one self-contained
HTML file (report.html, images embedded) that opens in any browser. Both render the same
tables (cells marked best as data, each writer drawing it its own way), and the command line
prints the summary table and the verdicts from the same functions."""

from __future__ import annotations

import base64
import html
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from seglab.engine.evaluate import percent
from seglab.reporting.results import Comparison, ModelResult


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
]


def summary_table(comparison: Comparison) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    """(header, rows) of the summary, as plain text: what the command line prints."""
    header = tuple(title for title, _ in SUMMARY_COLUMNS)
    return header, [tuple(cell(m) for _, cell in SUMMARY_COLUMNS) for m in comparison.models]


def difference_lines(comparison: Comparison) -> list[str]:
    """One line per model after the first: its mIoU difference to the first and the interval."""
    lines = []
    for m in comparison.models[1:]:
        b = m.versus_first
        lines.append(
            f"{m.name} - {comparison.first.name}: {100 * b.difference:+.2f} mIoU points, "
            f"{round(100 * b.level)}% interval [{100 * b.ci_low:+.2f}, {100 * b.ci_high:+.2f}]"
        )
    return lines


def tables(comparison: Comparison) -> list[Table]:
    """The report's tables, in order: summary, per-class IoU, the difference, the setup."""
    return [
        _summary(comparison),
        _per_class(comparison),
        _difference(comparison),
        _setup(comparison),
    ]


def _summary(c: Comparison) -> Table:
    header, rows = summary_table(c)
    machine = c.machine
    return Table(
        "Summary",
        header,
        [tuple(Cell(text) for text in row) for row in rows],
        f"Evaluated on {c.images} {c.split} images of {c.data} at "
        f"{c.eval_size[0]}x{c.eval_size[1]}. Latency: batch 1, median of repeats, "
        f"{c.first.cost.precision} on this machine's CPU ({machine['cpu']}, "
        f"{machine['threads']} threads); peak memory: resident memory of a fresh process that "
        "loads the model and runs batch-1 inference; model memory: that peak less the same "
        "process before loading the model (PyTorch alone).",
    )


def _per_class(c: Comparison) -> Table:
    rows = []
    for name in c.classes:
        values = [m.iou(name) for m in c.models]
        present = [v for v in values if v is not None]
        # The best is marked only when unique: a tie (all models at 0, say) marks nobody.
        best = max(present) if present and present.count(max(present)) == 1 else None
        rows.append((Cell(name), *(Cell(percent(v), v is not None and v == best) for v in values)))
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
        verdicts.append(
            f"{m.name} vs {c.first.name}: "
            + (
                "the interval excludes 0: unlikely to be chance on these images."
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
        )
        for m in c.models
    ]
    return Table(
        "Setup",
        ("model", "encoder", "run", "encoder weights", "training schedule"),
        rows,
        "Every model: same data, split, seed and augmentations; evaluated at the original "
        f"resolution. seglab {c.seglab_version}, PyTorch {c.machine['torch']}.",
    )


FIGURES = [
    ("per_class", "Per-class IoU"),
    ("frontier", "Accuracy against cost: mIoU and latency"),
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
