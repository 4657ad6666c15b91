"""Numbers as a person reads them: one percent formatter, and the per-class table of evaluate."""

import torch

from seglab.engine.metrics import summarize
from seglab.formatting import format_metrics, number, percent, undertrained_warning


def test_one_percent_formatter_with_its_absent_text():
    assert percent(0.12345) == "12.35" and percent(1.0) == "100.00"
    assert percent(None) == "-" and percent(None, "absent") == "absent"
    assert number(None, ".2f") == "-" and number(1 / 3, ".3f") == "0.333"


def test_printed_scores_are_percent_with_two_decimals():
    # rows truth: all of sky taken for ground; ground right; pole absent from truth and prediction
    confusion = torch.tensor([[0, 30, 0], [0, 70, 0], [0, 0, 0]])
    metrics = summarize(confusion, ["sky", "ground", "pole"])
    text = format_metrics(metrics)
    assert f"mIoU {100 * metrics['miou']:.2f}  pixel accuracy 70.00" in text
    sky = next(line for line in text.splitlines() if line.startswith("sky"))
    assert sky.split()[1:6] == ["0.00", "0.00", "0.00", "absent", "30"]  # never predicted
    assert sky.endswith("ground (100.00%)")  # where a class's pixels go: all of sky to ground
    ground = next(line for line in text.splitlines() if line.startswith("ground"))
    assert f"{100 * metrics['per_class']['ground']['iou']:.2f}" in ground
    assert ground.endswith("70")  # its pixels, none misread
    pole = next(line for line in text.splitlines() if line.startswith("pole"))
    assert pole.split()[1:] == ["absent"] * 4 + ["0"]
    assert text.endswith("excluded from mIoU (absent from truth and prediction): pole")


def test_a_useless_model_is_said_to_be_useless():
    """The membrane model of a 45 s default run: background (membrane) on every pixel."""
    metrics = summarize(torch.tensor([[324625, 0], [1248239, 0]]), ["background", "foreground"])
    lines = format_metrics(metrics).splitlines()
    assert lines[-2].startswith("mIoU 10.32")
    last = lines[-1]  # under the scores it speaks of
    assert last.startswith("warning: a useless model: it predicts background on 100.0% of ")
    assert last.endswith(
        "train longer (a larger --time-budget, or --iterations), or check the labels "
        "(seglab data check)"
    )
    sound = summarize(torch.tensor([[25, 5], [10, 60]]), ["background", "foreground"])
    assert "warning" not in format_metrics(sound)


def test_an_undertrained_model_names_the_class_it_misses():
    """The 45 s default run on the ISBI membranes: not degenerate (it beats calling everything
    foreground), but 55% of the membrane ("background") pixels taken for foreground."""
    confusion = torch.tensor([[145820, 178805], [108455, 1139784]])
    metrics = summarize(confusion, ["background", "foreground"])
    assert metrics["degenerate"] is None
    reason = "ran 11 steps, fewer than the 300 its data needs; train longer"
    line = undertrained_warning(reason, metrics)
    assert line.startswith(f"warning: undertrained: {reason}. Its weakest class, background, ")
    assert line.endswith("55.08% of its pixels are taken for foreground: not a model to use yet")
    fair = summarize(torch.tensor([[250, 75], [100, 1150]]), ["background", "foreground"])
    assert undertrained_warning(reason, fair).endswith("has IoU 58.82")  # mostly found: no verdict
