"""The recipe a dataset's fingerprint chooses: crop, batch, length of the run, loss, class
weighting, a full-resolution skip, how often to validate. Each choice comes with its reason in
words, so the run can print and record why it trains as it does. Only the options named in
``config.auto`` are chosen (the command line names every option the user did not give); a value
given by the user always wins.

The rules are nnU-Net's idea at a CPU's scale: a batch that keeps the pixels of a step near
STEP_PIXELS, a fixed, generous number of steps for a small dataset, bounded by a time budget the
user can change, and a crop of about half the image's side (MIN_CROP to MAX_CROP). At a fixed
number of pixels a step, half-side crops put four times as many different images in a batch as
whole images do, and each epoch shows every image in new views: on the ISBI membranes and CamVid
(docs/benchmarks.md, issue 22) 256x256 crops beat whole images under the same wall-clock budget."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from seglab.config import RECIPE_OPTIONS, TrainConfig, format_value
from seglab.data.fingerprint import Fingerprint
from seglab.models.encoders import get_encoder_spec

MAX_CROP = 512  # the largest crop side: the context a U-Net of stride 32 sees well
MIN_CROP = 256  # the smallest: images up to this side train whole
STEP_PIXELS = 2 * 512 * 512  # pixels a step should hold (8 crops of 256x256)
MAX_BATCH = 16
STEPS = 2000  # steps a small dataset needs to converge (the membrane recipe's figure)
EPOCHS = 30  # ... and at least this many passes over a larger one
MINIMUM_STEPS = 300  # fewer than this, and a run is judged undertrained whatever its curve
DEFAULT_TIME_BUDGET = 30 * 60.0  # seconds: the bound of the chosen schedule
VALIDATE_EVERY = 50  # steps between validations, at least ...
VALIDATIONS = 40  # ... and at most about this many over a run
RARE_SHARE = 0.05  # a class below this share of the pixels is rare: Dice loss lifts it
IMBALANCE = 3.0  # commonest over rarest share above which classes are weighted
THIN_PIXELS = 8.0  # structures thinner than this need a full-resolution skip ...
THIN_SHARE = 0.05  # ... where they are at least this share of the pixels (CamVid's 2.6%: no gain)
SKIP_CHANNELS = 16  # ... of this many channels
BASE_LR = 0.002  # AdamW's rate at BASE_BATCH (CamVid's recipe), scaled by sqrt(batch / BASE_BATCH)
BASE_BATCH = 8
WARMUP_STEPS = 100  # linear warm-up to a raised rate, at most a tenth of a planned run


@dataclass(frozen=True)
class Choice:
    """One option the fingerprint chose: its value and why, in words."""

    option: str
    value: Any
    reason: str

    def to_dict(self) -> dict[str, Any]:
        value = list(self.value) if isinstance(self.value, tuple) else self.value
        return {"option": self.option, "value": value, "reason": self.reason}


def choose_recipe(fp: Fingerprint, config: TrainConfig) -> list[Choice]:
    """The choices for the options in ``config.auto`` (in RECIPE_OPTIONS order), each made
    from ``fp`` and the options already settled (given, or chosen before it)."""
    choices: list[Choice] = []
    for name, rule in RULES.items():
        if name in config.auto:
            choice = rule(fp, config)
            if choice is not None:
                choices.append(choice)
                config = dataclasses.replace(config, **{name: choice.value})
    return choices


def apply_recipe(config: TrainConfig, choices: list[Choice]) -> TrainConfig:
    """``config`` with the choices' values; ``auto`` then names the options actually chosen."""
    values = {c.option: c.value for c in choices}
    return dataclasses.replace(config, **values, auto=tuple(values))


def minimum_steps(fp: Fingerprint, batch_size: int) -> int:
    """Fewer steps than this cannot have converged on this data: MINIMUM_STEPS, or 10 epochs."""
    return max(MINIMUM_STEPS, 10 * steps_per_epoch(fp, batch_size))


def steps_per_epoch(fp: Fingerprint, batch_size: int) -> int:
    return max(1, fp.train_images // batch_size)


def format_choices(fp: Fingerprint, choices: list[Choice]) -> list[str]:
    """The block a run prints at its start: one line per choice, with its reason."""
    height, width = fp.image_size
    lines = [
        f"recipe from the dataset's fingerprint ({fp.train_images} train / {fp.val_images} val "
        f"images of {height}x{width}, {len(fp.classes)} classes):"
    ]
    for c in choices:
        lines.append(f"  {c.option.replace('_', '-'):<14} {_shown(c)}: {c.reason}")
    lines.append("  (a flag given for any of these wins; --auto none keeps the plain defaults)")
    return lines


def _shown(choice: Choice) -> str:
    if choice.option == "time_budget" and choice.value:
        return f"{choice.value / 60:g}m"
    if choice.option == "crop_size" and choice.value is None:
        return "whole images"
    return format_value(choice.value)


# --- the rules, one per option ---------------------------------------------------------------


def _crop(fp: Fingerprint, config: TrainConfig) -> Choice:
    height, width = fp.largest_size
    if height <= MIN_CROP and width <= MIN_CROP:
        return Choice(
            "crop_size", None, f"the images (up to {height}x{width}) fit in one {MIN_CROP} crop"
        )
    side = _crop_side(min(fp.image_size) // 2)
    crop = tuple(min(side, max(32, s // 32 * 32)) for s in fp.image_size)  # never past a side
    size = "x".join(map(str, fp.image_size))
    return Choice(
        "crop_size",
        crop,
        f"images are {size}; crops of about half their side ({MIN_CROP} to {MAX_CROP}) put more "
        "images and views in each step",
    )


def _crop_side(side: int) -> int:
    """The side rounded down to the U-Net's stride (32), from MIN_CROP to MAX_CROP."""
    return max(MIN_CROP, min(MAX_CROP, side // 32 * 32))


def _batch(fp: Fingerprint, config: TrainConfig) -> Choice:
    height, width = config.crop_size or fp.image_size
    batch = max(2, min(MAX_BATCH, round(STEP_PIXELS / (height * width))))
    reason = f"about {STEP_PIXELS / 1e6:.1f} megapixels a step at {height}x{width}"
    # Whole images: at least 4 steps an epoch. Crops show each image anew every time, so only
    # the number of images bounds the batch.
    most = fp.train_images if config.crop_size else fp.train_images // 4
    if batch > max(1, most):
        batch = max(1, most)
        reason = (
            f"{fp.train_images} training images make at least 4 steps an epoch"
            if not config.crop_size
            else f"one crop of each of the {fp.train_images} training images"
        )
    return Choice("batch_size", batch, reason)


def _iterations(fp: Fingerprint, config: TrainConfig) -> Choice | None:
    if config.time_budget or config.epochs:  # the user's budget (or epochs) sets the length
        return None
    per_epoch = steps_per_epoch(fp, config.batch_size)
    steps = max(STEPS, EPOCHS * per_epoch)
    epochs = math.ceil(steps / per_epoch)
    return Choice(
        "iterations",
        steps,
        f"{fp.train_images} images make {per_epoch} steps an epoch; {epochs} epochs "
        f"(at least {STEPS} steps, at least {EPOCHS} epochs) let a small dataset converge",
    )


def _time_budget(fp: Fingerprint, config: TrainConfig) -> Choice | None:
    if config.epochs or "iterations" not in config.auto:  # the user set the length
        return None
    return Choice(
        "time_budget",
        DEFAULT_TIME_BUDGET,
        "the bound of the chosen steps on a slow machine (the learning rate is fitted to it); "
        "change it with --time-budget",
    )


def _class_weights(fp: Fingerprint, config: TrainConfig) -> Choice:
    (rare, rare_share), (common, common_share) = fp.rarest, fp.commonest
    ratio = common_share / max(rare_share, 1e-9)
    if ratio >= IMBALANCE:
        return Choice(
            "class_weights",
            "sqrt_median_frequency",
            f"{rare} is {100 * rare_share:.1f}% of labelled pixels, {ratio:.0f}x fewer than "
            f"{common}",
        )
    return Choice("class_weights", "none", f"classes are balanced (at most {ratio:.1f}x apart)")


def _loss(fp: Fingerprint, config: TrainConfig) -> Choice:
    rare, share = fp.rarest
    if share < RARE_SHARE:
        return Choice(
            "loss",
            "ce+dice",
            f"{rare} is {100 * share:.1f}% of labelled pixels; Dice weighs each class's overlap "
            "whatever its size",
        )
    return Choice("loss", "ce", f"every class is at least {100 * RARE_SHARE:.0f}% of the pixels")


def _full_res_skip(fp: Fingerprint, config: TrainConfig) -> Choice:
    first_stride = get_encoder_spec(config.encoder).taps[0].stride
    if first_stride == 1:
        return Choice("full_res_skip", 0, f"{config.encoder}'s first skip is at full resolution")
    thin = fp.thinner_than(THIN_PIXELS)
    if not thin:
        return Choice("full_res_skip", 0, f"no class is thinner than {THIN_PIXELS:.0f} px")
    names = ", ".join(fp.classes[c] for c in thin)
    share = sum(fp.class_shares[c] for c in thin)
    widest = max(fp.widths[c] or 0.0 for c in thin)
    if share >= THIN_SHARE:
        return Choice(
            "full_res_skip",
            SKIP_CHANNELS,
            f"{names} structures are at most {widest:.1f} px wide and {100 * share:.0f}% of "
            f"labelled pixels, and {config.encoder}'s first skip is at stride {first_stride}",
        )
    return Choice(
        "full_res_skip",
        0,
        f"{names} structures are thinner than {THIN_PIXELS:.0f} px but only {100 * share:.1f}% "
        f"of labelled pixels: a full-resolution skip would slow every step (by 15% on CamVid) "
        "for little of the score",
    )


def _val_interval(fp: Fingerprint, config: TrainConfig) -> Choice:
    per_epoch = steps_per_epoch(fp, config.batch_size)
    planned = config.planned_steps(per_epoch)
    every = max(VALIDATE_EVERY, (planned or 0) // VALIDATIONS)
    epochs = max(1, math.ceil(every / per_epoch))
    return Choice(
        "val_interval",
        epochs,
        f"a validation every {epochs * per_epoch} steps (every {VALIDATE_EVERY} steps or more, so "
        f"that validation takes little of the run: at most about {VALIDATIONS} validations)",
    )


def _lr(fp: Fingerprint, config: TrainConfig) -> Choice | None:
    if config.optimizer != "adamw":  # the scaling below is Adam's; SGD keeps the plain rate
        return None
    lr = round(BASE_LR * math.sqrt(config.batch_size / BASE_BATCH), 6)
    scaled = "" if config.batch_size == BASE_BATCH else " scaled by the square root of the batch"
    return Choice(
        "lr",
        lr,
        f"AdamW's rate for a batch of {BASE_BATCH} (CamVid's recipe){scaled}, "
        f"for batches of {config.batch_size}",
    )


def _warmup_iters(fp: Fingerprint, config: TrainConfig) -> Choice:
    planned = config.planned_steps(steps_per_epoch(fp, config.batch_size))
    steps = WARMUP_STEPS if planned is None else min(WARMUP_STEPS, planned // 10)
    until = (
        f"the first {steps} steps, or the first quarter of the budget if that ends sooner"
        if planned is None  # no planned steps: the schedule bounds the warm-up by time
        else f"the first {steps} steps (at most {WARMUP_STEPS}, at most a tenth of the run)"
    )
    return Choice(
        "warmup_iters",
        steps,
        f"the rate rises linearly over {until}: Adam's first steps at the full rate can throw a "
        "random start off",
    )


RULES = {  # in the order they build on each other: batch on crop, steps on batch, ...
    "crop_size": _crop,
    "batch_size": _batch,
    "iterations": _iterations,
    "time_budget": _time_budget,
    "loss": _loss,
    "class_weights": _class_weights,
    "full_res_skip": _full_res_skip,
    "val_interval": _val_interval,
    "lr": _lr,
    "warmup_iters": _warmup_iters,
}

if tuple(RULES) != RECIPE_OPTIONS:  # one rule per option the configuration lets it choose
    raise RuntimeError(f"recipe rules {tuple(RULES)} differ from RECIPE_OPTIONS {RECIPE_OPTIONS}")
