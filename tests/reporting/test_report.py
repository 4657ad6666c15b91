"""The report renders typed results: the best value per class is data, drawn in bold in
Markdown and highlighted in HTML, and nobody is marked on a tie; the verdict opens both."""

import dataclasses

from seglab.reporting.budget import Budget
from seglab.reporting.report import Cell, html_page, markdown, tables, verdict_lines
from seglab.reporting.results import Bootstrap
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
    assert lines[3] == "As onnx-int8 it runs 4.0x faster than in PyTorch fp32 (400.0 ms)."
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


def test_a_verdict_over_budget_says_nothing_fits():
    lines = verdict_lines(verdict_comparison(Budget(latency_ms=50)))
    assert lines[0].startswith(
        "Nothing fits the budget; the closest is a/mobilenet_v2 as onnx-int8"
    )
    assert lines[1].startswith("Rule: nothing fits 50 ms")
