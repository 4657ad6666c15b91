"""Metrics checked against torchmetrics, an independent implementation."""

import pytest
import torch
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassJaccardIndex,
    MulticlassPrecision,
)

from seglab.engine.metrics import confusion_matrix, summarize

C, IGNORE = 6, 255
NAMES = [f"class{i}" for i in range(C)]


def random_batch(seed: int, absent: int | None = None):
    g = torch.Generator().manual_seed(seed)
    target = torch.randint(0, C, (4, 40, 50), generator=g)
    # Predictions right about 60% of the time, so the scores are neither 0 nor 1.
    pred = torch.where(
        torch.rand(target.shape, generator=g) < 0.6,
        target,
        torch.randint(0, C, target.shape, generator=g),
    )
    target[torch.rand(target.shape, generator=g) < 0.1] = IGNORE
    if absent is not None:
        target[target == absent] = IGNORE
        pred[pred == absent] = (absent + 1) % C
    return pred, target


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_scores_agree_with_torchmetrics(seed):
    pred, target = random_batch(seed)
    cm = confusion_matrix(pred, target, C, IGNORE)
    m = summarize(cm, NAMES)
    tm = dict(num_classes=C, ignore_index=IGNORE)
    assert torch.equal(cm, MulticlassConfusionMatrix(**tm)(pred, target))
    assert m["miou"] == pytest.approx(
        MulticlassJaccardIndex(**tm, average="macro")(pred, target).item(), abs=1e-6
    )
    per_class = MulticlassJaccardIndex(**tm, average="none")(pred, target)
    assert [m["per_class"][n]["iou"] for n in NAMES] == pytest.approx(per_class.tolist(), abs=1e-6)
    assert m["pixel_accuracy"] == pytest.approx(
        MulticlassAccuracy(**tm, average="micro")(pred, target).item(), abs=1e-6
    )
    assert m["mean_class_accuracy"] == pytest.approx(
        MulticlassAccuracy(**tm, average="macro")(pred, target).item(), abs=1e-6
    )
    dice = MulticlassF1Score(**tm, average="none")(pred, target)
    assert [m["per_class"][n]["dice"] for n in NAMES] == pytest.approx(dice.tolist(), abs=1e-6)
    assert m["pixels"] == int((target != IGNORE).sum())
    precision = MulticlassPrecision(**tm, average="none")(pred, target)
    assert [m["per_class"][n]["precision"] for n in NAMES] == pytest.approx(
        precision.tolist(), abs=1e-6
    )
    assert m["confusion"] == cm.tolist()


def test_accumulated_batches_equal_one_big_batch():
    (p1, t1), (p2, t2) = random_batch(3), random_batch(4)
    summed = confusion_matrix(p1, t1, C, IGNORE) + confusion_matrix(p2, t2, C, IGNORE)
    assert torch.equal(
        summed, confusion_matrix(torch.cat([p1, p2]), torch.cat([t1, t2]), C, IGNORE)
    )


def test_a_class_absent_from_truth_and_prediction_is_left_out_of_the_mean():
    pred, target = random_batch(5, absent=2)
    m = summarize(confusion_matrix(pred, target, C, IGNORE), NAMES)
    assert m["absent_classes"] == ["class2"]
    assert m["per_class"]["class2"]["iou"] is None
    per_class = MulticlassJaccardIndex(num_classes=C, ignore_index=IGNORE, average="none")(
        pred, target
    )
    present = [v for i, v in enumerate(per_class.tolist()) if i != 2]
    assert m["miou"] == pytest.approx(sum(present) / len(present), abs=1e-6)


def test_frequency_weighted_iou_by_hand():
    # truth: 3 pixels of class 0, 1 of class 1; prediction gets one class-0 pixel wrong.
    target = torch.tensor([0, 0, 0, 1])
    pred = torch.tensor([0, 0, 1, 1])
    m = summarize(confusion_matrix(pred, target, 2), ["a", "b"])
    assert m["per_class"]["a"]["iou"] == pytest.approx(2 / 3)
    assert m["per_class"]["b"]["iou"] == pytest.approx(1 / 2)
    assert m["fw_iou"] == pytest.approx(0.75 * 2 / 3 + 0.25 * 1 / 2)


def test_taken_for_names_where_a_class_errors_go():
    # truth: 4 pixels of a (1 read as b, 2 as c), 2 of b (both right), 1 of c (never predicted).
    target = torch.tensor([0, 0, 0, 0, 1, 1, 2])
    pred = torch.tensor([0, 1, 2, 2, 1, 1, 1])
    m = summarize(confusion_matrix(pred, target, 3), ["a", "b", "c"])
    assert m["per_class"]["a"]["taken_for"] == {"class": "c", "share": pytest.approx(0.5)}
    assert m["per_class"]["b"]["taken_for"] is None  # nothing of b is misread
    assert m["per_class"]["c"]["taken_for"] == {"class": "b", "share": pytest.approx(1.0)}
    assert m["per_class"]["b"]["precision"] == pytest.approx(2 / 4)
    assert m["per_class"]["a"]["precision"] == pytest.approx(1.0)
    assert m["per_class"]["c"]["precision"] == pytest.approx(0.0)


def test_every_record_says_when_the_model_is_useless():
    """One class everywhere, or no better than the commonest class everywhere: the record says
    why; a model that separates the classes carries None."""
    names = ["background", "foreground"]
    one_class = summarize(torch.tensor([[30, 0], [70, 0]]), names)  # all background
    assert one_class["degenerate"] == "predicts background on 100.0% of scored pixels"
    # Commonest class everywhere scores 0.7 / 2 = 35%; this model scores less.
    poor = summarize(torch.tensor([[2, 28], [27, 43]]), names)
    assert poor["miou"] < 0.35
    assert poor["degenerate"] == (
        f"scores mIoU {100 * poor['miou']:.2f}%, no better than predicting foreground everywhere "
        "(35.00%)"
    )
    assert summarize(torch.tensor([[25, 5], [10, 60]]), names)["degenerate"] is None
