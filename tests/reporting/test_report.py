"""The report renders typed results: the best value per class is data, drawn in bold in
Markdown and highlighted in HTML, and nobody is marked on a tie; the verdict opens both, in
words that say whether the models can be told apart and what the interval resampled; without a
verdict, why not and the remedy; a model's mean and spread over seeds and every run; a failed
premise said first; and the HTML reads on a phone."""

import dataclasses

from seglab.reporting.budget import NO_BUDGET, Budget
from seglab.reporting.plots import frontier_figure
from seglab.reporting.report import (
    SINGLE_SEED_CAUTION,
    Cell,
    difference_lines,
    headline,
    html_page,
    markdown,
    summary_table,
    tables,
    verdict_lines,
)
from seglab.reporting.results import Bootstrap, Flag
from seglab.reporting.verdict import decide
from tests.reporting.helpers import comparison, fake_figures, form, model


def test_the_best_per_class_is_data_and_each_writer_draws_it(tmp_path):
    c = comparison()
    per_class = next(t for t in tables(c) if t.title.startswith("Per-class"))
    rows = {row[0].text: row[1:] for row in per_class.rows}
    assert rows["sky"] == (Cell("50.00"), Cell("75.00", best=True))
    assert rows["road"] == (Cell("25.00"), Cell("25.00"))  # a tie marks nobody
    assert rows["sign"] == (Cell("absent"), Cell("absent"))
    assert "left out of mIoU: sign" in per_class.note
    figures = fake_figures(tmp_path)
    md = markdown(c, figures)
    assert "| sky | 50.00 | **75.00** |" in md and "| road | 25.00 | 25.00 |" in md
    page = html_page(c, figures)
    assert "<td class='best'>75.00</td>" in page and page.count("class='best'") == 1
    assert "**" not in page
    summary = tables(c)[0]
    training = summary.header.index("training min")
    assert summary.rows[0][training] == Cell("-")  # no recorded training time
    # latency is stated with the CPU flags that decide it (bf16 or not)
    assert "AMD EPYC 9R14 (avx2 avx512_bf16), 2 cores, 2 torch threads" in summary.note


def verdict_comparison(budget):
    forms = [
        form("a/mobilenet_v2", "pytorch", 0.70, 400.0),
        form("a/mobilenet_v2", "onnx-int8", 0.69, 100.0),
        form("b/vgg19", "pytorch", 0.75, 800.0),
    ]
    interval = Bootstrap(-0.06, -0.08, -0.04, 0.95, 0.0, 2000, 8)
    forms[1] = dataclasses.replace(forms[1], versus_best=interval)
    models = [model("a/mobilenet_v2", {"sky": 0.7}), model("b/vgg19", {"sky": 0.75})]
    return comparison(models, forms, decide(forms, models, budget))


def test_the_verdict_opens_both_reports_and_names_a_model_and_a_form(tmp_path):
    c = verdict_comparison(Budget(latency_ms=150))
    lines = verdict_lines(c)
    assert lines[0].startswith("Choose a/mobilenet_v2 as onnx-int8: 69.00% mIoU, 100.0 ms")
    assert lines[1] == "Rule: the most accurate model x form within 150 ms."
    assert lines[2] == (
        "Against the most accurate, b/vgg19 as pytorch (75.00% at 800.0 ms): -6.00 mIoU "
        "points, 95% interval [-8.00, -4.00]; 8.0x faster."
    )
    assert lines[3] == "As onnx-int8 it ran 4.0x faster than in PyTorch fp32 (400.0 ms)."
    figures = fake_figures(tmp_path)
    md = markdown(c, figures)
    assert md.index("## Verdict") < md.index("## Summary")
    assert f"- {lines[0]}" in md
    page = html_page(c, figures)
    assert page.index("<h2>Verdict</h2>") < page.index("<h2>Summary</h2>")
    forms_table = next(t for t in tables(c) if t.title == "Every model in every form")
    bold = [(row[0].text, row[1].text) for row in forms_table.rows if row[0].best]
    assert bold == [("a/mobilenet_v2", "onnx-int8")]
    assert c.to_dict()["verdict"]["chosen"]["form"] == "onnx-int8"
    assert not [line for line in lines if "busy" in line]  # a quiet machine: no caution


def test_a_verdict_timed_on_a_busy_machine_says_so():
    quiet = verdict_comparison(Budget(latency_ms=150))
    machine = {**quiet.machine, "load": {"others_busy": 0.8, "load_average": 3.1}}
    lines = verdict_lines(dataclasses.replace(quiet, machine=machine))
    assert lines[3] == (
        "As onnx-int8 it ran 4.0x faster than in PyTorch fp32 (400.0 ms) on a busy machine."
    )
    assert lines[-1] == (
        "Caution: the machine was busy: other processes used 80% of its 2 cores as this was "
        "measured, so its timings (and ratios of them) may not hold on a quiet machine; measure "
        "again alone before relying on them."
    )


def test_a_verdict_over_budget_says_nothing_fits():
    lines = verdict_lines(verdict_comparison(Budget(latency_ms=50)))
    assert lines[0].startswith(
        "Nothing fits the budget; the closest is a/mobilenet_v2 as onnx-int8"
    )
    assert lines[1].startswith("Rule: nothing fits 50 ms")


def test_without_a_verdict_only_why_not_and_the_remedy(tmp_path):
    stuck = [Flag("degenerate", "predicts sky on 99.9% of scored pixels")]
    models = [model("a/mobilenet_v2", {"sky": 0.1}, flags=stuck), model("b/vgg19", {"sky": 0.1})]
    forms = [form("a/mobilenet_v2", "pytorch", 0.1, 40.0), form("b/vgg19", "pytorch", 0.1, 90.0)]
    c = comparison(models, forms, verdict=None, no_verdict="every compared model is degenerate")
    lines = verdict_lines(c)
    assert lines == [
        "No verdict: every compared model is degenerate.",
        "Remedy: train longer (more --iterations or a longer --time-budget), or check the "
        "labels (seglab data check).",
    ]
    assert headline(c) == ["No verdict: every compared model is degenerate."]
    # a reason that already says what to do is not told twice
    c.no_verdict = "every model is degenerate. Train longer (a larger --iterations)"
    assert len(verdict_lines(c)) == 1
    figures = fake_figures(tmp_path)
    md, page = markdown(c, figures), html_page(c, figures)
    assert "Choose" not in md and "Rule:" not in md and "**No verdict: every" in md
    assert "class='best'" not in page  # nothing chosen, nothing marked
    forms_table = next(t for t in tables(c) if t.title == "Every model in every form")
    assert not any(cell.best for row in forms_table.rows for cell in row)
    assert summary_table(c)[1][0][0] == "a/mobilenet_v2"
    assert difference_lines(c)[0].startswith("b/vgg19 - a/mobilenet_v2: +12.50 mIoU points")
    frontier_figure(c)  # draws without a chosen point to ring


def test_one_model_has_no_differences_to_show():
    c = comparison([model("a/mobilenet_v2", {"sky": 0.5})])
    assert difference_lines(c) == []
    assert "Is the difference real?" not in [t.title for t in tables(c)]


def equal_pair(seeds=3, groups=None, seed_noise=None):
    """vgg19 most accurate by 0.4 points, not told from zero; mobilenet_v2 5x faster as int8."""
    runs = (seeds, seeds)
    close = Bootstrap(-0.004, -0.021, 0.013, 0.95, 0.3, 2000, 40, groups, runs, seed_noise)
    forms = [
        form("vgg19", "pytorch", 0.72, 500.0),
        dataclasses.replace(form("mobilenet_v2", "pytorch", 0.716, 250.0), versus_best=close),
        dataclasses.replace(form("mobilenet_v2", "onnx-int8", 0.716, 100.0), versus_best=close),
    ]
    per_seed = [(0.70, 0.72, 0.74), (0.70, 0.716, 0.732)]
    models = [
        model("vgg19", {"sky": 0.72}, seeds=per_seed[0][:seeds]),
        model("mobilenet_v2", {"sky": 0.716}, seeds=per_seed[1][:seeds]),
    ]
    return comparison(models, forms, decide(forms, models, NO_BUDGET))


def test_equals_are_called_indistinguishable_and_the_faster_is_chosen():
    c = equal_pair()
    lines = verdict_lines(c)
    assert lines[0].startswith("Choose mobilenet_v2 as onnx-int8: 71.60% mIoU, 100.0 ms")
    assert lines[1].startswith("Rule: the fastest of the model x forms as accurate as the most")
    assert lines[2] == (
        "vgg19 and mobilenet_v2 are indistinguishable here: +0.4 [-1.3, +2.1] mIoU points over "
        "3 seeds; mobilenet_v2 as onnx-int8 is 5.0x faster: choose it."
    )
    assert (
        "The 95% interval resamples the 40 images and draws each model's seed noise from its "
        "runs (3 and 3 seeds)." in lines
    )
    assert headline(c) == [lines[2]]
    forms_table = next(t for t in tables(c) if t.title == "Every model in every form")
    column = forms_table.header.index("as accurate")
    assert [row[column].text for row in forms_table.rows] == ["yes", "yes", "yes"]
    assert "within ±1.0 mIoU point or cannot be told from zero" in forms_table.note


def test_a_real_gap_says_which_is_more_accurate_and_what_was_resampled():
    gap = Bootstrap(-0.042, -0.063, -0.020, 0.95, 0.0, 2000, 240, 3, (3, 3))
    forms = [
        form("vgg19", "pytorch", 0.75, 500.0),
        dataclasses.replace(form("mobilenet_v2", "pytorch", 0.708, 100.0), versus_best=gap),
    ]
    models = [model("vgg19", {"sky": 0.75}), model("mobilenet_v2", {"sky": 0.708})]
    c = comparison(models, forms, decide(forms, models, NO_BUDGET))
    lines = verdict_lines(c)
    assert lines[2] == (
        "vgg19 is more accurate than mobilenet_v2: +4.2 [+2.0, +6.3] mIoU points over 3 seeds "
        "(groups: 3 resampled); choose vgg19 as pytorch."
    )
    assert lines[3] == (
        "The 95% interval resamples the 3 groups of the 240 images (a group's images drawn "
        "together) and draws each model's seed noise from its runs (3 and 3 seeds)."
    )


def test_a_single_seed_says_seed_noise_is_unmeasured_and_what_stands_in():
    estimated = verdict_lines(equal_pair(seeds=1, seed_noise=0.006))
    assert estimated[2].endswith(
        "mIoU points over one seed each; mobilenet_v2 as onnx-int8 is 5.0x faster: choose it."
    )
    assert estimated[3].startswith("As onnx-int8 it ran 2.5x faster")
    assert estimated[4] == (
        "The 95% interval resamples the 40 images; with a single seed per model, seed noise is "
        f"unmeasured: 0.6 mIoU points per run are assumed. {SINGLE_SEED_CAUTION}"
    )
    assert "seglab's calibration measured (6.5 points" in SINGLE_SEED_CAUTION
    assert "run compare --seeds 3" in SINGLE_SEED_CAUTION
    # no seed noise at all: only between two forms of one trained model (compare.versus_best)
    images_only = verdict_lines(equal_pair(seeds=1))
    assert images_only[4].endswith(
        "seed noise does not enter: both are forms of the same trained weights."
    )


def test_several_seeds_show_mean_and_spread_and_every_run(tmp_path):
    c = equal_pair()
    header, rows = summary_table(c)
    column = header.index("mIoU %")
    assert rows[0][column] == "72.00 ± 2.00" and rows[1][column] == "71.60 ± 1.60"
    summary = tables(c)[0]
    assert "mean ± standard deviation over each model's seeds" in summary.note
    runs = next(t for t in tables(c) if t.title == "Every run")
    assert runs.header == (
        "model",
        "run",
        "seed",
        "fold",
        "mIoU %",
        "steps",
        "curve noise (points)",
    )
    assert [tuple(cell.text for cell in row) for row in runs.rows[:2]] == [
        ("vgg19", "runs/vgg19/seed0", "0", "-", "70.00", "100", "-"),
        ("vgg19", "runs/vgg19/seed1", "1", "-", "72.00", "100", "-"),
    ]
    assert len(runs.rows) == 6
    assert "| vgg19 | 72.00 ± 2.00 |" in markdown(c, fake_figures(tmp_path))
    # a single run per model: its mIoU alone, and no runs table without recorded runs
    single = comparison()
    assert summary_table(single)[1][1][1] == "50.00"
    assert "Every run" not in [t.title for t in tables(single)]


def test_a_failed_premise_opens_the_report_and_the_verdict(tmp_path):
    c = equal_pair()
    for m in c.models:
        m.setup = dataclasses.replace(m.setup, weights_requested="auto")
    expected = (
        "The models were trained from scratch: ImageNet weights were requested (weights auto) "
        "but not found here, so they started from random weights. This is not the "
        "transfer-learning comparison"
    )
    assert headline(c)[0].startswith(expected)
    assert any(line.startswith(expected) for line in verdict_lines(c))
    figures = fake_figures(tmp_path)
    md, page = markdown(c, figures), html_page(c, figures)
    assert md.index(expected) < md.index("## Verdict")
    assert page.index("trained from scratch") < page.index("<h2>Verdict</h2>")
    # one model only, or ImageNet weights found: said of that one, or not at all
    c.models[0].setup = dataclasses.replace(c.models[0].setup, encoder_weights="imagenet")
    assert headline(c)[0].startswith("mobilenet_v2 was trained from scratch")
    c.models[1].setup = dataclasses.replace(c.models[1].setup, weights_requested="none")
    assert len(headline(c)) == 1 and "scratch" not in " ".join(verdict_lines(c))


def test_the_html_page_reads_on_a_phone(tmp_path):
    page = html_page(equal_pair(), fake_figures(tmp_path))
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    assert page.count("<table>") == page.count("<div class='scroll'><table>") > 3
    assert "div.scroll { overflow-x: auto;" in page
    assert "img { max-width: 100%;" in page


def test_the_headline_names_the_gap_and_why_the_choice():
    # under a budget that rules the most accurate out
    c = verdict_comparison(Budget(latency_ms=150))
    assert headline(c) == [
        "b/vgg19 is more accurate than a/mobilenet_v2: +6.0 [+4.0, +8.0] mIoU points over one "
        "seed each; a/mobilenet_v2 as onnx-int8 is the most accurate within 150 ms: choose it."
    ]
    assert headline(verdict_comparison(Budget(latency_ms=50)))[0].endswith(
        "; nothing fits 50 ms; the closest is a/mobilenet_v2 as onnx-int8."
    )
    # the most accurate is also the fastest of its equals
    close = Bootstrap(-0.004, -0.021, 0.013, 0.95, 0.3, 2000, 40)
    forms = [
        form("mobilenet_v2", "pytorch", 0.72, 100.0),
        dataclasses.replace(form("vgg19", "pytorch", 0.716, 500.0), versus_best=close),
    ]
    models = [model("mobilenet_v2", {"sky": 0.72}), model("vgg19", {"sky": 0.716})]
    c = comparison(models, forms, decide(forms, models, NO_BUDGET))
    assert verdict_lines(c)[2] == (
        "mobilenet_v2 and vgg19 are indistinguishable here: +0.4 [-1.3, +2.1] mIoU points over "
        "one seed each; mobilenet_v2 as pytorch is the fastest of them: choose it."
    )
    # one model: its forms are set against each other
    worse = Bootstrap(-0.05, -0.07, -0.03, 0.95, 0.0, 2000, 40)
    forms = [
        form("mobilenet_v2", "pytorch", 0.72, 100.0),
        dataclasses.replace(form("mobilenet_v2", "onnx-int8", 0.67, 40.0), versus_best=worse),
    ]
    c = comparison(models[:1], forms, decide(forms, models[:1], NO_BUDGET))
    assert verdict_lines(c)[2] == (
        "mobilenet_v2 as pytorch is more accurate than mobilenet_v2 as onnx-int8: +5.0 [+3.0, "
        "+7.0] mIoU points over one seed each; choose mobilenet_v2 as pytorch."
    )
