"""Inference beyond one forward pass: sliding windows for large images, test-time
augmentation by horizontal flip and several scales, and class indices from logits or
probabilities without a softmax where that provably gives the same classes. Used by evaluation,
prediction and serving alike, with any segmenter (see seglab.engine.segmenter)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

Logits = Callable[[torch.Tensor], torch.Tensor]  # N x C x H x W images -> N x K x H x W logits


@torch.inference_mode()
def predict_probabilities(
    model: Logits,
    images: torch.Tensor,
    *,
    flip: bool = False,
    scales: Sequence[float] = (1.0,),
    window: tuple[int, int] | None = None,
    overlap: float = 1 / 3,
) -> torch.Tensor:
    """N x K x H x W class probabilities (float32), averaged over every scale (and its mirror
    image); ``model`` is any callable from images to logits, such as a segmenter."""
    height, width = images.shape[-2:]
    total, count = None, 0
    for scale in scales:
        x = images
        if scale != 1.0:
            size = (max(1, round(height * scale)), max(1, round(width * scale)))
            x = F.interpolate(images, size=size, mode="bilinear", align_corners=False)
        for mirrored in (False, True) if flip else (False,):
            xi = x.flip(-1) if mirrored else x
            logits = sliding_window(model, xi, window, overlap) if window else model(xi)
            logits = logits.float()
            if mirrored:
                logits = logits.flip(-1)
            if logits.shape[-2:] != (height, width):
                logits = F.interpolate(
                    logits, size=(height, width), mode="bilinear", align_corners=False
                )
            probs = logits.softmax(1)
            total = probs if total is None else total + probs
            count += 1
    return total / count


def sliding_window(
    model: Logits, images: torch.Tensor, window: tuple[int, int], overlap: float = 1 / 3
) -> torch.Tensor:
    """Logits of an image of any size from ``window``-sized tiles overlapping by ``overlap``;
    where tiles overlap their logits are averaged."""
    height, width = images.shape[-2:]
    win_h, win_w = min(window[0], height), min(window[1], width)
    step_h, step_w = max(1, int(win_h * (1 - overlap))), max(1, int(win_w * (1 - overlap)))
    tops = _starts(height, win_h, step_h)
    lefts = _starts(width, win_w, step_w)
    logits = counts = None
    for top in tops:
        for left in lefts:
            tile = model(images[..., top : top + win_h, left : left + win_w]).float()
            if logits is None:
                logits = images.new_zeros(
                    (images.shape[0], tile.shape[1], height, width), dtype=torch.float32
                )
                counts = images.new_zeros((1, 1, height, width), dtype=torch.float32)
            logits[..., top : top + win_h, left : left + win_w] += tile
            counts[..., top : top + win_h, left : left + win_w] += 1
    return logits / counts


def _starts(size: int, window: int, step: int) -> list[int]:
    starts = list(range(0, max(size - window, 0) + 1, step))
    if starts[-1] + window < size:
        starts.append(size - window)
    return starts


# How far a pixel's largest logit must stand above every earlier class's for the logits' argmax
# to be the softmax's (see clear_argmax).
MARGIN = 1e-5


def clear_argmax(logits: torch.Tensor) -> np.ndarray | None:
    """The first argmax of K x H x W float32 ``logits`` (K at most 256) when it is certainly the
    argmax of their softmax: when at every pixel the largest logit stands at least
    :data:`MARGIN` above every class before it. None otherwise (or for a NaN or an infinity).

    Why that suffices: softmax is exp(x - max) scaled by one positive number per pixel. A class
    j before the argmax i with x_j <= x_i - 1e-5 has exp(x_j - x_i) <= 1 - 1e-5, over 160 float32
    steps below exp(0) = 1, a gap no rounding of the exponential or of the scaling closes, so
    p_j < p_i. Classes after i lose a tie to i either way (argmax takes the first)."""
    planes = logits.detach().numpy()
    best = planes[0].copy()
    before = np.full(best.shape, -np.inf, dtype=planes.dtype)  # the largest of earlier classes
    classes = np.zeros(best.shape, dtype=np.uint8)
    larger = np.empty(best.shape, dtype=bool)
    for k in range(1, planes.shape[0]):
        np.greater(planes[k], best, out=larger)
        np.copyto(classes, k, where=larger)
        np.copyto(before, best, where=larger)
        np.maximum(best, planes[k], out=best)
    if not np.isfinite(best).all() or (best - before < MARGIN).any():  # NaN, inf: softmax's
        return None
    return classes


def first_argmax(scores: torch.Tensor) -> np.ndarray:
    """H x W uint8: the index of the largest of K x H x W ``scores`` (K at most 256), the first
    one where several are equal, as ``scores.argmax(0)`` gives it (a NaN counts as the largest:
    then torch's own answer). One pass over each class's plane instead of a strided reduction."""
    planes = scores.numpy()
    best = planes[0].copy()
    classes = np.zeros(best.shape, dtype=np.uint8)
    larger = np.empty(best.shape, dtype=bool)
    for k in range(1, planes.shape[0]):
        np.greater(planes[k], best, out=larger)
        np.copyto(classes, k, where=larger)
        np.maximum(best, planes[k], out=best)
    if np.isnan(best).any():  # np.maximum carries NaN into best
        return scores.argmax(0).to(torch.uint8).numpy()
    return classes
