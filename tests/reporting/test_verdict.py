"""The verdict on constructed measurements: the fastest of the model x forms as accurate as the
most accurate one (a difference not told from zero, or within the margin), within a budget; the
most accurate within it when none of those fits; the closest when nothing fits; degenerate models
never chosen, and no verdict when every model is degenerate; and budgets read as a person writes
them."""

import dataclasses

import pytest

from seglab.errors import SeglabError
from seglab.reporting.budget import NO_BUDGET, Budget, parse_latency, parse_memory
from seglab.reporting.results import Bootstrap, Flag
from seglab.reporting.verdict import decide, frontier
from tests.reporting.helpers import form, model


def against_best(point, low, high):
    """``point`` with a difference to the most accurate of (low + high) / 2 in that interval."""
    interval = Bootstrap((low + high) / 2, low, high, 0.95, 0.5, 2000, 50)
    return dataclasses.replace(point, versus_best=interval)


# A: accurate and slow; B: fast, clearly less accurate. Each in three forms.
POINTS = [
    form("A", "pytorch", 0.700, 400, memory_mb=300),
    against_best(form("A", "onnx", 0.699, 200, memory_mb=250), -0.005, 0.003),
    against_best(form("A", "onnx-int8", 0.695, 60, memory_mb=100), -0.012, 0.002),
    against_best(form("B", "pytorch", 0.600, 100, memory_mb=120), -0.13, -0.07),
    against_best(form("B", "onnx", 0.600, 50, memory_mb=80), -0.13, -0.07),
    against_best(form("B", "onnx-int8", 0.590, 20, memory_mb=40), -0.14, -0.08),
]
MODELS = [model("A", {"sky": 0.7}), model("B", {"sky": 0.6})]


def chosen(budget=NO_BUDGET, points=POINTS, models=MODELS, margin=0.01):
    verdict = decide(points, models, budget, margin)
    return (verdict.chosen.model, verdict.chosen.form), verdict


def test_of_the_forms_as_accurate_as_the_best_the_fastest():
    pick, verdict = chosen()
    assert pick == ("A", "onnx-int8")  # -0.5 points, not told from zero, 3.3x faster
    assert verdict.best == POINTS[0] and verdict.fits and verdict.margin == 0.01
    assert verdict.equivalent == ["A as pytorch", "A as onnx", "A as onnx-int8"]
    assert verdict.speedup == pytest.approx(400 / 60)
    assert verdict.rule == (
        "the fastest of the model x forms as accurate as the most accurate one (difference "
        "within ±1.0 mIoU point or not told from zero)"
    )


def test_an_indistinguishable_model_that_is_faster_is_chosen_a_real_gap_is_not():
    slow = form("vgg19", "pytorch", 0.72, 800)
    models = [model("vgg19", {"sky": 0.72}), model("mobilenet_v2", {"sky": 0.71})]
    # within the margin and not told from zero: the faster one
    close = against_best(form("mobilenet_v2", "pytorch", 0.716, 160), -0.021, 0.013)
    assert chosen(points=[slow, close], models=models)[0] == ("mobilenet_v2", "pytorch")
    # a real difference, but within the margin: still the faster one
    small = against_best(form("mobilenet_v2", "pytorch", 0.712, 160), -0.012, -0.004)
    assert chosen(points=[slow, small], models=models)[0] == ("mobilenet_v2", "pytorch")
    # a real gap beyond the margin: the more accurate one, unless the margin is wider
    gap = against_best(form("mobilenet_v2", "pytorch", 0.68, 160), -0.06, -0.02)
    pick, verdict = chosen(points=[slow, gap], models=models)
    assert pick == ("vgg19", "pytorch") and verdict.equivalent == ["vgg19 as pytorch"]
    pick, verdict = chosen(points=[slow, gap], models=models, margin=0.05)
    assert pick == ("mobilenet_v2", "pytorch")
    assert "within ±5.0 mIoU points" in verdict.rule


def test_under_a_budget_the_fastest_equal_within_it_else_the_most_accurate_within_it():
    pick, verdict = chosen(Budget(latency_ms=250))
    assert pick == ("A", "onnx-int8") and verdict.rule.endswith("not told from zero) within 250 ms")
    # no form as accurate as A fits: the most accurate that does
    pick, verdict = chosen(Budget(latency_ms=50))  # 50 ms fits: "at most"
    assert pick == ("B", "onnx") and verdict.fits
    assert verdict.rule == "the most accurate model x form within 50 ms"
    assert verdict.speedup == pytest.approx(400 / 50)
    assert chosen(Budget(memory_mb=90))[0] == ("B", "onnx")
    assert chosen(Budget(latency_ms=70, memory_mb=100))[0] == ("A", "onnx-int8")
    assert chosen(Budget(latency_ms=70, memory_mb=90))[0] == ("B", "onnx")


def test_when_nothing_fits_it_says_so_and_names_the_closest():
    pick, verdict = chosen(Budget(latency_ms=10))
    assert pick == ("B", "onnx-int8") and not verdict.fits
    assert verdict.rule.startswith("nothing fits 10 ms")
    # over by 2x in latency, 1.25x in memory: the larger overshoot decides
    pick, verdict = chosen(Budget(latency_ms=30, memory_mb=32))
    assert pick == ("B", "onnx-int8") and not verdict.fits


def test_a_degenerate_model_is_never_chosen_and_all_degenerate_is_no_verdict():
    stuck = model("B", {"sky": 0.6}, flags=[Flag("degenerate", "predicts sky on 99.9%")])
    # B's forms as accurate as A's (say the images cannot tell): B would be the fastest
    tied = [POINTS[0], *(against_best(p, -0.2, 0.1) for p in POINTS[1:])]
    assert chosen(points=tied)[0] == ("B", "onnx-int8")
    pick, verdict = chosen(points=tied, models=[MODELS[0], stuck])
    assert pick == ("A", "onnx-int8") and verdict.best.model == "A"
    assert all(not label.startswith("B") for label in verdict.equivalent)
    assert any("B is left out" in c for c in verdict.cautions)
    pick, verdict = chosen(Budget(latency_ms=10), points=tied, models=[MODELS[0], stuck])
    assert pick == ("A", "onnx-int8") and not verdict.fits
    also = model("A", {"sky": 0.7}, flags=[Flag("degenerate", "predicts sky on 99.9%")])
    assert decide(POINTS, [also, stuck], NO_BUDGET) is None


def test_an_undertrained_model_is_chosen_with_a_caution():
    short = model("A", {"sky": 0.7}, flags=[Flag("undertrained", "ran 5 of 100 planned steps")])
    _, verdict = chosen(models=[short, MODELS[1]])
    assert verdict.cautions == ["A is undertrained: ran 5 of 100 planned steps"]


def test_the_frontier_is_the_pareto_front_fastest_first():
    assert [(p.model, p.form) for p in frontier(POINTS)] == [
        ("B", "onnx-int8"),
        ("B", "onnx"),
        ("A", "onnx-int8"),
        ("A", "onnx"),
        ("A", "pytorch"),  # 0.1 point more for twice the latency: still on the front
    ]


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
