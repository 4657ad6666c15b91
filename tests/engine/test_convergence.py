"""Was a run long enough: a validation curve still climbing steeply at its end, or fewer steps
than the data needs, makes a run undertrained; a flat, noisy, falling or too short curve says
nothing."""

import numpy as np
import pytest

from seglab.engine.convergence import still_rising, undertrained

REMEDY = "train longer: a larger --time-budget or --iterations"


def curve(values, every: int = 100) -> list[tuple[int, float]]:
    return [(every * (k + 1), float(v)) for k, v in enumerate(values)]


def test_a_steeply_rising_curve_is_still_rising_with_its_numbers():
    assert still_rising(curve([0.40, 0.45, 0.50])) == (
        "validation mIoU was still rising at the end: +10.0 points over the last 200 steps; "
        "at that pace another 150 steps would add about +7.5"
    )
    long = curve(np.linspace(0.1, 0.55, 12))  # the last third: 4 points
    assert still_rising(long).startswith(
        "validation mIoU was still rising at the end: +12.3 points over the last 300 steps"
    )


@pytest.mark.parametrize(
    "values",
    [
        [0.6] * 12,  # flat
        [0.2, 0.4, 0.5, 0.55, 0.58, 0.6, 0.6, 0.6, 0.601, 0.6, 0.602, 0.601],  # risen, then flat
        [0.6, 0.58, 0.55, 0.5, 0.45],  # falling
        [0.60, 0.601, 0.602, 0.603],  # rising, but by too little to matter
    ],
    ids=["flat", "plateau", "falling", "gentle"],
)
def test_a_curve_that_is_not_climbing_steeply_says_nothing(values):
    assert still_rising(curve(values)) is None
    assert undertrained(100 * len(values), curve(values)) is None


@pytest.mark.parametrize("seed", range(20))
def test_noise_around_a_flat_curve_is_not_a_rise(seed):
    noise = np.random.default_rng(seed).normal(0, 0.01, 12)  # a point of noise
    assert still_rising(curve(0.6 + noise)) is None
    assert still_rising(curve(np.linspace(0.2, 0.5, 12) + noise)) is not None  # a rise is seen


def test_too_few_validations_say_nothing():
    assert still_rising([]) is None
    assert still_rising(curve([0.1, 0.5])) is None  # steep, but two points are no trend
    assert still_rising([(100, 0.1), (100, 0.3), (100, 0.5)]) is None  # no steps between them
    assert undertrained(200, curve([0.1, 0.5])) is None


def test_a_run_short_of_its_minimum_or_still_rising_is_undertrained():
    flat = curve([0.6] * 6)
    assert undertrained(50, flat, minimum_steps=400) == (
        f"ran 50 steps, fewer than the 400 its data needs; {REMEDY}"
    )
    assert undertrained(400, flat, minimum_steps=400) is None
    assert undertrained(50, flat) is None  # no minimum: the steps alone say nothing
    rising = curve([0.40, 0.45, 0.50])
    reason = undertrained(300, rising)
    assert reason.startswith("validation mIoU was still rising at the end: +10.0 points")
    assert reason.endswith(f"; {REMEDY}") and "\n" not in reason
    both = undertrained(300, rising, minimum_steps=1000)
    assert both.startswith("ran 300 steps, fewer than the 1000 its data needs; and validation")
