"""Is a difference in mIoU real? A bootstrap over images of per-image confusion matrices."""

from __future__ import annotations

import numpy as np

from seglab.reporting.results import Bootstrap


def miou_of(confusions: np.ndarray) -> np.ndarray:
    """mIoU of each of a stack of K x K confusion matrices (classes absent from truth and
    prediction left out, as in the metrics)."""
    tp = np.diagonal(confusions, axis1=-2, axis2=-1)
    union = confusions.sum(-1) + confusions.sum(-2) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, tp / np.maximum(union, 1), np.nan)
    return np.nanmean(iou, axis=-1)


def bootstrap_miou_difference(
    a: np.ndarray, b: np.ndarray, samples: int = 2000, seed: int = 0, level: float = 0.95
) -> Bootstrap:
    """``a``, ``b``: N x K x K per-image confusion matrices of two models on the same images.
    Resamples images with replacement; returns the observed mIoU(a) - mIoU(b), its confidence
    interval and the share of resamples in which a beats b."""
    n = a.shape[0]
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n, np.full(n, 1 / n), size=samples).astype(np.float64)  # B x N
    flat_a, flat_b = a.reshape(n, -1).astype(np.float64), b.reshape(n, -1).astype(np.float64)
    shape = (samples, *a.shape[1:])
    diffs = miou_of((counts @ flat_a).reshape(shape)) - miou_of((counts @ flat_b).reshape(shape))
    low, high = np.percentile(diffs, [100 * (1 - level) / 2, 100 * (1 + level) / 2])
    observed = float(miou_of(a.sum(0)) - miou_of(b.sum(0)))
    return Bootstrap(
        difference=observed,
        ci_low=float(low),
        ci_high=float(high),
        level=level,
        p_a_better=float((diffs > 0).mean()),
        samples=samples,
        images=n,
    )
