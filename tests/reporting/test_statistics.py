import numpy as np
import pytest
import torch

from seglab.engine.metrics import summarize
from seglab.reporting.statistics import bootstrap_miou_difference, miou_of


def confusions(n=30, k=4, accuracy=0.7, seed=0):
    rng = np.random.default_rng(seed)
    out = np.zeros((n, k, k), np.int64)
    for i in range(n):
        truth = rng.integers(0, k, 500)
        pred = np.where(rng.random(500) < accuracy, truth, rng.integers(0, k, 500))
        np.add.at(out[i], (truth, pred), 1)
    return out


def test_miou_of_agrees_with_the_metrics():
    cm = confusions().sum(0)
    expected = summarize(torch.from_numpy(cm), ["a", "b", "c", "d"])["miou"]
    assert miou_of(cm) == pytest.approx(expected)


def test_a_model_against_itself_differs_by_nothing():
    a = confusions()
    result = bootstrap_miou_difference(a, a)
    assert result.difference == 0 and result.ci_low == 0 and result.ci_high == 0
    assert not result.excludes_zero


def test_a_clearly_better_model_has_an_interval_above_zero():
    better, worse = confusions(accuracy=0.9, seed=1), confusions(accuracy=0.5, seed=1)
    result = bootstrap_miou_difference(better, worse)
    assert result.difference == pytest.approx(miou_of(better.sum(0)) - miou_of(worse.sum(0)))
    assert 0 < result.ci_low <= result.difference <= result.ci_high and result.excludes_zero
    assert result.p_a_better == 1.0 and result.images == 30


def test_two_equally_good_models_on_the_same_images_give_an_interval_around_zero():
    rng = np.random.default_rng(2)
    a, b = np.zeros((40, 4, 4), np.int64), np.zeros((40, 4, 4), np.int64)
    for i in range(40):
        truth = rng.integers(0, 4, 500)
        for cm in (a, b):  # each model errs independently, equally often, on the same truth
            pred = np.where(rng.random(500) < 0.7, truth, rng.integers(0, 4, 500))
            np.add.at(cm[i], (truth, pred), 1)
    result = bootstrap_miou_difference(a, b)
    assert result.ci_low < 0 < result.ci_high
    assert 0.05 < result.p_a_better < 0.95
