"""What a comparison says before its numbers: degenerate and undertrained models are flagged and
no difference involving them is called real; runs of one encoder are told apart everywhere; the
set-up differences come from the recorded configurations, and only what is equal is called so."""

import numpy as np

from seglab.config import TrainConfig
from seglab.reporting import plots
from seglab.reporting.checks import degenerate, planned_steps, setup_differences, undertrained
from seglab.reporting.report import difference_lines, markdown, tables
from seglab.reporting.results import Flag, HistoryPoint
from tests.reporting.helpers import comparison, fake_figures, form, model

CLASSES = ("sky", "road", "car")


def test_a_model_predicting_one_class_is_degenerate():
    stuck = np.array([[500, 0, 0], [300, 2, 0], [198, 0, 0]])  # 998 of 1000 pixels "sky"
    assert degenerate(stuck, CLASSES, miou=0.17) == Flag(
        "degenerate", "predicts sky on 99.8% of scored pixels"
    )
    sound = np.array([[450, 40, 10], [30, 260, 10], [20, 10, 170]])
    assert degenerate(sound, CLASSES, miou=0.78) is None


def test_a_model_no_better_than_the_commonest_class_everywhere_is_degenerate():
    # Predicting "sky" everywhere scores IoU 0.5 on sky, 0 on the rest: mIoU 1/6.
    scattered = np.array([[200, 200, 100], [150, 150, 0], [100, 50, 50]])
    flag = degenerate(scattered, CLASSES, miou=0.15)
    assert flag.kind == "degenerate"
    assert flag.reason == "scores mIoU 15.00%, no better than predicting sky everywhere (16.67%)"
    assert degenerate(scattered, CLASSES, miou=0.2) is None


def history(values, every: int = 100) -> list[HistoryPoint]:
    return [HistoryPoint(k + 1, every * (k + 1), 60.0 * k, 1.0, v) for k, v in enumerate(values)]


def test_a_run_still_rising_or_short_of_its_minimum_is_undertrained():
    rising = undertrained(300, history([0.40, 0.45, 0.50]))
    assert rising.kind == "undertrained"
    assert rising.reason.startswith("validation mIoU was still rising at the end: +10.0 points")
    assert rising.reason.endswith("train longer: a larger --time-budget or --iterations")
    flat = history([0.6] * 6)
    assert undertrained(600, flat) is None
    # The demo's 5 steps of 160 planned are not the question: what its data needs is.
    assert undertrained(5, flat, minimum_steps=400).reason.startswith(
        "ran 5 steps, fewer than the 400 its data needs"
    )
    assert undertrained(None, flat, minimum_steps=400) is None  # steps unknown: the curve alone
    assert undertrained(None, history([0.40, 0.45, 0.50])) is not None
    assert undertrained(5, []) is None  # never validated: nothing to say


def test_planned_steps_count_as_training_does():
    # 20 epochs of 64 images in batches of 8
    assert planned_steps(TrainConfig(epochs=20, batch_size=8), train_images=64) == 160
    assert planned_steps(TrainConfig(iterations=7), train_images=64) == 7
    # 64 images, 2 processes of 8, 2 micro-batches a step: 2 steps an epoch
    assert planned_steps(TrainConfig(epochs=2, batch_size=8, accumulate=2), 64, processes=2) == 4
    # No epochs given: the default number of them, unless a time budget alone sets the length.
    default = TrainConfig(epochs=None, batch_size=8)
    assert planned_steps(default, 64) == default.planned_steps(8) > 0
    assert planned_steps(TrainConfig(epochs=None, time_budget=120.0), 64) is None


def test_a_difference_involving_a_flagged_model_is_not_called_real():
    def judged(flags):
        a = model("a/mobilenet_v2", {"sky": 0.5, "road": 0.25}, flags=flags)
        b = model("b/mobilenet_v2", {"sky": 0.75, "road": 0.25})
        c = comparison([a, b])  # b ahead, interval [+5, +20] points
        note = next(t for t in tables(c) if t.title == "Is the difference real?").note
        return note, difference_lines(c)[0]

    note, line = judged([])
    assert "unlikely to be chance" in note and "cannot be judged" not in line
    note, line = judged([Flag("degenerate", "predicts sky on 99.8% of scored pixels")])
    assert "unlikely to be chance" not in note
    assert (
        "cannot be judged: a/mobilenet_v2 is degenerate (predicts sky on 99.8% of scored pixels)"
        in note
    )
    assert line.endswith(
        "cannot be judged: a/mobilenet_v2 is degenerate (predicts sky on 99.8% of scored pixels)"
    )
    note, _ = judged([Flag("undertrained", "ran 5 of 160 planned steps (3%)")])
    assert "unlikely to be chance" not in note and "is undertrained" in note


def test_flags_show_in_the_summary(tmp_path):
    flags = [Flag("degenerate", "x"), Flag("undertrained", "y")]
    c = comparison([model("a", {"sky": 0.5}, flags=flags), model("b", {"sky": 0.6})])
    summary = tables(c)[0]
    column = summary.header.index("flags")
    assert [row[column].text for row in summary.rows] == ["degenerate, undertrained", "-"]
    assert "a is degenerate: x. a is undertrained: y." in summary.note


def test_set_up_differences_are_listed_and_only_what_is_equal_is_called_so(tmp_path):
    base = TrainConfig(data="camvid", epochs=120, time_budget=3600.0)
    short = TrainConfig(data="camvid", epochs=20, time_budget=120.0, crop_size=(256, 256))
    a = model("a/mobilenet_v2", {"sky": 0.5}, options=base.to_dict(), steps=(9000, 9120))
    b = model("b/mobilenet_v2", {"sky": 0.6}, options=short.to_dict(), steps=(7, 160))
    c = comparison([a, b])
    assert setup_differences(c.models) == [
        ("crop_size", ["none", "256x256"]),
        ("epochs", ["120", "20"]),
        ("time_budget", ["3600", "120"]),
        ("steps done", ["9000 of 9120 planned", "7 of 160 planned"]),
    ]
    setup = next(t for t in tables(c) if t.title == "Setup")
    assert "Same for every model, from the recorded configurations: data, seed," in setup.note
    assert "Different: augmentations, schedule (see Setup differences)" in setup.note
    assert "same data, split, seed and augmentations" not in markdown(c, fake_figures(tmp_path))
    assert [t.title for t in tables(c)][-1] == "Setup differences"
    same = comparison([model("a", {"sky": 0.5}), model("b", {"sky": 0.6})])
    assert "Setup differences" not in [t.title for t in tables(same)]
    assert "Different:" not in next(t for t in tables(same) if t.title == "Setup").note


def test_two_runs_of_one_encoder_are_told_apart_in_every_legend(tmp_path, monkeypatch):
    c = comparison(
        forms=[form("a/mobilenet_v2", "onnx", 0.4, 20), form("b/mobilenet_v2", "onnx", 0.5, 20)]
    )
    assert {m.encoder for m in c.models} == {"mobilenet_v2"}
    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path, **_: figures.append(fig) or path)
    plots.per_class_bars(c, tmp_path / "bars.png")
    plots.accuracy_cost_frontier(c, tmp_path / "frontier.png")
    history = [HistoryPoint(1, 3, 60.0, 1.0, 0.4)]
    plots.training_curves({m.name: history for m in c.models}, tmp_path / "curves.png")
    for fig in figures:
        labels = [
            t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()
        ]
        assert "a/mobilenet_v2" in labels and "b/mobilenet_v2" in labels, labels
    assert difference_lines(c)[0].startswith("b/mobilenet_v2 - a/mobilenet_v2:")
