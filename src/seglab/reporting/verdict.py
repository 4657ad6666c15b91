"""Which model x form to ship. Every compared model is measured in every deployable form (mIoU,
latency, memory); the verdict is the most accurate one within the budget, or, without a budget,
the frontier's knee. Pure functions of the measurements, so a constructed case tests them."""

from __future__ import annotations

import math
from collections.abc import Sequence

from seglab.reporting.budget import Budget
from seglab.reporting.results import FormResult, ModelResult, Verdict

# The knee: each doubling of latency must buy at least this many mIoU points.
KNEE_POINTS_PER_DOUBLING = 1.0
KNEE_RULE = (
    "no budget given: the frontier's knee, the model x form that maximises mIoU points - "
    f"{KNEE_POINTS_PER_DOUBLING:g} x log2(latency in ms), i.e. beyond which each doubling of "
    f"latency buys less than {KNEE_POINTS_PER_DOUBLING:g} mIoU point"
)


def most_accurate(points: Sequence[FormResult]) -> FormResult:
    """The highest mIoU; the fastest of equals."""
    return max(points, key=lambda p: (p.miou, -p.latency_ms))


def frontier(points: Sequence[FormResult]) -> list[FormResult]:
    """The Pareto-optimal points, fastest first: those no other point matches in both latency
    and mIoU while beating in one."""

    def dominated(p: FormResult) -> bool:
        return any(
            q.latency_ms <= p.latency_ms
            and q.miou >= p.miou
            and (q.latency_ms < p.latency_ms or q.miou > p.miou)
            for q in points
        )

    return sorted((p for p in points if not dominated(p)), key=lambda p: p.latency_ms)


def knee(points: Sequence[FormResult]) -> FormResult:
    """The point of the frontier that maximises mIoU points - KNEE_POINTS_PER_DOUBLING x
    log2(latency): where the frontier flattens below that many points per doubling."""
    return max(
        frontier(points),
        key=lambda p: 100 * p.miou - KNEE_POINTS_PER_DOUBLING * math.log2(p.latency_ms),
    )


def fits(point: FormResult, budget: Budget) -> bool:
    latency = budget.latency_ms is None or point.latency_ms <= budget.latency_ms
    memory = budget.memory_mb is None or point.model_memory_mb <= budget.memory_mb
    return latency and memory


def overshoot(point: FormResult, budget: Budget) -> float:
    """How far ``point`` is from fitting: the largest of its latency and memory over their
    budgets (at most 1 when it fits)."""
    ratios = [0.0]
    if budget.latency_ms is not None:
        ratios.append(point.latency_ms / budget.latency_ms)
    if budget.memory_mb is not None:
        ratios.append(point.model_memory_mb / budget.memory_mb)
    return max(ratios)


def choose(points: Sequence[FormResult], budget: Budget) -> tuple[FormResult, bool, str]:
    """(chosen point, whether it fits the budget, the rule in words). Under a budget: the most
    accurate point within it, or, when none fits, the closest (smallest overshoot, then the
    most accurate). Without one: the knee."""
    if not budget:
        return knee(points), True, KNEE_RULE
    within = [p for p in points if fits(p, budget)]
    if within:
        rule = f"the most accurate model x form within {budget.describe()}"
        return most_accurate(within), True, rule
    closest = min(points, key=lambda p: (overshoot(p, budget), -p.miou))
    rule = f"nothing fits {budget.describe()}; the closest model x form (least over budget)"
    return closest, False, rule


def candidates(points: Sequence[FormResult], models: Sequence[ModelResult]) -> list[FormResult]:
    """The points a verdict may choose from: those of models not flagged degenerate, unless
    every model is."""
    sound = {m.name for m in models if not any(f.kind == "degenerate" for f in m.flags)}
    kept = [p for p in points if p.model in sound]
    return kept or list(points)


def decide(points: Sequence[FormResult], models: Sequence[ModelResult], budget: Budget) -> Verdict:
    """The verdict over ``points`` (every model x form, each with its difference to the most
    accurate) for ``models`` (their flags)."""
    pool = candidates(points, models)
    chosen, fit, rule = choose(pool, budget)
    best = most_accurate(pool)
    involved = {chosen.model, best.model}
    left_out = sorted({p.model for p in points} - {p.model for p in pool})
    cautions = [
        f"{m.name} is {f.kind}: {f.reason}" for m in models if m.name in involved for f in m.flags
    ]
    cautions += [f"{name} is left out of the choice: it is degenerate" for name in left_out]
    return Verdict(
        chosen=chosen,
        best=best,
        rule=rule,
        fits=fit,
        speedup=best.latency_ms / chosen.latency_ms,
        latency_budget_ms=budget.latency_ms,
        memory_budget_mb=budget.memory_mb,
        cautions=cautions,
    )
