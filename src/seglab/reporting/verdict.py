"""Which model x form to ship. Every compared model is measured in every deployable form (mIoU,
latency, memory), each with its mIoU difference to the most accurate one. Differences these
images and seeds cannot tell from zero, or too small to matter, are no reason to pay for a slower
model: the verdict is the fastest of the model x forms as accurate as the most accurate one,
within the budget. Pure functions of the measurements, so a constructed case tests them."""

from __future__ import annotations

from collections.abc import Sequence

from seglab.errors import SeglabError
from seglab.reporting.budget import Budget
from seglab.reporting.results import FormResult, ModelResult, Verdict
from seglab.reporting.statistics import equivalent

MARGIN = 0.01  # mIoU (a fraction): differences within 1 point count as equal


def margin_fraction(points: float) -> float:
    """The margin as compare takes it (a fraction of mIoU) from mIoU points, checked."""
    if not 0 <= points < 100:
        raise SeglabError(f"compare: --margin {points:g} must be from 0 to 100 mIoU points")
    return points / 100


def most_accurate(points: Sequence[FormResult]) -> FormResult:
    """The highest mIoU; the fastest of equals."""
    return max(points, key=lambda p: (p.miou, -p.latency_ms))


def fastest(points: Sequence[FormResult]) -> FormResult:
    """The lowest latency; the most accurate of equals."""
    return min(points, key=lambda p: (p.latency_ms, -p.miou))


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


def as_accurate(
    points: Sequence[FormResult], best: FormResult, margin: float = MARGIN
) -> list[FormResult]:
    """``best`` and the points whose difference to it (versus_best) is equivalent: not told
    from zero, or within +-``margin``. A point without a difference is not counted."""
    return [
        p
        for p in points
        if p is best or (p.versus_best is not None and equivalent(p.versus_best, margin))
    ]


def describe_margin(margin: float) -> str:
    """e.g. "±1.0 mIoU point"."""
    points = round(100 * margin, 1)
    return f"±{points:.1f} mIoU point" + ("" if points == 1 else "s")


def equivalence_rule(margin: float) -> str:
    return (
        "the fastest of the model x forms as accurate as the most accurate one (difference "
        f"within {describe_margin(margin)} or not told from zero)"
    )


def choose(
    points: Sequence[FormResult], equals: Sequence[FormResult], budget: Budget, margin: float
) -> tuple[FormResult, bool, str]:
    """(chosen point, whether it fits the budget, the rule in words). The fastest of
    ``equals`` (those as accurate as the most accurate) within the budget; when none fits, the
    most accurate point that does; when nothing fits, the closest (smallest overshoot, then the
    most accurate)."""
    if not budget:
        return fastest(equals), True, equivalence_rule(margin)
    within = [p for p in points if fits(p, budget)]
    equal_within = [p for p in equals if fits(p, budget)]
    if equal_within:
        rule = f"{equivalence_rule(margin)} within {budget.describe()}"
        return fastest(equal_within), True, rule
    if within:
        rule = f"the most accurate model x form within {budget.describe()}"
        return most_accurate(within), True, rule
    closest = min(points, key=lambda p: (overshoot(p, budget), -p.miou))
    rule = f"nothing fits {budget.describe()}; the closest model x form (least over budget)"
    return closest, False, rule


def candidates(points: Sequence[FormResult], models: Sequence[ModelResult]) -> list[FormResult]:
    """The points a verdict may choose from: those of models not flagged degenerate (a model
    that predicts one class is no choice, however fast)."""
    sound = {m.name for m in models if not any(f.kind == "degenerate" for f in m.flags)}
    return [p for p in points if p.model in sound]


def decide(
    points: Sequence[FormResult],
    models: Sequence[ModelResult],
    budget: Budget,
    margin: float = MARGIN,
) -> Verdict | None:
    """The verdict over ``points`` (every model x form, each with its difference to the most
    accurate non-degenerate one) for ``models`` (their flags); None when every model is
    degenerate: there is nothing worth choosing."""
    pool = candidates(points, models)
    if not pool:
        return None
    best = most_accurate(pool)
    equals = as_accurate(pool, best, margin)
    chosen, fit, rule = choose(pool, equals, budget, margin)
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
        equivalent=[p.label for p in equals],
        margin=margin,
    )
