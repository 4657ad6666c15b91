"""Was a run long enough? A run that stopped while its validation mIoU was still climbing steeply,
or before the fewest steps its dataset needs, has not shown what its model can do: its scores
undersell it, and comparing it with a finished run compares lengths, not models. Whether the run
did all the steps it planned is not the question: a time budget stops a run by design."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

# The last third of the validations (at least this many) show where the curve is heading.
TAIL_SHARE = 1 / 3
TAIL_MIN_POINTS = 3
# A run is still rising when its end slope, less NOISE_FACTOR standard errors (what the curve's
# noise may account for), carried on over another EXTRA_SHARE of the steps it ran, would add
# more than RISE_POINTS of mIoU.
EXTRA_SHARE = 0.5
RISE_POINTS = 2.0
NOISE_FACTOR = 2.0
REMEDY = "train longer: a larger --time-budget or --iterations"


def still_rising(curve: Sequence[tuple[int, float]]) -> str | None:
    """Why the validation ``curve`` ((step, mIoU as a fraction) per validation, in order) says
    the run ended too soon, or None: flat, falling, noisy, or too few validations to tell."""
    if len(curve) < TAIL_MIN_POINTS:
        return None
    tail = curve[-max(TAIL_MIN_POINTS, math.ceil(TAIL_SHARE * len(curve))) :]
    fit = _slope(tail, curve)
    if fit is None:
        return None
    slope, error = fit
    steps_run = curve[-1][0]
    # The slope the noise cannot account for, carried on over another half of the run.
    assured = 100 * (slope - NOISE_FACTOR * error) * EXTRA_SHARE * steps_run
    if assured <= RISE_POINTS:
        return None
    expected = 100 * slope * EXTRA_SHARE * steps_run
    span = tail[-1][0] - tail[0][0]
    return (
        f"validation mIoU was still rising at the end: {100 * slope * span:+.1f} points over "
        f"the last {span} steps; at that pace another {round(EXTRA_SHARE * steps_run)} steps "
        f"would add about {expected:+.1f}"
    )


def undertrained(
    steps_done: int,
    curve: Sequence[tuple[int, float]],
    minimum_steps: int | None = None,
) -> str | None:
    """Why a run that did ``steps_done`` optimizer steps is undertrained, in one line with what
    to try, or None: it ran fewer than ``minimum_steps`` (its dataset's minimum; None: no
    minimum), or its validation ``curve`` was still rising steeply (see :func:`still_rising`)."""
    causes = []
    if minimum_steps is not None and steps_done < minimum_steps:
        causes.append(f"ran {steps_done} steps, fewer than the {minimum_steps} its data needs")
    rising = still_rising(curve)
    if rising:
        causes.append(rising)
    return f"{'; and '.join(causes)}; {REMEDY}" if causes else None


def _slope(
    points: Sequence[tuple[int, float]], curve: Sequence[tuple[int, float]]
) -> tuple[float, float] | None:
    """The least-squares slope of ``points`` (mIoU per step) and its standard error; None when
    the steps do not differ. The noise is the larger of the fit's residuals and the spread of
    the whole ``curve``'s successive changes: a few points alone may look smooth by chance."""
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    sxx = sum((x - mean_x) ** 2 for x, _ in points)
    if sxx == 0:
        return None
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / sxx
    residual = sum((y - mean_y - slope * (x - mean_x)) ** 2 for x, y in points) / (n - 2)
    return slope, math.sqrt(max(residual, _step_noise(curve)) / sxx)


def _step_noise(curve: Sequence[tuple[int, float]]) -> float:
    """The variance of one validation's mIoU that the spread of successive changes shows (a
    steady trend adds nothing to it; a bending one adds, which only makes this cautious)."""
    changes = [b - a for (_, a), (_, b) in itertools.pairwise(curve)]
    mean = sum(changes) / len(changes)
    return sum((c - mean) ** 2 for c in changes) / max(len(changes) - 1, 1) / 2
