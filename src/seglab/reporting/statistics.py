"""Is a difference in mIoU real? A bootstrap of per-image confusion matrices that resamples what
actually varies: the images' groups (frames of one sequence are not independent images) and
each model's runs (seeds), so that the interval is not narrower than the data allow; and, where
a model ran once, an assumed seed noise: never less than the spread between seeds that seglab's
own calibration measured (docs/benchmarks.md, "Verdict calibration")."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from seglab.reporting.results import Bootstrap

# The sd of one run's mIoU between seeds, measured by benchmarks/calibrate_verdict.py (synthetic
# scenes, 160 steps, 16 seeds): the least seed noise assumed where a model ran once, since a
# run's own validation curve shows only a sixth of it. Longer runs may vary less; only their
# seeds can say so (compare --seeds).
SEED_SD_FLOOR = 0.065


def miou_of(confusions: np.ndarray) -> np.ndarray:
    """mIoU of each of a stack of K x K confusion matrices (classes absent from truth and
    prediction left out, as in the metrics)."""
    tp = np.diagonal(confusions, axis1=-2, axis2=-1)
    union = confusions.sum(-1) + confusions.sum(-2) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, tp / np.maximum(union, 1), np.nan)
    return np.nanmean(iou, axis=-1)


def _runs(confusions: np.ndarray) -> np.ndarray:
    """R x N x K x K float64: one run (N x K x K) becomes a stack of one."""
    array = np.asarray(confusions, dtype=np.float64)
    if array.ndim == 3:
        array = array[None]
    if array.ndim != 4 or array.shape[-1] != array.shape[-2]:
        raise ValueError(f"confusions must be N x K x K or R x N x K x K, not {array.shape}")
    return array


def _group_index(groups: Sequence | None, n: int) -> tuple[np.ndarray, int]:
    """Each image's group index (0..G-1) and G; every image its own group without ``groups``."""
    if groups is None:
        return np.arange(n), n
    labels = np.asarray(list(groups))
    if labels.shape != (n,):
        raise ValueError(f"{len(labels)} group labels for {n} images")
    _, index = np.unique(labels, return_inverse=True)
    return index.reshape(n), int(index.max()) + 1


def _resampled_scores(
    runs: np.ndarray,
    index: np.ndarray,
    counts: np.ndarray,
    rng: np.random.Generator,
    seed_noise: float | None,
) -> np.ndarray:
    """A model's score in each resample (B): the mean over its R runs of the mIoU of the run's
    confusions weighted by their groups' counts (B x G), plus a draw of the seed noise. With
    R >= 2 the noise is measured: a Student t (R - 1 degrees of freedom) scaled by the runs'
    sd over sqrt(R); drawing 3 runs with replacement instead gives an interval far too narrow
    (it called 22% of identical set-ups different). With one run, a normal of sd
    ``seed_noise`` (None: image sampling only)."""
    r, _, k, _ = runs.shape
    groups = counts.shape[1]
    by_group = np.zeros((r, groups, k * k))
    for run, confusions in zip(by_group, runs):  # each group's confusions summed, per run
        np.add.at(run, index, confusions.reshape(len(index), -1))
    weighted = np.matmul(counts, by_group)  # R x B x K*K
    scores = miou_of(weighted.reshape(r, len(counts), k, k)).mean(0)  # B
    if r > 1:
        spread = float(miou_of(runs.sum(1)).std(ddof=1))
        return scores + rng.standard_t(r - 1, size=len(counts)) * spread / math.sqrt(r)
    if seed_noise is not None:
        return scores + rng.normal(0.0, seed_noise, size=len(counts))
    return scores


def bootstrap_miou_difference(
    a: np.ndarray,
    b: np.ndarray,
    groups: Sequence | None = None,
    samples: int = 2000,
    seed: int = 0,
    level: float = 0.95,
    seed_noise: float | tuple[float | None, float | None] | None = None,
) -> Bootstrap:
    """mIoU(a) - mIoU(b) with its bootstrap interval. ``a``, ``b``: per-image confusion
    matrices, N x K x K (one run) or R x N x K x K (R seeds, each on the same N images; R may
    differ between a and b). Each resample draws the images' ``groups`` (N labels; None: each
    image its own) with replacement, the same for a and b (the images are paired), and each
    model's seed noise (see _resampled_scores). ``seed_noise``: the sd of one run's mIoU
    assumed for a model that ran once (a pair: a's and b's; one number: both)."""
    runs_a, runs_b = _runs(a), _runs(b)
    if runs_a.shape[1:] != runs_b.shape[1:]:
        raise ValueError(f"a and b differ in images or classes: {a.shape} and {b.shape}")
    noise_a, noise_b = seed_noise if isinstance(seed_noise, tuple) else (seed_noise, seed_noise)
    n = runs_a.shape[1]
    index, count = _group_index(groups, n)
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(count, np.full(count, 1 / count), size=samples).astype(np.float64)
    diffs = _resampled_scores(runs_a, index, counts, rng, noise_a) - _resampled_scores(
        runs_b, index, counts, rng, noise_b
    )
    assumed = [x for x, r in ((noise_a, runs_a), (noise_b, runs_b)) if len(r) == 1 and x]
    low, high = np.percentile(diffs, [100 * (1 - level) / 2, 100 * (1 + level) / 2])
    observed = miou_of(runs_a.sum(1)).mean() - miou_of(runs_b.sum(1)).mean()
    return Bootstrap(
        difference=float(observed),
        ci_low=float(low),
        ci_high=float(high),
        level=level,
        p_a_better=float((diffs > 0).mean()),
        samples=samples,
        images=n,
        groups=None if groups is None else count,
        runs=(len(runs_a), len(runs_b)),
        seed_noise=math.sqrt(sum(x * x for x in assumed) / len(assumed)) if assumed else None,
    )


def assumed_seed_noise(curve: float | None) -> float:
    """The sd of one run's mIoU assumed where a model ran with one seed: its validation
    curve's noise, but never less than the spread between seeds measured in calibration."""
    return max(curve or 0.0, SEED_SD_FLOOR)


def curve_noise(mious: Sequence[float], tail: int = 6) -> float | None:
    """One run's seed noise (sd of its mIoU, a fraction), estimated from its own validation
    curve: the sd of the successive differences of its last ``tail`` validations over sqrt(2).
    Differencing removes a linear trend, so a curve still rising is not taken for noise. None
    with fewer than 3 validations."""
    values = np.asarray(list(mious)[-tail:], dtype=np.float64)
    if len(values) < 3:
        return None
    return float(np.diff(values).std(ddof=1) / math.sqrt(2))


def equivalent(b: Bootstrap, margin: float) -> bool:
    """Whether a and b count as equally accurate: their difference cannot be told from zero
    (the interval contains 0) or is within +-``margin`` (fractions: 0.01 is 1 mIoU point), too
    small to matter even if real."""
    return not b.excludes_zero or abs(b.difference) <= margin
