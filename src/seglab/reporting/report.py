"""The comparison report, as Markdown (report.md, beside its PNGs) and as one self-contained
HTML file (report.html, images embedded) that opens in any browser."""

from __future__ import annotations

import base64
import html
from pathlib import Path

SUMMARY_COLUMNS = [
    ("model", lambda m: m["name"]),
    ("mIoU %", lambda m: f"{100 * m['metrics']['miou']:.2f}"),
    ("pixel acc %", lambda m: f"{100 * m['metrics']['pixel_accuracy']:.2f}"),
    ("mean class acc %", lambda m: f"{100 * m['metrics']['mean_class_accuracy']:.2f}"),
    ("params (M)", lambda m: f"{m['cost']['parameters_m']:.1f}"),
    ("GFLOPs", lambda m: f"{m['cost']['gflops']:.1f}"),
    ("latency ms (median)", lambda m: f"{m['cost']['latency_ms']:.1f}"),
    ("images/s", lambda m: f"{m['cost']['images_per_s']:.2f}"),
    ("peak memory MB", lambda m: f"{m['cost']['peak_memory_mb']:.0f}"),
    ("model memory MB", lambda m: f"{m['cost']['model_memory_mb']:.0f}"),
    ("training min", lambda m: f"{m['cost']['training_minutes']:.1f}"),
]


def sections(results: dict) -> list[tuple[str, list[str], list[list[str]], str]]:
    """(title, table header, table rows, text after) for each section."""
    models = results["models"]
    summary = (
        "Summary",
        [c for c, _ in SUMMARY_COLUMNS],
        [[f(m) for _, f in SUMMARY_COLUMNS] for m in models],
        f"Evaluated on {results['images']} {results['split']} images of {results['data']} at "
        f"{results['eval_size'][0]}x{results['eval_size'][1]}. Latency: batch 1, median of "
        f"repeats, {models[0]['cost']['precision']} on this machine "
        f"({results['machine']['cpu']}, {results['machine']['threads']} threads); peak memory: "
        "resident memory of a fresh process that loads the model and runs batch-1 inference; "
        "model memory: that peak less the same process before loading the model (PyTorch alone).",
    )
    per_class_rows = []
    for name in results["classes"]:
        values = [m["metrics"]["per_class"][name]["iou"] for m in models]
        present = [v for v in values if v is not None]
        # Bold marks a unique best; ties (all models at 0, say) mark nobody.
        best = max(present) if present and present.count(max(present)) == 1 else None
        cells = [
            "absent" if v is None else (f"**{100 * v:.2f}**" if v == best else f"{100 * v:.2f}")
            for v in values
        ]
        per_class_rows.append([name, *cells])
    absent = sorted({c for m in models for c in m["metrics"]["absent_classes"]})
    per_class = (
        "Per-class IoU (%)",
        ["class", *[m["name"] for m in models]],
        per_class_rows,
        "The best model per class is in bold."
        + (
            f" Absent from truth and prediction, left out of mIoU: {', '.join(absent)}."
            if absent
            else ""
        ),
    )
    rows, verdicts = [], []
    for m in models[1:]:
        b = m["versus_first"]
        rows.append(
            [
                f"{m['name']} - {models[0]['name']}",
                f"{100 * b['difference']:+.2f}",
                f"[{100 * b['ci_low']:+.2f}, {100 * b['ci_high']:+.2f}]",
                f"{100 * b['p_a_better']:.0f}%",
            ]
        )
        real = b["ci_low"] > 0 or b["ci_high"] < 0
        verdicts.append(
            f"{m['name']} vs {models[0]['name']}: "
            + (
                "the interval excludes 0: unlikely to be chance on these images."
                if real
                else "the interval includes 0: these images cannot tell the two apart."
            )
        )
    difference = (
        "Is the difference real?",
        [
            "difference",
            "mIoU points",
            f"{int(100 * models[1]['versus_first']['level'])}% interval",
            "resamples where it is ahead",
        ],
        rows,
        f"Bootstrap over images: {models[1]['versus_first']['samples']} resamples of the "
        f"{results['images']} images with replacement, mIoU recomputed from the summed confusion "
        "matrices each time. " + " ".join(verdicts),
    )
    setup = (
        "Setup",
        ["model", "run", "encoder weights", "training schedule"],
        [
            [
                m["name"],
                m["run"],
                str(m.get("encoder_weights") or "random init"),
                m.get("schedule", ""),
            ]
            for m in models
        ],
        "Every model: same data, split, seed and augmentations; evaluated at the original "
        f"resolution. seglab {results.get('seglab_version', '')}, "
        f"PyTorch {results['machine']['torch']}.",
    )
    return [summary, per_class, difference, setup]


FIGURES = [
    ("per_class", "Per-class IoU"),
    ("frontier", "Accuracy against cost: mIoU and latency"),
    ("curves", "Training curves"),
    ("examples", "Examples"),
]


def examples_caption(results: dict) -> str:
    names = ", ".join(m["name"] for m in results["models"])
    return (
        f"Columns: image, ground truth, then {names}. The first rows are the images where the "
        "models disagree most; the rest are spread through the split."
    )


def write_reports(results: dict, figures: dict[str, Path], out: Path) -> None:
    (out / "report.md").write_text(_markdown(results, figures))
    (out / "report.html").write_text(_html(results, figures))


def _markdown(results: dict, figures: dict[str, Path]) -> str:
    lines = [f"# seglab comparison: {' vs '.join(m['name'] for m in results['models'])}", ""]
    for title, header, rows, text in sections(results):
        lines += [
            f"## {title}",
            "",
            "| " + " | ".join(header) + " |",
            "|" + "|".join(" --- " for _ in header) + "|",
        ]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        lines += ["", text, ""]
    for key, title in FIGURES:
        lines += [f"## {title}", "", f"![{title}]({figures[key].name})", ""]
        if key == "examples":
            lines += [examples_caption(results), ""]
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


def _html(results: dict, figures: dict[str, Path]) -> str:
    esc = html.escape
    title = f"seglab comparison: {' vs '.join(m['name'] for m in results['models'])}"
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)}</title>",
        f"<style>{CSS}</style></head><body><h1>{esc(title)}</h1>",
    ]
    for heading, header, rows, text in sections(results):
        parts.append(f"<h2>{esc(heading)}</h2><table><tr>")
        parts += [f"<th>{esc(h)}</th>" for h in header]
        parts.append("</tr>")
        for row in rows:
            cells = []
            for cell in row:
                bold = cell.startswith("**")
                cells.append(
                    f"<td class='best'>{esc(cell.strip('*'))}</td>"
                    if bold
                    else f"<td>{esc(cell)}</td>"
                )
            parts.append("<tr>" + "".join(cells) + "</tr>")
        parts.append(f"</table><p class='note'>{esc(text)}</p>")
    for key, heading in FIGURES:
        data = base64.b64encode(figures[key].read_bytes()).decode()
        parts.append(
            f"<h2>{esc(heading)}</h2><img alt='{esc(heading)}' src='data:image/png;base64,{data}'>"
        )
        if key == "examples":
            parts.append(f"<p class='note'>{esc(examples_caption(results))}</p>")
    parts.append("</body></html>")
    return "\n".join(parts)
