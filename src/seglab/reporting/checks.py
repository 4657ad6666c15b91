"""What a comparison must say before its numbers: which models' scores say little (degenerate or
undertrained), whether a difference involving them can be judged at all, and how the runs' set-ups
differ, from their recorded configurations, so that nothing is claimed equal that is not."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from seglab.config import TrainConfig, format_value
from seglab.engine import convergence
from seglab.engine.metrics import degenerate as degenerate_reason
from seglab.reporting.results import Flag, HistoryPoint, ModelResult

# The parts of a set-up the report may call the same, each with the options it is made of.
SETUP_PARTS: dict[str, tuple[str, ...]] = {
    "data": ("data",),
    "seed": ("seed",),
    "augmentations": ("crop_size", "scale", "hflip", "color_jitter"),
    "encoder weights": ("weights",),
    "loss": ("loss", "class_weights", "focal_gamma", "label_smoothing"),
    "schedule": (
        "epochs",
        "iterations",
        "time_budget",
        "batch_size",
        "accumulate",
        "optimizer",
        "lr",
        "encoder_lr",
        "momentum",
        "weight_decay",
        "schedule",
        "warmup_iters",
        "clip_grad",
        "ema",
        "freeze_encoder_epochs",
    ),
}
# Options that do not change what a run learns, and the encoder (what a comparison compares).
NOT_SETUP = ("out", "progress", "workers", "threads", "encoder")


def degenerate(confusion: np.ndarray, classes: Sequence[str], miou: float) -> Flag | None:
    """A flag when the model (its K x K confusion matrix) is useless: see
    seglab.engine.metrics.degenerate, the rule every metrics record states."""
    reason = degenerate_reason(confusion, classes, miou)
    return None if reason is None else Flag("degenerate", reason)


def planned_steps(config: TrainConfig, train_images: int, processes: int = 1) -> int | None:
    """The optimizer steps a run's schedule planned, as training counts them (``iterations``,
    or the epochs, given or the default, of full global batches of ``train_images``); None when
    the run fills its time budget and so planned no number of steps."""
    steps_per_epoch = train_images // (config.batch_size * processes) // config.accumulate
    return config.planned_steps(steps_per_epoch)


def undertrained(
    steps_done: int | None, history: Sequence[HistoryPoint], minimum_steps: int | None = None
) -> Flag | None:
    """A flag when a run ended too soon to show what its model can do: fewer steps than its
    data's ``minimum_steps``, or a validation ``history`` still rising steeply (see
    seglab.engine.convergence.undertrained). Stopping before the planned steps is not a flag:
    a time budget stops a run by design. An unknown ``steps_done`` checks the curve alone."""
    reason = convergence.undertrained(
        steps_done or 0,
        [(point.step, point.val_miou) for point in history],
        minimum_steps if steps_done is not None else None,
    )
    return None if reason is None else Flag("undertrained", reason)


def describe_flags(model: ModelResult) -> str:
    """e.g. "a/mobilenet_v2 is degenerate (predicts sky on 99.7% of scored pixels)"."""
    return "; ".join(f"{model.name} is {f.kind} ({f.reason})" for f in model.flags)


def why_not_judged(*models: ModelResult) -> str | None:
    """Why a difference between ``models`` cannot be judged (None when it can): the flags of
    those flagged."""
    flagged = [describe_flags(m) for m in models if m.flags]
    return "; ".join(flagged) or None


def setup_differences(models: Sequence[ModelResult]) -> list[tuple[str, list[str]]]:
    """(option, each model's value) for every recorded option whose value is not the same for
    every model, then the steps each ran when those differ."""
    options = [m.setup.options for m in models]
    names = [k for k in options[0] if k not in NOT_SETUP] if options else []
    rows = [
        (name, [_value(o.get(name)) for o in options])
        for name in names
        if any(o.get(name) != options[0].get(name) for o in options)
    ]
    steps = [steps_done(m) for m in models]
    if len(set(steps)) > 1:
        rows.append(("steps done", steps))
    return rows


def same_and_different(models: Sequence[ModelResult]) -> tuple[list[str], list[str]]:
    """The SETUP_PARTS that are the same for every model, and those that are not."""
    differing = {name for name, _ in setup_differences(models)}
    same = [part for part, names in SETUP_PARTS.items() if not differing & set(names)]
    return same, [part for part in SETUP_PARTS if part not in same]


def steps_done(model: ModelResult) -> str:
    """e.g. "5 of 160 planned"; "-" where unknown."""
    done, planned = model.setup.steps_done, model.setup.planned_steps
    if done is None:
        return "-"
    return f"{done} of {planned} planned" if planned else str(done)


def _value(value: Any) -> str:
    return format_value(tuple(value) if isinstance(value, list) else value)
