"""The report's figures: drawn from the numbers given, at a size a page can hold, with latency
read in plain milliseconds, labels that do not cover each other, and error bars where a model
ran several seeds."""

import itertools

import numpy as np
import pytest
from matplotlib.container import ErrorbarContainer
from PIL import Image

from seglab.reporting.budget import NO_BUDGET
from seglab.reporting.plots import (
    accuracy_cost_frontier,
    confusion_matrices,
    frontier_figure,
    latency_ticks,
    per_class_bars,
    per_class_figure,
)
from seglab.reporting.verdict import decide
from tests.reporting.helpers import comparison, form, model


def test_confusion_matrices_sit_side_by_side_one_per_model(tmp_path):
    matrix = [[5, 1, 0], [2, 3, 0], [0, 0, 0]]  # a class that never occurs draws an empty row
    path = confusion_matrices(
        {"a": matrix, "b": matrix}, ["sky", "road", "car"], tmp_path / "c.png"
    )
    width, height = Image.open(path).size
    assert width > 1.5 * height  # two square panels in a row


def test_many_classes_stay_a_readable_page(tmp_path):
    k = 60
    matrix = np.random.default_rng(0).integers(0, 50, (k, k)).tolist()
    path = confusion_matrices({"a": matrix}, [f"class{i}" for i in range(k)], tmp_path / "c.png")
    assert max(Image.open(path).size) <= 15 * 110  # 14 inches at 110 dpi, and the title


def crowded():
    """Three models in three forms, close in latency and mIoU; vgg19 ran three seeds."""
    models = [
        model("mobilenet_v2", {"sky": 0.60}),
        model("vgg19", {"sky": 0.675}, seeds=(0.66, 0.70, 0.69)),
        model("resnet18", {"sky": 0.63}),
    ]
    forms = [
        form(name, kind, miou - drop, latency * factor)
        for name, miou, latency in (
            ("mobilenet_v2", 0.60, 40),
            ("vgg19", 0.675, 300),
            ("resnet18", 0.63, 90),
        )
        for kind, drop, factor in (
            ("pytorch", 0, 1),
            ("onnx", 0.001, 0.8),
            ("onnx-int8", 0.01, 0.4),
        )
    ]
    return comparison(models, forms, decide(forms, models, NO_BUDGET))


def test_latency_reads_in_plain_milliseconds_on_a_log_axis():
    fig = frontier_figure(crowded())
    ax = fig.axes[0]
    fig.canvas.draw()
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert ax.get_xscale() == "log" and len(labels) >= 3
    assert all(float(text) > 0 for text in labels)  # "20", "50", "100": no 10^x
    assert all(t.get_text() == "" for t in ax.get_xticklabels(minor=True))
    assert latency_ticks(5, 5000) == [10, 100, 1000]  # a wide range: powers of ten
    assert latency_ticks(15, 320) == [20, 50, 100, 200]
    assert latency_ticks(30, 80) == [30, 50, 70]  # a narrow one: finer steps
    assert latency_ticks(40, 44) == [40, 42, 44]


def test_point_labels_do_not_cover_each_other():
    fig = frontier_figure(crowded())
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in fig.axes[0].texts]
    assert len(boxes) == 9
    assert not any(a.overlaps(b) for a, b in itertools.combinations(boxes, 2))


def test_several_seeds_draw_error_bars_of_their_spread():
    c = crowded()
    bars = [x for x in frontier_figure(c).axes[0].containers if isinstance(x, ErrorbarContainer)]
    assert len(bars) == 3  # vgg19's three forms
    *_, (line,) = bars[0].lines
    low, high = line.get_segments()[0][:, 1]
    assert high - low == pytest.approx(2 * 100 * c.models[1].miou_sd)
    per_class = per_class_figure(c).axes[0]
    assert len([x for x in per_class.containers if isinstance(x, ErrorbarContainer)]) == 1
    assert [t.get_text() for t in per_class.get_xticklabels()] == ["sky", "mIoU"]


def test_the_figures_draw_without_a_verdict(tmp_path):
    c = crowded()
    c.verdict = None
    legend = frontier_figure(c).axes[0].get_legend()
    assert not any(t.get_text().startswith("verdict") for t in legend.get_texts())
    assert accuracy_cost_frontier(c, tmp_path / "f.png").is_file()
    assert per_class_bars(c, tmp_path / "p.png").is_file()
