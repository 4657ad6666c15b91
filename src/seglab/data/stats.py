"""Class statistics and the class weights a loss can use to lift rare classes."""

from __future__ import annotations

import numpy as np

from seglab.config import CLASS_WEIGHTINGS as WEIGHTINGS


def class_weights(
    method: str,
    class_pixels: np.ndarray,
    pixels_of_images_with_class: np.ndarray | None = None,
) -> np.ndarray | None:
    """Per-class loss weights, or None for ``none``.

    ``median_frequency`` (Eigen & Fergus, as SegNet used on CamVid): freq(c) = pixels of class c /
    pixels of the images in which c occurs; weight = median(freq) / freq(c).
    ``sqrt_median_frequency``: its square root, a milder version.
    ``inverse_frequency``: 1 / (share of class c), scaled to a mean of 1.
    Classes that never occur get weight 0 (they cannot be learned from this data).
    """
    if method == "none":
        return None
    pixels = np.asarray(class_pixels, dtype=np.float64)
    seen = pixels > 0
    weights = np.zeros_like(pixels)
    if method in ("median_frequency", "sqrt_median_frequency"):
        if pixels_of_images_with_class is None:
            raise ValueError(
                "median frequency balancing needs the pixels of images with each class"
            )
        freq = pixels[seen] / np.asarray(pixels_of_images_with_class, dtype=np.float64)[seen]
        weights[seen] = np.median(freq) / freq
        if method == "sqrt_median_frequency":
            weights = np.sqrt(weights)
    elif method == "inverse_frequency":
        inverse = pixels.sum() / pixels[seen]
        weights[seen] = inverse / inverse.mean()
    else:  # the configuration allows only these
        raise ValueError(f"unknown class weighting {method!r}; choose from {', '.join(WEIGHTINGS)}")
    return weights


def class_balanced_weights(image_class_pixels: np.ndarray, share: float) -> np.ndarray:
    """Per-image sampling weights (summing to 1) for class-balanced sampling: a ``share`` of draws
    pick a class uniformly, then an image in proportion to its pixels of that class; the rest pick
    an image uniformly. So a class in 1% of the pixels is drawn as often as road, at the price of
    seeing the frames that hold it more often (``share`` 0: uniform)."""
    pixels = np.asarray(image_class_pixels, dtype=np.float64)
    uniform = np.full(len(pixels), 1.0 / len(pixels))
    totals = pixels.sum(axis=0)
    seen = totals > 0
    if share == 0 or not seen.any():
        return uniform
    per_class = pixels[:, seen] / totals[seen]  # each column: where that class's pixels are
    balanced = per_class.mean(axis=1)
    return (1 - share) * uniform + share * balanced
