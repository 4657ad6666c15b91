"""The verdict on constructed measurements: the most accurate model x form within a budget, the
closest when nothing fits, the frontier's knee without a budget, degenerate models left out; and
budgets read as a person writes them."""

import pytest

from seglab.errors import SeglabError
from seglab.reporting.budget import NO_BUDGET, Budget, parse_latency, parse_memory
from seglab.reporting.results import Flag
from seglab.reporting.verdict import decide, frontier, knee
from tests.reporting.helpers import form, model

# A: accurate and slow; B: less accurate and fast. Each in three forms.
POINTS = [
    form("A", "pytorch", 0.700, 400, memory_mb=300),
    form("A", "onnx", 0.700, 200, memory_mb=250),
    form("A", "onnx-int8", 0.695, 60, memory_mb=100),
    form("B", "pytorch", 0.600, 100, memory_mb=120),
    form("B", "onnx", 0.600, 50, memory_mb=80),
    form("B", "onnx-int8", 0.590, 20, memory_mb=40),
]
MODELS = [model("A", {"sky": 0.7}), model("B", {"sky": 0.6})]


def chosen(budget=NO_BUDGET, points=POINTS, models=MODELS):
    verdict = decide(points, models, budget)
    return (verdict.chosen.model, verdict.chosen.form), verdict


def test_under_a_budget_the_most_accurate_model_x_form_within_it():
    assert chosen(Budget(latency_ms=50))[0] == ("B", "onnx")  # 50 ms fits: "at most"
    assert chosen(Budget(latency_ms=70))[0] == ("A", "onnx-int8")
    assert chosen(Budget(memory_mb=90))[0] == ("B", "onnx")
    assert chosen(Budget(latency_ms=70, memory_mb=90))[0] == ("B", "onnx")
    _, verdict = chosen(Budget(latency_ms=50))
    assert verdict.fits and verdict.best == POINTS[1]  # the fastest of the most accurate
    assert verdict.speedup == pytest.approx(200 / 50)
    assert "within 50 ms" in verdict.rule


def test_when_nothing_fits_it_says_so_and_names_the_closest():
    pick, verdict = chosen(Budget(latency_ms=10))
    assert pick == ("B", "onnx-int8") and not verdict.fits
    assert verdict.rule.startswith("nothing fits 10 ms")
    # over by 2x in latency, 1.25x in memory: the larger overshoot decides
    pick, verdict = chosen(Budget(latency_ms=30, memory_mb=32))
    assert pick == ("B", "onnx-int8") and not verdict.fits


def test_without_a_budget_the_frontiers_knee():
    assert [(p.model, p.form) for p in frontier(POINTS)] == [
        ("B", "onnx-int8"),
        ("B", "onnx"),
        ("A", "onnx-int8"),
        ("A", "onnx"),
    ]
    # 10.5 points for 3x the latency is worth it ...
    assert chosen()[0] == ("A", "onnx-int8")
    # ... 1 point for 2.5x, or 1.5 for 10x, is not: fewer than 1 point per doubling
    closer = [form("A", "onnx", 0.605, 200), form("A", "onnx-int8", 0.60, 60), *POINTS[3:]]
    assert (knee(closer).model, knee(closer).form) == ("B", "onnx-int8")
    assert "knee" in chosen()[1].rule


def test_degenerate_models_are_left_out_of_the_choice_unless_all_are():
    stuck = model("A", {"sky": 0.7}, flags=[Flag("degenerate", "predicts sky on 99.9%")])
    pick, verdict = chosen(models=[stuck, MODELS[1]])
    assert pick == ("B", "onnx-int8") and verdict.best.model == "B"
    assert any("A is left out" in c for c in verdict.cautions)
    also = model("B", {"sky": 0.6}, flags=[Flag("degenerate", "predicts sky on 99.9%")])
    pick, verdict = chosen(models=[stuck, also])
    assert pick == ("A", "onnx-int8")
    assert "A is degenerate: predicts sky on 99.9%" in verdict.cautions


def test_budgets_are_read_as_written():
    assert parse_latency("50ms") == 50 and parse_latency("0.2s") == 200
    assert parse_latency(" 50 ") == 50
    assert parse_memory("300MB") == 300 and parse_memory("1.5GB") == 1536
    assert parse_memory("300mb") == 300
    with pytest.raises(SeglabError, match=r"--budget: 'fast' is not an amount, e.g. 50ms"):
        parse_latency("fast")
    with pytest.raises(SeglabError, match=r"--memory: '-3MB' must be positive"):
        parse_memory("-3MB")
    assert Budget(50, 300).describe() == "50 ms and 300 MB" and not Budget()
