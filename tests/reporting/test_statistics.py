"""The bootstrap on constructed confusion matrices: its interval is as wide as the data's
structure allows (groups of near-identical frames count once, seeds that disagree widen it, seed
noise estimated from a curve is added), and the equivalence rule the verdict uses."""

import math

import numpy as np
import pytest
import torch

from seglab.engine.metrics import summarize
from seglab.reporting.results import Bootstrap
from seglab.reporting.statistics import (
    SEED_SD_FLOOR,
    assumed_seed_noise,
    bootstrap_miou_difference,
    curve_noise,
    equivalent,
    miou_of,
)


def confusions(n=30, k=4, accuracy=0.7, seed=0, pixels=500):
    """n per-image K x K confusion matrices; ``accuracy`` is a number or one per image."""
    rng = np.random.default_rng(seed)
    accuracies = np.broadcast_to(accuracy, (n,))
    out = np.zeros((n, k, k), np.int64)
    for i in range(n):
        truth = rng.integers(0, k, pixels)
        pred = np.where(rng.random(pixels) < accuracies[i], truth, rng.integers(0, k, pixels))
        np.add.at(out[i], (truth, pred), 1)
    return out


def width(result):
    return result.ci_high - result.ci_low


def test_miou_of_agrees_with_the_metrics():
    cm = confusions().sum(0)
    expected = summarize(torch.from_numpy(cm), ["a", "b", "c", "d"])["miou"]
    assert miou_of(cm) == pytest.approx(expected)


def test_a_model_against_itself_differs_by_nothing():
    a = confusions()
    result = bootstrap_miou_difference(a, a)
    assert result.difference == 0 and result.ci_low == 0 and result.ci_high == 0
    assert not result.excludes_zero
    assert result.groups is None and result.runs == (1, 1) and result.seed_noise is None


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


def test_copies_of_a_frame_count_once_when_their_group_is_resampled():
    # G sequences of F identical frames: there are G images' worth of evidence, not G x F.
    g, f = 20, 9
    accuracy = np.random.default_rng(3).uniform(0.4, 0.95, g)
    a_frames = confusions(g, accuracy=accuracy, seed=4)
    b_frames = confusions(g, accuracy=accuracy[::-1], seed=5)
    a, b = np.repeat(a_frames, f, axis=0), np.repeat(b_frames, f, axis=0)
    sequences = np.repeat([f"seq{i}" for i in range(g)], f)
    distinct = width(bootstrap_miou_difference(a_frames, b_frames))
    grouped = bootstrap_miou_difference(a, b, groups=sequences)
    images_only = bootstrap_miou_difference(a, b)
    assert grouped.groups == g and grouped.images == g * f and images_only.groups is None
    assert width(grouped) == pytest.approx(distinct, rel=0.25)
    assert distinct / width(images_only) == pytest.approx(math.sqrt(f), rel=0.25)
    assert grouped.difference == pytest.approx(images_only.difference)


def test_seeds_that_disagree_widen_the_interval():
    # Three seeds of each model, their accuracy far apart: one run alone hides that spread.
    a = np.stack([confusions(40, accuracy=acc, seed=s) for s, acc in enumerate((0.5, 0.7, 0.9))])
    b = np.stack(
        [confusions(40, accuracy=acc, seed=9 + s) for s, acc in enumerate((0.9, 0.6, 0.7))]
    )
    several = bootstrap_miou_difference(a, b)
    first = bootstrap_miou_difference(a[0], b[0])
    assert several.runs == (3, 3) and first.runs == (1, 1)
    assert width(several) > 2 * width(first)
    mean_difference = miou_of(a.sum(1)).mean() - miou_of(b.sum(1)).mean()
    assert several.difference == pytest.approx(mean_difference)
    # a and b may have run different numbers of seeds
    assert bootstrap_miou_difference(a, b[:2]).runs == (3, 2)


def test_seed_noise_widens_a_single_run_interval_and_is_recorded():
    a, b = confusions(seed=6), confusions(seed=7)
    plain = bootstrap_miou_difference(a, b)
    noisy = bootstrap_miou_difference(a, b, seed_noise=0.02)
    assert noisy.seed_noise == 0.02 and plain.seed_noise is None
    assert width(noisy) > width(plain) + 0.05  # 2 x 1.96 x sqrt(2) x 0.02 = 0.11 alone
    assert noisy.difference == plain.difference
    # several seeds measure the noise themselves: only the single run's side is assumed
    runs = np.stack([a, a])
    assert bootstrap_miou_difference(runs, b, seed_noise=(0.01, 0.03)).seed_noise == 0.03
    assert (
        bootstrap_miou_difference(np.stack([a, a]), np.stack([b, b]), seed_noise=0.02).seed_noise
        is None
    )


def seeded_runs(runs, seed, images=40, seed_sd=0.05):
    """``runs`` runs of one set-up whose accuracy differs by a seed effect of sd ``seed_sd``."""
    rng = np.random.default_rng(seed)
    return np.stack(
        [
            confusions(images, accuracy=0.7 + rng.normal(0, seed_sd), seed=seed * 10 + r)
            for r in range(runs)
        ]
    )


def test_three_seeds_a_side_call_identical_set_ups_different_rarely():
    # A/A: 60 pairs of 3 v 3 runs of one set-up. Seeds' spread measured by three runs is
    # uncertain; the interval must allow for that (drawing 3 runs with replacement called
    # about a fifth of such pairs different).
    called = [
        bootstrap_miou_difference(
            seeded_runs(3, 2 * k), seeded_runs(3, 2 * k + 1), samples=1000
        ).excludes_zero
        for k in range(60)
    ]
    assert sum(called) <= 6
    # ...and a real gap of three seed sds is still seen
    gap = seeded_runs(3, 999)
    better = np.stack([confusions(40, accuracy=0.85, seed=500 + r) for r in range(3)])
    assert bootstrap_miou_difference(better, gap).ci_low > 0


def test_the_assumed_seed_noise_is_never_below_the_calibrated_spread():
    assert assumed_seed_noise(None) == SEED_SD_FLOOR == assumed_seed_noise(0.01)
    assert assumed_seed_noise(0.5) == 0.5


def test_groups_must_label_every_image():
    a = confusions(10)
    with pytest.raises(ValueError, match="9 group labels for 10 images"):
        bootstrap_miou_difference(a, a, groups=range(9))
    with pytest.raises(ValueError, match="differ in images"):
        bootstrap_miou_difference(a, a[:5])


def test_curve_noise_recovers_the_noise_of_a_rising_curve():
    rng = np.random.default_rng(8)
    steps = np.arange(400)
    curve = 0.3 + 0.001 * steps + rng.normal(0, 0.01, len(steps))  # a trend, and noise
    assert curve_noise(curve, tail=len(curve)) == pytest.approx(0.01, rel=0.15)
    # only the tail counts: a noisy start, a straight end
    assert curve_noise([0.1, 0.5, 0.2, 0.6, 0.61, 0.62, 0.63, 0.64, 0.65, 0.66]) == pytest.approx(
        0, abs=1e-9
    )
    assert curve_noise([0.5, 0.6]) is None and curve_noise([]) is None


def interval(difference, low, high):
    return Bootstrap(difference, low, high, 0.95, 0.5, 2000, 50)


def test_equivalent_when_not_told_from_zero_or_within_the_margin():
    assert equivalent(interval(0.03, -0.01, 0.07), margin=0.01)  # contains 0
    assert equivalent(interval(0.02, 0.0, 0.04), margin=0.01)  # touches 0: not told from it
    assert equivalent(interval(0.008, 0.002, 0.014), margin=0.01)  # real, but within 1 point
    assert equivalent(interval(-0.01, -0.015, -0.005), margin=0.01)  # on the edge
    assert not equivalent(interval(-0.011, -0.015, -0.007), margin=0.01)
    assert not equivalent(interval(0.05, 0.02, 0.08), margin=0.01)
    assert equivalent(interval(0.05, 0.02, 0.08), margin=0.06)
