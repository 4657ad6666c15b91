"""Optimizer with separate encoder and decoder learning rates, and the learning-rate schedule as a
pure function of training progress (so resuming, or fitting a time budget, needs no state)."""

from __future__ import annotations

import math

import torch

from seglab.config import TrainConfig
from seglab.models.unet import UNet


def build_optimizer(model: UNet, config: TrainConfig) -> torch.optim.Optimizer:
    groups = [
        {
            "params": list(model.encoder_parameters()),
            "lr": config.encoder_lr or config.lr,
            "name": "encoder",
        },
        {"params": list(model.decoder_parameters()), "lr": config.lr, "name": "decoder"},
    ]
    for group in groups:
        group["base_lr"] = group["lr"]
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            groups,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
            nesterov=config.momentum > 0,
        )
    return torch.optim.AdamW(groups, weight_decay=config.weight_decay)  # the configuration checked


# A run that fills its time budget plans no steps, so its warm-up is also bounded by time: it
# ends after this share of the budget at the latest. A budget too short for its steps would
# otherwise warm up throughout (45 s fit 11 steps of ISBI); a budget that fits them is not
# touched (CamVid's and ISBI's 30-minute defaults end 100 warm-up steps at about 15% and 18%).
WARMUP_SHARE = 0.25


def lr_factor(config: TrainConfig, step: int, progress: float) -> float:
    """Multiplier of the base learning rate: linear warm-up over ``warmup_iters`` steps (in a run
    that fills its time budget, over WARMUP_SHARE of ``progress`` if that comes first), then
    poly (power 0.9), cosine or constant decay over ``progress`` in [0, 1]."""
    warm = (step + 1) / config.warmup_iters if step < config.warmup_iters else 1.0
    if config.fills_budget:
        warm = max(warm, progress / WARMUP_SHARE)
    if warm < 1:
        return warm
    progress = min(max(progress, 0.0), 1.0)
    if config.schedule == "poly":
        return (1 - progress) ** 0.9
    if config.schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * progress))
    return 1.0  # constant (the configuration allows only these three)


def set_lr(optimizer: torch.optim.Optimizer, factor: float) -> float:
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] * factor
    return optimizer.param_groups[-1]["lr"]


def ema_decay(decay: float, updates: int) -> float:
    """The EMA decay at the ``updates``-th update: timm's warm-up, rising from 0.1 towards
    ``decay`` as (1 + n) / (10 + n). A constant 0.999 from step 0 would still hold 7% of the
    random start after 2650 steps; this keeps under 0.5% of it by step 100."""
    return min(decay, (1 + updates) / (10 + updates))


def ema_average(decay: float):
    """The ``multi_avg_fn`` of torch's AveragedModel for an EMA with :func:`ema_decay`'s warm-up
    (torch's own get_ema_multi_avg_fn has none)."""

    @torch.no_grad()
    def update(averaged: list, current: list, updates: torch.Tensor) -> None:
        weight = 1 - ema_decay(decay, int(updates))
        if torch.is_floating_point(averaged[0]):
            torch._foreach_lerp_(averaged, current, weight)
        else:  # integer buffers (BatchNorm's num_batches_tracked): follow the model
            for mine, theirs in zip(averaged, current, strict=True):
                mine.copy_(theirs)

    return update
