"""A run says early when it cannot converge: at its start when its planned steps are fewer than
the data needs, a few steps in when its time budget cannot fit them at the measured speed."""

import time
from types import SimpleNamespace

from seglab.cli import main
from seglab.config import TrainConfig
from seglab.engine.train import FILL_STEPS, Clock, budget_shortfall
from tests.engine.conftest import train_args


def session(budget: float | None, minimum: int | None = 300, total: int = FILL_STEPS):
    return SimpleNamespace(
        config=TrainConfig(time_budget=budget),
        resolved={"minimum_steps": minimum},
        total_steps=total,
    )


def spent(seconds: float, budget: float | None) -> Clock:
    return Clock(start=time.perf_counter() - seconds, budget=budget)


def test_a_budget_too_short_for_the_data_is_said_with_what_would_fit():
    clock = spent(12.0, 120.0)  # 12 s spent, 3 steps done
    warning = budget_shortfall(session(120.0), 3, 2.0, clock, reserve=8.0)
    # (120 - 12 - 8) / 2 = 50 more steps: 53 of the 300 needed; 297 x 2 + 20 s is 10.2 min
    assert warning == (
        "warning: at 2 s a step, the 2.0 min budget fits about 53 steps, fewer than the 300 "
        "this data needs: expect an undertrained model; about --time-budget 11m would fit them"
    )


def test_a_budget_that_fits_or_no_budget_or_minimum_says_nothing():
    assert budget_shortfall(session(1200.0), 3, 2.0, spent(12.0, 1200.0), 8.0) is None  # 593
    assert budget_shortfall(session(None), 3, 2.0, spent(12.0, None), 8.0) is None
    assert budget_shortfall(session(120.0, minimum=None), 3, 2.0, spent(12.0, 120.0), 8.0) is None
    # planned fewer steps than the minimum, and the budget fits them: said at the start only
    assert budget_shortfall(session(120.0, total=40), 3, 2.0, spent(12.0, 120.0), 8.0) is None


def test_planned_steps_short_of_the_minimum_are_said_at_the_start(tiny_data, tmp_path, capsys):
    assert main(train_args(tiny_data, tmp_path / "run", "--iterations", "2")) == 0
    out = capsys.readouterr().out
    # 32 images in batches of 4: 8 steps an epoch, the minimum 300 steps (recipe.MINIMUM_STEPS)
    assert "warning: 2 planned steps are fewer than the 300 this data needs to converge" in out
    assert out.index("warning: 2 planned") < out.index("ran 2 of 2 planned steps")
