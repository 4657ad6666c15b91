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

from seglab.engine.machine import busy_note, describe_machine
from seglab.engine.metrics import DEGENERATE_SHARE
from seglab.formatting import percent
from seglab.outputs import write_text_atomic
from seglab.reporting.budget import Budget
from seglab.reporting.checks import (
    same_and_different,
    setup_differences,
    steps_done,
    why_not_judged,
)
from seglab.reporting.forms import FORMS
from seglab.reporting.results import Bootstrap, Comparison, FormResult, ModelResult, Verdict
from seglab.reporting.statistics import SEED_SD_FLOOR
from seglab.reporting.verdict import candidates, describe_margin, frontier, most_accurate


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


def mean_and_spread(model: ModelResult) -> str:
    """The model's mIoU in percent: "71.20 ± 0.85" (mean ± sd over seeds) with several seeds,
    the one run's otherwise."""
    sd = model.miou_sd
    return percent(model.miou) + ("" if sd is None else f" ± {100 * sd:.2f}")


SUMMARY_COLUMNS: list[tuple[str, Callable[[ModelResult], str]]] = [
    ("model", lambda m: m.name),
    ("mIoU %", mean_and_spread),
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
        if b is None:
            continue
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


NO_VERDICT_REMEDY = (
    "Remedy: train longer (more --iterations or a longer --time-budget), or check the labels "
    "(seglab data check)."
)


def premise_line(c: Comparison) -> str | None:
    """What the comparison is not, when ImageNet weights were asked for (auto) but not found:
    the models started from random weights, so this is no transfer-learning comparison."""
    failed = [m.name for m in c.models if m.setup.premise_failed]
    if not failed:
        return None
    if len(failed) == len(c.models):
        who, they = "The models were", "they"
    else:
        who = f"{', '.join(failed)} " + ("was" if len(failed) == 1 else "were")
        they = "it" if len(failed) == 1 else "they"
    return (
        f"{who} trained from scratch: ImageNet weights were requested (weights auto) but not "
        f"found here, so {they} started from random weights. This is not the "
        "transfer-learning comparison; scores and ranking may differ from pretrained encoders'."
    )


def seeds_and_groups(b: Bootstrap) -> str:
    """What the interval resampled, briefly: "over 3 seeds (groups: 4 resampled)"."""
    runs_a, runs_b = b.runs
    if runs_a == runs_b:
        text = "over one seed each" if runs_a == 1 else f"over {runs_a} seeds"
    else:
        text = f"over {runs_a} and {runs_b} seeds"
    return text + ("" if b.groups is None else f" (groups: {b.groups} resampled)")


def interval_basis(b: Bootstrap) -> str:
    """What an interval covers, in a sentence: the images or their groups resampled, the seeds,
    and where a model ran with one seed, that its seed noise is unmeasured and what stands in."""
    level = round(100 * b.level)
    units = (
        f"the {b.images} images"
        if b.groups is None
        else f"the {b.groups} groups of the {b.images} images (a group's images drawn together)"
    )
    if b.runs == (1, 1):
        text = f"The {level}% interval resamples {units}; with a single seed per model"
    else:
        text = (
            f"The {level}% interval resamples {units} and draws each model's seed noise "
            f"from its runs ({b.runs[0]} and {b.runs[1]} seeds)"
        )
        if 1 not in b.runs:
            return text + "."
        text += "; for the model with one seed"
    if b.seed_noise is None:  # only two forms of one trained model: no seed between them
        return f"{text}, seed noise does not enter: both are forms of the same trained weights."
    return (
        f"{text}, seed noise is unmeasured: {100 * b.seed_noise:.1f} mIoU points per run are "
        f"assumed. {SINGLE_SEED_CAUTION}"
    )


# What seglab's own A/A calibration found (docs/benchmarks.md, "Verdict calibration").
SINGLE_SEED_CAUTION = (
    "That is the larger of the runs' validation-curve noise and the spread between seeds "
    f"that seglab's calibration measured ({100 * SEED_SD_FLOOR:g} points; a run's curve shows "
    "about a sixth of it), so one seed a side separates only large gaps: run compare --seeds 3 "
    "to measure the noise."
)


def _gap(point: FormResult, best: FormResult) -> tuple[str, Bootstrap | None]:
    """The best's lead over ``point`` in words, "+0.4 [-1.3, +2.1] mIoU points over 3 seeds",
    and the interval it comes from (None where there is none)."""
    b = point.versus_best
    if b is None:
        return f"{100 * (best.miou - point.miou):+.1f} mIoU points (no interval)", None
    return (
        f"{-100 * b.difference:+.1f} [{-100 * b.ci_high:+.1f}, {-100 * b.ci_low:+.1f}] mIoU "
        f"points {seeds_and_groups(b)}",
        b,
    )


def _names(best: FormResult, other: FormResult) -> tuple[str, str]:
    """The two points' names: their models, or their labels when of the same model."""
    if best.model == other.model:
        return best.label, other.label
    return best.model, other.model


def runner_up(c: Comparison, v: Verdict) -> FormResult | None:
    """What the most accurate point is set against: the most accurate point of another model
    (degenerate ones aside), or with one model, its next form; None when there is neither."""
    pool = [p for p in candidates(c.forms, c.models) if p != v.best]
    others = [p for p in pool if p.model != v.best.model] or pool
    return most_accurate(others) if others else None


def verdict_sentence(c: Comparison) -> tuple[str, Bootstrap | None]:
    """The verdict in one sentence with its uncertainty, and the interval it quotes: equals
    named as such and the cheaper chosen, a real gap stated as one."""
    v = c.verdict
    if v is None:
        return (f"No verdict: {c.no_verdict}." if c.no_verdict else ""), None
    chosen, best = v.chosen, v.best
    other = runner_up(c, v) if chosen == best else chosen
    if other is None:
        statement, b, equal = f"{best.label} is the only model x form measured", None, False
    else:
        gap, b = _gap(other, best)
        first, second = _names(best, other)
        equal = other.label in v.equivalent
        statement = (
            f"{first} and {second} are indistinguishable here: {gap}"
            if equal
            else f"{first} is more accurate than {second}: {gap}"
        )
    return f"{statement}; {_action(v, equal)}.", b


def _action(v: Verdict, equal: bool) -> str:
    """What to do, and why that one: ``equal``, whether the point the verdict sentence
    contrasts with the most accurate one counts as equally accurate."""
    chosen, budget = v.chosen, Budget(v.latency_budget_ms, v.memory_budget_mb)
    within = f" within {budget.describe()}" if budget else ""
    if not v.fits:
        return f"nothing fits {budget.describe()}; the closest is {chosen.label}"
    if chosen == v.best and equal:
        return f"{chosen.label} is the fastest of them{within}: choose it"
    if chosen == v.best:
        return f"choose {chosen.label}"
    if chosen.label in v.equivalent:
        return f"{chosen.label} is {_speed(v.speedup)}: choose it"
    return f"{chosen.label} is the most accurate{within}: choose it"


def headline(c: Comparison) -> list[str]:
    """What opens the report under its title: the failed premise, then the verdict in a
    sentence."""
    sentence, _ = verdict_sentence(c)
    return [line for line in (premise_line(c), sentence) if line]


def verdict_lines(c: Comparison) -> list[str]:
    """The verdict in words: the model x form chosen, how, what it gives up against the most
    accurate one and what it gains, what the interval covers, and the cautions. Without a
    verdict, why not and the remedy; empty when there is neither."""
    v, premise = c.verdict, premise_line(c)
    if v is None:
        if not c.no_verdict:
            return [premise] if premise else []
        remedy = [] if "train longer" in c.no_verdict.lower() else [NO_VERDICT_REMEDY]
        return [f"No verdict: {c.no_verdict}.", *remedy, *([premise] if premise else [])]
    chosen = v.chosen
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
    sentence, b = verdict_sentence(c)
    lines.append(sentence if chosen == v.best or chosen.label in v.equivalent else _versus_best(v))
    pytorch = _pytorch_latency(c, chosen.model)
    busy = busy_note(c.machine)
    if chosen.form != "pytorch" and pytorch is not None:
        timed = " on a busy machine" if busy else ""
        lines.append(
            f"As {chosen.form} it ran {_speed(pytorch / chosen.latency_ms)} than in PyTorch "
            f"fp32 ({pytorch:.1f} ms){timed}."
        )
    if b is not None:
        lines.append(interval_basis(b))
    lines += [premise] if premise else []
    lines += [f"Caution: {caution}." for caution in v.cautions]
    lines += [f"Caution: {busy}; measure again alone before relying on them."] if busy else []
    if v.exported:
        name = Path(v.exported).name
        lines.append(f"Written to {v.exported}, its card beside it: {name}.card.json, .card.md.")
    return lines


def _versus_best(v: Verdict) -> str:
    """The chosen point against the most accurate one, when the choice gives accuracy up."""
    best, b = v.best, v.chosen.versus_best
    measured = f"{best.label} ({percent(best.miou)}% at {best.latency_ms:.1f} ms)"
    if b is None:
        return f"The most accurate is {measured}; {_speed(v.speedup)}."
    return (
        f"Against the most accurate, {measured}: {100 * b.difference:+.2f} mIoU points, "
        f"{round(100 * b.level)}% interval [{100 * b.ci_low:+.2f}, {100 * b.ci_high:+.2f}]; "
        f"{_speed(v.speedup)}."
    )


def tables(comparison: Comparison) -> list[Table]:
    """The report's tables, in order: summary, every run, every form, per-class IoU, the
    difference, the setup (each where there is something to show)."""
    differences = _setup_differences(comparison)
    difference = _difference(comparison)
    return [
        _summary(comparison),
        *([_runs(comparison)] if any(m.runs for m in comparison.models) else []),
        *([_forms(comparison)] if comparison.forms else []),
        _per_class(comparison),
        *([difference] if difference.rows else []),
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
        + _repeats_note(c)
        + (FLAGS_NOTE + " ".join(flagged) if flagged else ""),
    )


def _repeats_note(c: Comparison) -> str:
    """How seeds and folds enter the summary's mIoU."""
    note = ""
    if any(m.seeds > 1 for m in c.models):
        note += " mIoU: the mean ± standard deviation over each model's seeds (see Every run)."
    if c.folds:
        note += (
            f" Runs are {c.folds}-fold cross-validation: each image is scored by the run that "
            "held its fold out."
        )
    return note


def _runs(c: Comparison) -> Table:
    """Every training run of every model: its seed, fold, mIoU and steps."""
    rows = [
        tuple(
            Cell(text)
            for text in (
                m.name,
                r.run,
                str(r.seed),
                r.fold or "-",
                percent(r.miou),
                "-" if r.steps_done is None else str(r.steps_done),
                "-" if r.curve_noise is None else f"{100 * r.curve_noise:.2f}",
            )
        )
        for m in c.models
        for r in m.runs
    ]
    return Table(
        "Every run",
        ("model", "run", "seed", "fold", "mIoU %", "steps", "curve noise (points)"),
        rows,
        "Each training run's mIoU on the images it was scored on (with folds, its own held-out "
        "fold). A model's mIoU in the summary is the mean over its seeds. Curve noise: the "
        "seed noise of one run estimated from its last validations (the spread of their "
        "successive differences), used where a model ran a single seed.",
    )


FLAGS_NOTE = (
    f" Flags: degenerate, a model that predicts one class on at least {DEGENERATE_SHARE:.0%} of "
    "the pixels or does no better than predicting the commonest class everywhere; undertrained, "
    "a run whose validation curve was still rising steeply at its end, or that ran fewer steps "
    "than its data's fingerprint needs (a run stopped by its time budget as intended is not). "
)


def _forms(c: Comparison) -> Table:
    intervals = [f.versus_best for f in c.forms if f.versus_best is not None]
    level = round(100 * intervals[0].level) if intervals else 95
    on_frontier = frontier(c.forms)
    chosen = c.verdict.chosen if c.verdict else None
    equals = c.verdict.equivalent if c.verdict else []
    rows = []
    for f in c.forms:
        b, pytorch = f.versus_best, _pytorch_latency(c, f.model)
        cells = (
            f.model,
            f.form,
            percent(f.miou),
            "most accurate" if b is None else f"{100 * b.difference:+.2f}",
            "-" if b is None else f"[{100 * b.ci_low:+.2f}, {100 * b.ci_high:+.2f}]",
            "yes" if f.label in equals else "",
            f"{f.latency_ms:.1f}",
            "-" if pytorch is None else f"{pytorch / f.latency_ms:.2f}",
            f"{f.model_memory_mb:.0f}",
            f"{f.peak_memory_mb:.0f}",
            "yes" if f in on_frontier else "",
        )
        rows.append(tuple(Cell(text, f == chosen) for text in cells))
    return Table(
        "Every model in every form",
        (
            "model",
            "form",
            "mIoU %",
            "vs most accurate (points)",
            f"{level}% interval",
            "as accurate",
            "latency ms (median)",
            "speed vs PyTorch fp32",
            "model memory MB",
            "peak memory MB",
            "frontier",
        ),
        rows,
        _forms_note(c, intervals[0] if intervals else None),
    )


def _forms_note(c: Comparison, interval: Bootstrap | None) -> str:
    forms = " ".join(f"{form.name}: {form.description}." for form in FORMS)
    missing = "".join(
        f" Not measured here: {form} ({why})." for form, why in c.unavailable_forms.items()
    )
    equal = (
        f" As accurate: its difference to the most accurate is within "
        f"{describe_margin(c.verdict.margin)} or cannot be told from zero."
        if c.verdict
        else ""
    )
    basis = f" {interval_basis(interval)}" if interval else ""
    return (
        f"{forms} INT8 calibrated on {c.calibration_images} training images. Each form "
        f"evaluated on the same {c.images} {c.split} images; latency at batch 1 and "
        f"{c.eval_size[0]}x{c.eval_size[1]} on this machine's CPU; memory as in the summary "
        "(a --memory budget applies to model memory). The interval: bootstrap of the mIoU "
        f"difference to the most accurate model x form.{basis}{equal} Frontier: no other model "
        f"x form is both as fast and as accurate. The verdict's choice is in bold.{missing}"
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
    """Each model against the first: the difference, its interval and what it resampled (no
    rows when no model has a difference to the first)."""
    compared = [(m, m.versus_first) for m in c.models[1:] if m.versus_first is not None]
    rows, verdicts = [], []
    for m, b in compared:
        rows.append(
            (
                Cell(f"{m.name} - {c.first.name}"),
                Cell(f"{100 * b.difference:+.2f}"),
                Cell(f"[{100 * b.ci_low:+.2f}, {100 * b.ci_high:+.2f}]"),
                Cell(f"{100 * b.p_a_better:.0f}%"),
                Cell(f"{b.runs[0]} and {b.runs[1]}"),
            )
        )
        reason = why_not_judged(m, c.first)
        sample = "these images" if b.runs == (1, 1) else "these images and seeds"
        verdicts.append(
            f"{m.name} vs {c.first.name}: "
            + (
                f"cannot be judged: {reason}."
                if reason
                else f"the interval excludes 0: unlikely to be chance on {sample}."
                if b.excludes_zero
                else f"the interval includes 0: {sample} cannot tell the two apart."
            )
        )
    first = compared[0][1] if compared else None
    level = round(100 * first.level) if first else 95
    note = (
        f"Bootstrap: {first.samples} resamples, mIoU recomputed from the summed confusion "
        f"matrices each time. {interval_basis(first)} "
        if first
        else ""
    )
    return Table(
        "Is the difference real?",
        ("difference", "mIoU points", f"{level}% interval", "resamples where it is ahead", "seeds"),
        rows,
        note + " ".join(verdicts),
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
    write_text_atomic(out / "report.md", markdown(comparison, figures))
    write_text_atomic(out / "report.html", html_page(comparison, figures))


def markdown(comparison: Comparison, figures: dict[str, Path]) -> str:
    lines = [f"# {title(comparison)}", ""]
    lines += [line for sentence in headline(comparison) for line in (f"**{sentence}**", "")]
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
body { font-family: system-ui, sans-serif; margin: 2rem auto; padding: 0 1rem; max-width: 1100px;
  color: #222; line-height: 1.4; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
p.headline { font-size: 1.05rem; font-weight: 600; }
div.scroll { overflow-x: auto; -webkit-overflow-scrolling: touch; max-width: 100%; }
table { border-collapse: collapse; margin: .5rem 0; font-size: .92rem; }
th, td { border: 1px solid #ccc; padding: .3rem .6rem; text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
th { background: #f3f3f3; } td.best { font-weight: bold; background: #e8f4e8; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
p.note { color: #555; font-size: .9rem; }
@media (max-width: 600px) { body { margin: 1rem auto; } h1 { font-size: 1.3rem; } }
"""


def html_page(comparison: Comparison, figures: dict[str, Path]) -> str:
    """One self-contained page that also reads on a phone: the viewport follows the device's
    width, wide tables scroll sideways in their own box, images shrink to the page."""
    esc = html.escape
    heading = title(comparison)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(heading)}</title><style>{CSS}</style></head>",
        f"<body><h1>{esc(heading)}</h1>",
        *(f"<p class='headline'>{esc(sentence)}</p>" for sentence in headline(comparison)),
    ]
    verdict = verdict_lines(comparison)
    if verdict:
        items = "".join(f"<li>{esc(line)}</li>" for line in verdict)
        parts.append(f"<h2>Verdict</h2><ul class='verdict'>{items}</ul>")
    parts += [_html_table(table) for table in tables(comparison)]
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


def _html_table(table: Table) -> str:
    """A table in its own sideways-scrolling box (a phone is narrower than its columns)."""
    esc = html.escape
    header = "".join(f"<th>{esc(h)}</th>" for h in table.header)
    rows = "".join(
        "<tr>"
        + "".join(
            f"<td class='best'>{esc(c.text)}</td>" if c.best else f"<td>{esc(c.text)}</td>"
            for c in row
        )
        + "</tr>"
        for row in table.rows
    )
    return (
        f"<h2>{esc(table.title)}</h2><div class='scroll'><table><tr>{header}</tr>\n{rows}"
        f"</table></div><p class='note'>{esc(table.note)}</p>"
    )
