"""The training loop, read top to bottom: set-up (everything checked before any file is written),
then steps with periodic validation and checkpoints. DDP, mixed precision, the time budget and
exact resume are a few marked lines; the step and the validate-and-save are functions beside it.

A run folder belongs to one run (engine/run_folder.py): config.yaml (the options, what was
resolved, and every extension), metrics.csv (a row per validation), metrics.json (the best
validation's metrics), best.pt (by validation mIoU) and last.pt (with the state for --resume).

What a run promises when things go wrong: every file is written whole or not at all (a full
disk is one line, the previous last.pt kept); a resumed run's problems (no last.pt, a file that
is not one, its data moved or changed, an extension that adds nothing) are reported before any
model is built or data read; a data file that breaks during training stops the run cleanly, with
last.pt saved at the last completed step and one line naming the file; metrics.csv keeps one row
per validation through kills and resumes.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import itertools
import json
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel
from tqdm.auto import tqdm

from seglab.config import (
    DEFAULT_EPOCHS,
    TrainConfig,
    format_value,
    parse_fold,
    read_run_record,
    save_config,
)
from seglab.data.dataset import Data, open_data
from seglab.data.fingerprint import fingerprint
from seglab.data.info import DatasetInfo
from seglab.data.loading import make_loader
from seglab.data.stats import class_balanced_weights, class_weights
from seglab.data.transforms import train_transform
from seglab.engine.checkpoint import Checkpoint, TrainingState
from seglab.engine.convergence import undertrained
from seglab.engine.data_record import RECORD_KEY, check_recorded_data, data_files, resolve_data
from seglab.engine.distributed import Dist, all_reduce_sum, init_distributed, shutdown
from seglab.engine.evaluate import evaluate
from seglab.engine.finetune import StartPoint, find_start, keep_architecture, start_from
from seglab.engine.losses import build_loss
from seglab.engine.machine import ThreadChoice, resolve_threads, torch_threads
from seglab.engine.optim import build_optimizer, ema_average, lr_factor, set_lr
from seglab.engine.performance import (
    Precision,
    autocast,
    choose_precision,
    configure_backends,
    pick_device,
    synchronize,
    time_it,
)
from seglab.engine.recipe import apply_recipe, choose_recipe, format_choices, minimum_steps
from seglab.engine.run_folder import claim_run_folder, default_run_folder
from seglab.engine.segmenter import TorchSegmenter
from seglab.errors import BadFileError, SeglabError, first_line, one_line
from seglab.formatting import format_metrics, undertrained_warning
from seglab.models.encoders import get_encoder_spec
from seglab.models.unet import UNet, build_model
from seglab.models.weights import fetch_imagenet_weights
from seglab.outputs import WriteError, write_text_atomic

CSV_FIELDS = ["epoch", "step", "train_loss", "val_miou", "val_pixel_accuracy", "lr", "seconds"]
# The planned steps of a run whose time budget alone sets its length: more than any budget holds.
FILL_STEPS = 10**9
# Steps skipped, then timed, before judging whether the time budget fits the steps the data needs.
WARMUP_STEPS, TIMED_STEPS = 1, 2
# Options a resumed run may change: how long it runs (recorded as an extension), and the
# machine's share of it: how its data is loaded (which never changes a result) and torch's
# threads (which change the weights in their last bits only: a resumed run keeps the run's
# recorded number unless --threads is given).
SCHEDULE_OPTIONS = ("epochs", "iterations", "time_budget")
MACHINE_OPTIONS = ("workers", "threads", "progress")


def train(
    config: TrainConfig,
    resume: str | Path | None = None,
    log: Callable[[str], None] = tqdm.write,
) -> dict:
    """Train as ``config`` says, or continue the run in ``resume`` (``config`` then holds its
    changes, see resume_config); returns the best validation metrics. What the run says (the
    recipe and why, the set-up, warnings, each validation, the summary) goes to ``log``, on the
    main process only; progress bars follow ``config.progress``."""
    ctx = init_distributed(config.device)
    try:
        with torch_threads():  # prepare sets the run's threads; the caller's are back after it
            return _train(config, ctx, resume, log)
    finally:
        shutdown(ctx)


@dataclass
class Session:
    """Everything the loop needs, built and checked before anything is written."""

    config: TrainConfig
    ctx: Dist
    device: torch.device
    precision: Precision
    threads: ThreadChoice
    info: DatasetInfo
    train_loader: Any
    val_loader: Any
    model: UNet
    train_model: torch.nn.Module  # the model wrapped for DDP and torch.compile
    ema: AveragedModel | None  # the weight average, when config.ema is set
    criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    steps_per_epoch: int
    total_steps: int
    resolved: dict[str, Any]
    log: Callable[[str], None] = tqdm.write

    @property
    def epochs(self) -> int:
        return math.ceil(self.total_steps / self.steps_per_epoch)

    @property
    def fills_budget(self) -> bool:
        """The run trains until its time budget ends: it plans no number of steps."""
        return self.config.fills_budget

    @property
    def out(self) -> Path:
        return Path(self.config.out)

    @property
    def evaluated_model(self) -> UNet:
        """The weights validation scores and checkpoints hold: the average, when kept."""
        return self.ema.module if self.ema is not None else self.model

    @property
    def global_batch(self) -> int:
        return self.config.batch_size * self.config.accumulate * self.ctx.world_size

    def say(self, text: str) -> None:
        if self.ctx.is_main:
            self.log(text)


def _train(
    config: TrainConfig, ctx: Dist, resume: str | Path | None, log: Callable[[str], None]
) -> dict:
    started = time.perf_counter()  # the time budget covers set-up, validation and saving too
    out = Path(resume or config.out or default_run_folder(config.encoder))
    say = log if ctx.is_main else (lambda *_: None)
    claim = (
        claim_run_folder(out, resume is not None, say) if ctx.is_main else contextlib.nullcontext()
    )
    with claim:  # checked and held before any work; a failed start leaves nothing behind
        # check first, then work: the run's last.pt and data before any model or data is read
        saved = check_resume(out, config) if resume is not None else None
        s = prepare(config, ctx, out, fresh=resume is None, log=log)
        state, original, extensions = TrainingState(), s.config, []
        if saved is not None:
            state, original, extensions = restore(s, out, saved)
        if ctx.is_main:  # the options as the run started, and how it has grown since
            save_config(original, out / "config.yaml", s.resolved, extensions)
        announce(s)
        log = RunLog(out, state.step if resume is not None else None, say) if ctx.is_main else None
        try:
            run_loop(s, state, log, started)
        except BadFileError as err:
            raise stopped_on_bad_file(s, state, err) from None
        except WriteError as err:
            raise WriteError(f"{err}; {resume_hint(s.out)}") from None
        finally:
            if log:
                log.close()
    return state.best_metrics


def run_loop(s: Session, state: TrainingState, log: RunLog | None, started: float) -> None:
    """The epochs: steps, validation when due, and last.pt after each; then the run's verdict
    and summary. ``state`` is where the run stands, kept current step by step."""
    ctx, out = s.ctx, s.out
    clock = Clock(started - state.elapsed, s.config.time_budget)
    reserve = estimate_validation_seconds(s)  # the last validation and save fit the budget
    lr, finished = s.optimizer.param_groups[-1]["lr"], False
    first_step, timed_from = state.step, time.perf_counter()
    for epoch in itertools.count(state.epoch + 1):  # until the planned steps or time run out
        frozen = epoch <= s.config.freeze_encoder_epochs
        s.model.freeze_encoder() if frozen else s.model.unfreeze_encoder()
        s.train_model.train()
        s.train_loader.batch_sampler.set_epoch(epoch)
        batches = iter(s.train_loader)
        todo = steps_of_epoch(s, epoch, state.step)
        bar = progress_bar(s, todo, f"epoch {epoch}" + ("" if s.fills_budget else f"/{s.epochs}"))
        loss_sum, steps, epoch_start = 0.0, 0, time.perf_counter()
        for _ in range(todo):
            lr = set_lr(
                s.optimizer,
                lr_factor(s.config, state.step, clock.progress(state.step, s.total_steps, reserve)),
            )
            loss, time_up = train_step(s, batches, clock, reserve)
            if not math.isfinite(loss):
                raise diverged(s, loss, epoch, state.step + 1)
            state.step, steps, loss_sum = state.step + 1, steps + 1, loss_sum + loss
            state.elapsed = clock.elapsed()
            rate = steps * s.global_batch / (time.perf_counter() - epoch_start)
            bar.set_postfix(loss=f"{loss_sum / steps:.4f}", lr=f"{lr:.2e}", img_s=f"{rate:.1f}")
            bar.update()
            if log:
                log.step(state.step, loss, lr)
            if state.step - first_step == WARMUP_STEPS:  # the first steps are not typical
                timed_from = time.perf_counter()
            elif state.step - first_step == WARMUP_STEPS + TIMED_STEPS and ctx.is_main:
                per_step = (time.perf_counter() - timed_from) / TIMED_STEPS
                warning = budget_shortfall(s, state.step, per_step, clock, reserve)
                if warning:
                    s.say(warning)
            if time_up:
                finished = True
                break
        bar.close()
        finished = finished or state.step >= s.total_steps
        state.epoch, spent = epoch, 0.0
        if epoch % s.config.val_interval == 0 or finished:
            train_loss = loss_sum / steps if steps else math.nan  # nan: resumed to validate
            try:
                spent = validate_and_save(s, state, clock, train_loss, lr, log)
            except BadFileError:
                state.epoch = epoch - 1  # not complete: --resume validates it
                raise
        state.elapsed, saving = clock.elapsed(), time.perf_counter()
        if ctx.is_main:
            checkpoint(s, state, state.best_metrics, training=True).save(out / "last.pt")
        reserve = max(reserve, spent + time.perf_counter() - saving)
        if finished:
            break
    if ctx.is_main:
        judge_convergence(s, state)
        write_text_atomic(out / "metrics.json", json.dumps(state.best_metrics, indent=2))
        s.say(format_summary(s, state, clock.elapsed()))


def steps_of_epoch(s: Session, epoch: int, step: int) -> int:
    """The steps epoch ``epoch`` runs from ``step``: a whole epoch, or fewer when the plan ends
    first, or the rest of it when the run stopped inside it (a bad file: last.pt then holds the
    last completed step, and ``epoch`` is the one it stopped in). Zero when the epoch's steps
    are all done but its validation is not: the epoch then only validates."""
    todo = min(s.steps_per_epoch, s.total_steps - step)
    done_in_epoch = step - (epoch - 1) * s.steps_per_epoch
    if 0 < done_in_epoch <= s.steps_per_epoch:
        todo = min(todo, s.steps_per_epoch - done_in_epoch)
    return todo


def resume_hint(out: Path) -> str:
    """What a stopped run's error line ends with: how to continue it, and from where."""
    last = out / "last.pt"
    if not last.is_file():
        return f"no checkpoint was written yet: start the run again (remove {out} first)"
    return f"continue from the last good checkpoint with: seglab train --resume {out}"


def stopped_on_bad_file(s: Session, state: TrainingState, err: BadFileError) -> BadFileError:
    """The run stopped cleanly on a data file that cannot be read: last.pt saved at the last
    completed step (the epoch in progress is finished on --resume), and one line naming the
    file, the split and how to continue. A run stops rather than skip the file: a skipped image
    would silently change what the model is trained or scored on."""
    line = one_line(err)  # the data side's line, also from a DataLoader worker
    s.optimizer.zero_grad(set_to_none=True)  # a step's half-accumulated gradients are dropped
    if not s.ctx.is_main:
        return BadFileError(line)
    if state.step > 0:
        checkpoint(s, state, state.best_metrics, training=True).save(s.out / "last.pt")
        saved = f"saved {s.out / 'last.pt'} at step {state.step}"
        return BadFileError(
            f"{line}; training stopped cleanly and {saved}; fix or replace the file, then "
            f"continue with: seglab train --resume {s.out}"
        )
    return BadFileError(f"{line}; training stopped before its first step; {resume_hint(s.out)}")


def progress_bar(s: Session, total: int, title: str) -> tqdm:
    return tqdm(
        total=total, desc=title, unit="step", disable=not (s.config.progress and s.ctx.is_main)
    )


def prepare(
    config: TrainConfig,
    ctx: Dist,
    out: Path,
    fresh: bool = True,
    log: Callable[[str], None] = tqdm.write,
) -> Session:
    """Device, precision, data, model, loss and optimizer, every check that can fail, before the
    run writes anything. A resumed run (not ``fresh``) needs no pretrained weights."""
    device = pick_device(config.device, ctx.local_rank)
    configure_backends(device)
    precision = choose_precision(device, config.precision)
    config, threads = set_threads(config, ctx, device, fresh)
    torch.manual_seed(config.seed + ctx.rank)
    random.seed(config.seed + ctx.rank)
    say = log if ctx.is_main else (lambda *_: None)

    start = find_start(config.weights) if fresh else None  # a resumed run has its own weights
    if fresh:  # recorded resolved, so the run and its models find the same data from anywhere
        config = dataclasses.replace(config, data=resolve_data(config.data))
    data = open_train_data(config, ctx, say)
    recipe: dict[str, Any] = {}
    if fresh:  # a resumed run keeps the recipe it started with
        if start is not None:
            config = keep_architecture(config, start, say)
        config, recipe = configure(config, data, say)
    train_loader, val_loader = make_loaders(config, data, ctx, device)
    steps_per_epoch = len(train_loader) // config.accumulate
    if steps_per_epoch == 0:
        raise SeglabError(
            f"{config.data}: {len(train_loader.dataset)} training images, fewer than one step of "
            f"{config.batch_size * config.accumulate * ctx.world_size}"
        )
    total_steps = config.planned_steps(steps_per_epoch) or FILL_STEPS

    model, weights_record = initial_model(config, data.info, start, fresh, say)
    model = model.to(device, memory_format=memory_format(config.channels_last))
    resolved = {
        **weights_record,
        "device": str(device),
        "precision": precision.name,
        "precision_reason": precision.reason,
        "threads_reason": threads.reason,
        "processes": ctx.world_size,
        "torch": str(torch.__version__),
        **recipe,
    }
    if fresh:  # the files the run trains on: whoever uses its data later checks them first
        resolved[RECORD_KEY] = data_files(config.data)
    return Session(
        config=dataclasses.replace(  # what "auto" and the defaults resolved to
            config,
            out=str(out),
            weights=weights_record["weights"],
            device=str(device),
            precision=precision.name,
        ),
        ctx=ctx,
        device=device,
        precision=precision,
        threads=threads,
        info=data.info,
        train_loader=train_loader,
        val_loader=val_loader,
        model=model,
        train_model=wrap_for_training(model, config, ctx, device),
        ema=None
        if config.ema is None
        else AveragedModel(model, multi_avg_fn=ema_average(config.ema), use_buffers=True),
        criterion=training_loss(config, data, device),
        optimizer=build_optimizer(model, config),
        scaler=torch.amp.GradScaler(device.type, enabled=precision.grad_scaler),
        steps_per_epoch=steps_per_epoch,
        total_steps=total_steps,
        resolved=resolved,
        log=log,
    )


def set_threads(
    config: TrainConfig, ctx: Dist, device: torch.device, fresh: bool
) -> tuple[TrainConfig, ThreadChoice]:
    """torch's intra-op threads set for the run (until train() returns: torch_threads there),
    and ``config`` with the threads and loader workers resolved from "auto"."""
    threads = resolve_threads(
        "training",
        config.threads,
        config.workers,
        processes=int(os.environ.get("LOCAL_WORLD_SIZE", ctx.world_size)),
        accelerator=device.type != "cpu",
        given="given" if fresh else "as set",  # resumed: the run's own, or given now
    )
    torch.set_num_threads(threads.threads)
    return dataclasses.replace(config, threads=threads.threads, workers=threads.workers), threads


def training_loss(
    config: TrainConfig, data: Data, device: torch.device
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The configured loss, with the class weights it takes from the training split."""
    per_class = loss_class_weights(config, data, device)
    return build_loss(
        config.loss, data.info.ignore_index, per_class, config.focal_gamma, config.label_smoothing
    )


def initial_model(
    config: TrainConfig,
    info: DatasetInfo,
    start: StartPoint | None,
    fresh: bool,
    say: Callable[[str], None],
) -> tuple[UNet, dict[str, Any]]:
    """The model the run starts from and what config.yaml records of its weights: an earlier
    seglab model's encoder and decoder (``start``), the encoder weights ``config.weights`` names
    (ImageNet, a state-dict file) or random initialisation. A resumed run (not ``fresh``)
    builds the bare model: its own last.pt is loaded into it."""
    weights, record = None, {"weights": config.weights}
    if fresh and start is None:
        weights, record = resolve_weights(config.weights, config.encoder, say)
    model = build_model(
        config.encoder,
        info.num_classes,
        info.in_channels,
        weights,
        full_res_skip=config.full_res_skip,
        input_norm=config.input_norm,
        input_stats=None if info.input_mean is None else (info.input_mean, info.input_std),
    )
    if start is not None:
        record = start_from(model, start, say)
    if fresh:
        record["weights_requested"] = config.weights
    return model, record


def open_train_data(config: TrainConfig, ctx: Dist, say: Callable[[str], None]) -> Data:
    """The run's data, checked clean: the dataset's own split, or train+val re-split by fold.
    The run's seed never changes its data (the synthetic scenes included): runs of several seeds
    differ in their initialisation and random draws only, and are scored on the same images."""
    fold = parse_fold(config.fold) if config.fold else None
    progress = config.progress and ctx.is_main
    data = open_data(config.data, progress=progress, fold=fold).require_clean(config.data, say)
    if config.in_channels is None:
        return data
    return data.with_bands(config.in_channels, f"--in-channels {config.in_channels}", config.data)


def configure(
    config: TrainConfig, data: Data, say: Callable[[str], None]
) -> tuple[TrainConfig, dict[str, Any]]:
    """``config`` with the options in ``config.auto`` chosen from the data's fingerprint (the
    choices printed with their reasons), and the record of it for config.yaml's resolved part:
    the fingerprint, the choices, and the fewest steps that can converge on this data."""
    fp = fingerprint(data)
    choices = choose_recipe(fp, config)
    if choices:
        for line in format_choices(fp, choices):
            say(line)
    config = apply_recipe(config, choices)
    return config, {
        "fingerprint": fp.to_dict(),
        "recipe": [c.to_dict() for c in choices],
        "minimum_steps": minimum_steps(fp, config.batch_size),
    }


def loss_class_weights(
    config: TrainConfig, data: Data, device: torch.device
) -> torch.Tensor | None:
    """The loss's per-class weights from the training split's statistics (None: unweighted)."""
    if config.class_weights == "none":
        return None
    weights = class_weights(config.class_weights, *data.train_statistics())
    return torch.tensor(weights, dtype=torch.float32, device=device)


def memory_format(channels_last: bool) -> torch.memory_format:
    return torch.channels_last if channels_last else torch.contiguous_format


def make_loaders(config: TrainConfig, data, ctx: Dist, device: torch.device):
    """The augmented, shuffled training loader and the validation loader (this process's
    share of every global batch under DDP)."""
    augment = train_transform(
        config.crop_size, config.scale, config.hflip, config.color_jitter, config.class_crop
    )
    common = dict(
        seed=config.seed,
        ignore_index=data.info.ignore_index,
        workers=config.workers,
        rank=ctx.rank,
        world_size=ctx.world_size,
        pin_memory=device.type == "cuda",
    )
    weights = None
    if config.class_sampling > 0:
        shares = class_balanced_weights(data.image_class_pixels("train"), config.class_sampling)
        weights = torch.from_numpy(shares)
    train_split = data.split("train", augment)
    train = make_loader(train_split, config.batch_size, train=True, weights=weights, **common)
    return train, make_loader(data.split("val"), config.batch_size, train=False, **common)


def wrap_for_training(
    model: UNet, config: TrainConfig, ctx: Dist, device: torch.device
) -> torch.nn.Module:
    """The model as the loop runs it: one DDP replica per process (gradients averaged across
    them), then torch.compile'd when asked."""
    wrapped: torch.nn.Module = model
    if ctx.enabled:
        if config.sync_bn:
            wrapped = torch.nn.SyncBatchNorm.convert_sync_batchnorm(wrapped)
        wrapped = DistributedDataParallel(
            wrapped,
            device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=config.freeze_encoder_epochs > 0,  # a frozen encoder
        )
    return torch.compile(wrapped) if config.compile else wrapped


def train_step(s: Session, batches, clock: Clock, reserve: float) -> tuple[float, bool]:
    """One optimizer step over ``accumulate`` micro-batches; returns the loss (the same on every
    process) and whether the time budget is used up (the same verdict on every process)."""
    began = time.perf_counter()
    step_loss = torch.zeros((), device=s.device)
    unwrapped = getattr(s.train_model, "_orig_mod", s.train_model)  # under torch.compile
    ddp = unwrapped if isinstance(unwrapped, DistributedDataParallel) else None
    for micro in range(s.config.accumulate):
        images, masks = next(batches)
        images = images.to(s.device, non_blocking=True)
        masks = masks.to(s.device, non_blocking=True)
        if s.config.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        # DDP all-reduces gradients only after the last micro-batch of a step
        sync = ddp is None or micro == s.config.accumulate - 1
        with (
            contextlib.nullcontext() if sync else ddp.no_sync(),
            autocast(s.device.type, s.precision.autocast_dtype),
        ):
            loss = s.criterion(s.train_model(images), masks) / s.config.accumulate
        s.scaler.scale(loss).backward()
        step_loss += loss.detach()
    if s.config.clip_grad:
        s.scaler.unscale_(s.optimizer)
        torch.nn.utils.clip_grad_norm_(s.model.parameters(), s.config.clip_grad)
    s.scaler.step(s.optimizer)
    s.scaler.update()
    s.optimizer.zero_grad(set_to_none=True)
    if s.ema is not None:
        s.ema.update_parameters(s.model)
    # One all-reduce carries the loss and the time-budget verdict, so every process logs the
    # same loss and stops at the same step.
    # Training stops when one more step would leave no time for the last validation and save.
    next_step = time.perf_counter() - began
    verdict = torch.tensor(float(clock.time_up(reserve + next_step)), device=s.device)
    shared = all_reduce_sum(torch.stack([step_loss.float(), verdict]), s.ctx)
    return shared[0].item() / s.ctx.world_size, bool(shared[1] > 0)


def validate_and_save(
    s: Session,
    state: TrainingState,
    clock: Clock,
    train_loss: float,
    lr: float,
    log: RunLog | None,
) -> float:
    """Validate (fp32, as `seglab evaluate` does, so the stored metrics are what it reproduces),
    log, and keep best.pt; returns the seconds it took."""
    began = time.perf_counter()
    segmenter = TorchSegmenter(
        s.evaluated_model, s.info, device=s.device, channels_last=s.config.channels_last
    )
    progress = s.config.progress and s.ctx.is_main
    metrics = evaluate(segmenter, s.val_loader, progress=progress, dist=s.ctx).metrics
    s.say(
        f"epoch {state.epoch}: train loss {train_loss:.4f}, val mIoU {100 * metrics['miou']:.2f}, "
        f"pixel accuracy {100 * metrics['pixel_accuracy']:.2f} ({clock.elapsed():.0f}s elapsed)"
    )
    if metrics["miou"] > state.best_miou:
        state.best_miou, state.best_metrics = metrics["miou"], metrics
        if s.ctx.is_main:
            checkpoint(s, state, metrics).save(s.out / "best.pt")
    if log:
        log.validation(state, train_loss, metrics, lr, clock.elapsed())
    return time.perf_counter() - began


def checkpoint(s: Session, state: TrainingState, metrics: dict, training: bool = False):
    """The current model as a checkpoint; with ``training``, the state to resume from."""
    resume_state = None
    if training:
        resume_state = dataclasses.replace(
            state,
            optimizer=s.optimizer.state_dict(),
            scaler=s.scaler.state_dict(),
            rng={
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                "python": random.getstate(),
            },
            trained_weights=s.model.state_dict() if s.ema is not None else {},
            ema_updates=int(s.ema.n_averaged) if s.ema is not None else 0,
        )
    return Checkpoint(
        s.model.spec,
        s.evaluated_model.state_dict(),
        s.info,
        s.config,
        metrics,
        state.epoch,
        state.step,
        s.resolved,
        resume_state,
    )


class Clock:
    """The run's time: elapsed seconds since it started (across resumes), and the budget."""

    def __init__(self, start: float, budget: float | None):
        self.start, self.budget = start, budget

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def time_up(self, reserve: float) -> bool:
        """Whether training must stop now so that ``reserve`` seconds (the last validation and
        save) still fit the budget."""
        return bool(self.budget) and self.elapsed() + reserve >= self.budget

    def progress(self, step: int, total_steps: int, reserve: float = 0.0) -> float:
        """Fraction of training done: by steps, or by time when a time budget is set. The time
        for training is the budget less ``reserve`` (kept back for the last validation and
        save), so the learning rate has decayed when training stops."""
        done = step / total_steps
        if not self.budget:
            return done
        return max(done, self.elapsed() / max(self.budget - reserve, 1e-9))


def estimate_validation_seconds(s: Session) -> float:
    """Seconds a validation and the checkpoint saves will take, from one timed batch: what the
    time budget keeps back for the end. Zero without a budget. The batch is timed on its second
    pass: the first pays one-off costs (cuDNN's algorithm choice, oneDNN's kernel set-up, the
    allocator's first blocks) that once multiplied by the number of batches kept back minutes a
    short run could have trained (seen on an H100: 1.8 of 4.4 minutes)."""
    if not s.config.time_budget or len(s.val_loader) == 0:
        return 0.0
    images = next(iter(s.val_loader))[0].to(s.device)

    def run() -> None:
        s.model(images)
        synchronize(s.device)

    with torch.inference_mode():
        s.model.eval()
        (per_batch,) = time_it(run, repeats=1, warmup=1)
    parameters_mb = sum(p.numel() for p in s.model.parameters()) * 4 / 1e6
    return per_batch * len(s.val_loader) + 2 * parameters_mb / 200  # two saves at ~200 MB/s


def diverged(s: Session, loss: float, epoch: int, step: int) -> SeglabError:
    last = s.out / "last.pt"
    kept = (
        f"the last good checkpoint is {last}" if last.is_file() else "no checkpoint was written yet"
    )
    return SeglabError(
        f"training diverged: loss is {loss} at epoch {epoch}, step {step}; {kept}; "
        "lower the learning rate"
    )


# --- resume -----------------------------------------------------------------------------------


def resume_config(run_dir: str | Path, changes: dict[str, Any]) -> TrainConfig:
    """The configuration of the run in ``run_dir`` with ``changes`` (flags given with --resume,
    None = not given). Only its length (epochs, iterations, time budget) and how data is loaded
    may change; anything else is refused with one line naming the options."""
    run_dir = Path(run_dir)
    path = run_dir / "config.yaml"
    if not path.is_file():
        raise SeglabError(f"cannot resume {run_dir}: no config.yaml (is it a seglab run folder?)")
    if not (run_dir / "last.pt").is_file():  # said at once, before any start-up work
        raise SeglabError(
            f"cannot resume {run_dir}: it has no last.pt (the run stopped before its first "
            f"checkpoint); start it again with another --out, or after removing {run_dir}"
        )
    stored, resolved, extensions = read_run_record(path)
    current = _extended(stored, extensions)
    given = {k: v for k, v in changes.items() if v is not None}
    if given.get("epochs") is not None and given.get("iterations") is not None:
        raise SeglabError(
            f"cannot resume {run_dir} with both --epochs and --iterations: give the one that "
            "sets its new length"
        )
    if given.get("epochs") is not None:  # the length asked for sets it, not an older iterations
        given["iterations"] = None
    candidate = TrainConfig.from_dict({**current.to_dict(), **given}, "command line")
    if "data" in given:  # the same data from its new place is no change; other data is refused
        candidate = dataclasses.replace(
            candidate, data=moved_data(run_dir, candidate.data, current, resolved)
        )
    refused = [
        k
        for k in given
        if k not in SCHEDULE_OPTIONS + MACHINE_OPTIONS + ("out", "data")
        and getattr(candidate, k) != getattr(current, k)
    ]
    if refused:
        was = ", ".join(f"{k} {format_value(getattr(current, k))}" for k in refused)
        flags = ", ".join(f"--{k.replace('_', '-')}" for k in refused)
        raise SeglabError(
            f"cannot change {flags} when resuming {run_dir} (the run uses {was}); only "
            "--epochs, --iterations, --time-budget, --workers and --threads may change; start "
            "a new run "
            "with another --out instead"
        )
    return dataclasses.replace(candidate, out=str(run_dir))


def moved_data(run_dir: Path, data: str, current: TrainConfig, resolved: dict[str, Any]) -> str:
    """``data`` (given with --resume) resolved, when it holds the very files the run recorded:
    the run's data in a new place. Anything else is refused in one line."""
    data = resolve_data(data)
    if data == current.data:
        return data
    record = resolved.get(RECORD_KEY)
    if record is None or not Path(data).exists() or data_files(data) != record:
        raise SeglabError(
            f"cannot change --data when resuming {run_dir} (the run uses {current.data}); only "
            "the same files in a new place are accepted; start a new run with another --out "
            "instead"
        )
    return data


def check_resume(run_dir: Path, config: TrainConfig) -> Checkpoint:
    """The run's last.pt, loaded and checked with everything else a resume needs, before any
    model is built or data read: its training state, a length that leaves steps to run, and
    its data, still where and what it was."""
    saved = Checkpoint.load(run_dir / "last.pt")
    state = saved.training
    if state is None:
        raise SeglabError(f"{run_dir / 'last.pt'} holds no training state to resume from")
    stored, resolved, extensions = read_run_record(run_dir / "config.yaml")
    current = _extended(stored, extensions)
    refusal = schedule_refusal(run_dir, config, current, state)
    if refusal:
        raise SeglabError(refusal)
    record = resolved.get(RECORD_KEY) if config.data == current.data else None
    fix = "put it back, or give --data with its new place"
    check_recorded_data(config.data, record, "the run", fix, f"cannot resume {run_dir}: ")
    return saved


def schedule_refusal(
    run_dir: Path, config: TrainConfig, current: TrainConfig, state: TrainingState
) -> str | None:
    """Why the run cannot continue as ``config`` plans it (None when it can): it has already
    run the steps, epochs or time planned. --iterations and --epochs given with --resume are
    the run's new total length, so one not above what it has done extends nothing."""
    budget = config.time_budget
    if budget and state.elapsed >= budget:
        if config.time_budget != current.time_budget:
            return (
                f"cannot extend {run_dir} to --time-budget {format_value(budget)}: it has run "
                f"{state.elapsed / 60:.1f} min already (the budget is its new total); give more"
            )
        return _complete(run_dir, state)
    if config.fills_budget:
        return None
    if config.iterations is not None:
        if state.step < config.iterations:
            return None
        if config.iterations != current.iterations:
            return (
                f"cannot extend {run_dir} to --iterations {config.iterations}: it has run "
                f"{state.step} steps already (--iterations is the run's new total, not steps "
                f"to add); give more than {state.step}"
            )
        return _complete(run_dir, state)
    epochs = config.epochs or DEFAULT_EPOCHS
    if state.epoch < epochs:
        return None
    if config.epochs != current.epochs or current.iterations is not None:
        return (
            f"cannot extend {run_dir} to --epochs {epochs}: it has run {state.epoch} epochs "
            f"already (--epochs is the run's new total, not epochs to add); give more than "
            f"{state.epoch}"
        )
    return _complete(run_dir, state)


def _complete(run_dir: Path, state: TrainingState) -> str:
    return (
        f"{run_dir} is complete ({state.step} steps, {state.elapsed / 60:.1f} min); extend it "
        "with a larger --epochs, --iterations or --time-budget (the run's new total)"
    )


def _extended(config: TrainConfig, extensions: list[dict[str, Any]]) -> TrainConfig:
    """The configuration as the run now uses it: the original with its extensions applied."""
    for extension in extensions:
        changes = {k: new for k, (_, new) in extension.get("changes", {}).items()}
        config = dataclasses.replace(config, **changes)
    return config


def best_on_disk(s: Session, best: Path, state: TrainingState) -> TrainingState:
    """``state`` knowing ``best``'s validation: a run stopped between saving best.pt and last.pt
    has a best.pt that last.pt's record does not know of, and a later, worse validation would
    otherwise replace it."""
    metrics = Checkpoint.load(best).metrics if best.exists() else None
    if not metrics or metrics.get("miou", -1.0) <= state.best_miou:
        return state
    s.say(
        f"{best} (val mIoU {100 * metrics['miou']:.2f}) was saved after last.pt: it stays the "
        "best until a validation beats it"
    )
    return dataclasses.replace(state, best_miou=metrics["miou"], best_metrics=metrics)


def restore(
    s: Session, run_dir: Path, saved: Checkpoint
) -> tuple[TrainingState, TrainConfig, list[dict[str, Any]]]:
    """The run's last.pt (``saved``, checked by check_resume) loaded into the model, optimizer,
    scaler and random-number generators; returns its training state, its original
    configuration and its extensions, with this resume's one appended."""
    stored, resolved, extensions = read_run_record(run_dir / "config.yaml")
    assert saved.training is not None  # check_resume refused a last.pt without it
    state = best_on_disk(s, run_dir / "best.pt", saved.training)
    budget = s.config.time_budget
    if state.step >= s.total_steps or (budget and state.elapsed >= budget):
        raise SeglabError(
            f"{run_dir} is complete ({state.step} steps, {state.elapsed / 60:.1f} min); extend it "
            "with a larger --epochs, --iterations or --time-budget"
        )
    if s.ema is not None:  # the average is the checkpoint's model; the trained weights beside it
        s.ema.module.load_state_dict(saved.state_dict)
        s.ema.n_averaged.fill_(state.ema_updates)
        s.model.load_state_dict(state.trained_weights)
    else:
        s.model.load_state_dict(saved.state_dict)
    s.optimizer.load_state_dict(state.optimizer)
    s.scaler.load_state_dict(state.scaler)
    torch.set_rng_state(state.rng["torch"])
    if state.rng["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state.rng["cuda"])
    random.setstate(state.rng["python"])
    current = _extended(stored, extensions)
    changes = {  # the data too, when the same files were found in a new place
        k: [getattr(current, k), getattr(s.config, k)]
        for k in (*SCHEDULE_OPTIONS, "data")
        if getattr(current, k) != getattr(s.config, k)
    }
    if changes:
        extensions.append(
            {
                "at_step": state.step,
                "at_epoch": state.epoch,
                "changes": changes,
                "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            }
        )
    s.resolved = resolved
    s.say(f"resuming {run_dir} at epoch {state.epoch}, step {state.step}")
    return state, stored, extensions


# --- what the run says and writes ------------------------------------------------------------


def announce(s: Session) -> None:
    c, ctx = s.config, s.ctx
    if s.fills_budget:
        length = f"as many steps of {s.global_batch} images as fit the {_minutes(c)} budget"
    else:
        budget = f", or until the {_minutes(c)} budget ends" if c.time_budget else ""
        length = (
            f"up to {s.total_steps} steps of {s.global_batch} images ({s.epochs} epochs){budget}"
        )
    fold = f" (fold {c.fold} of train+val)" if c.fold else ""
    s.say(
        f"training {c.encoder} U-Net ({s.resolved['weights_source']}) on {s.info.name}{fold}: "
        f"{len(s.train_loader.dataset)} train / {len(s.val_loader.dataset)} val images, "
        f"{s.info.num_classes} classes; {length}; run folder {s.out}"
    )
    s.say(
        f"device {s.device}{f' x {ctx.world_size} processes' if ctx.enabled else ''}; precision "
        f"{s.precision.name} ({s.precision.reason}); channels_last {c.channels_last}; "
        f"compile {c.compile}; {s.threads.reason}; loss {c.loss}, class weights {c.class_weights}"
        + (f"; class-balanced sampling {c.class_sampling:g}" if c.class_sampling else "")
        + (f"; class-aware crops {c.class_crop:g}" if c.class_crop else "")
        + ("; each image normalised by its own mean and std" if c.input_norm == "image" else "")
    )
    warning = planned_shortfall(s)
    if warning:
        s.say(warning)


def planned_shortfall(s: Session) -> str | None:
    """A warning at the start when the planned steps are fewer than the data needs (the
    fingerprint's minimum): the user learns it before the run, not after."""
    minimum = s.resolved.get("minimum_steps")
    if s.fills_budget or not minimum or s.total_steps >= minimum:
        return None
    return (
        f"warning: {s.total_steps} planned steps are fewer than the {minimum} this data needs "
        f"to converge: expect an undertrained model; train longer (--iterations {minimum}, or "
        "a --time-budget alone, which fills it)"
    )


def budget_shortfall(
    s: Session, step: int, seconds_per_step: float, clock: Clock, reserve: float
) -> str | None:
    """A warning a few steps in when the time budget cannot fit the steps the data needs at
    the speed measured so far; None when it can, or when no budget or minimum is set."""
    minimum = s.resolved.get("minimum_steps")
    budget = s.config.time_budget
    if not budget or not minimum or step >= minimum:
        return None
    left = budget - clock.elapsed() - reserve
    fits = step + max(left, 0.0) / seconds_per_step
    if fits >= min(minimum, s.total_steps):
        return None
    needed = clock.elapsed() + reserve + (minimum - step) * seconds_per_step
    return (
        f"warning: at {seconds_per_step:.2g} s a step, the {_minutes(s.config)} budget fits "
        f"about {fits:.0f} steps, fewer than the {minimum} this data needs: expect an "
        f"undertrained model; about --time-budget {math.ceil(needed / 60)}m would fit them"
    )


def _minutes(config: TrainConfig) -> str:
    return f"{config.time_budget / 60:.1f} min"


def format_summary(s: Session, state: TrainingState, seconds: float) -> str:
    budget = f" of the {_minutes(s.config)} budget" if s.config.time_budget else ""
    if s.fills_budget:
        ran = f"ran {state.step} steps ({state.epoch} epochs) in {seconds / 60:.1f} min{budget}"
    else:
        ran = (
            f"ran {state.step} of {s.total_steps} planned steps ({state.epoch} of {s.epochs} "
            f"epochs) in {seconds / 60:.1f} min{budget}"
        )
    if not state.best_metrics:
        return f"{ran}; no validation ran; checkpoint: {s.out / 'last.pt'}"
    lines = [ran, "best validation:", format_metrics(state.best_metrics)]
    if state.best_metrics.get("undertrained"):
        lines.append(undertrained_warning(state.best_metrics["undertrained"], state.best_metrics))
    if s.resolved.get("weights_requested") == "auto" and s.config.weights == "none":
        lines.append(
            "note: trained from scratch: ImageNet weights were asked for (--weights auto) but are "
            "not on this machine, so this is not a transfer-learning result"
        )
    lines.append(f"checkpoints: {s.out / 'best.pt'}, {s.out / 'last.pt'}")
    return "\n".join(lines)


def judge_convergence(s: Session, state: TrainingState) -> None:
    """Whether the run could have converged (its validation curve flat at the end, at least the
    fingerprint's fewest steps), recorded as "undertrained" (a reason, or None) in the best
    metrics, best.pt's record included."""
    if not state.best_metrics:
        return
    curve = read_curve(s.out / "metrics.csv")
    reason = undertrained(state.step, curve, s.resolved.get("minimum_steps"))
    state.best_metrics = {**state.best_metrics, "undertrained": reason}
    best = s.out / "best.pt"
    if best.is_file():
        saved = Checkpoint.load(best)
        dataclasses.replace(saved, metrics=state.best_metrics).save(best)


def read_curve(path: Path) -> list[tuple[int, float]]:
    """(step, validation mIoU) of each row of a run's metrics.csv."""
    with open(path, newline="") as f:
        return [(int(row["step"]), float(row["val_miou"])) for row in csv.DictReader(f)]


class RunLog:
    """metrics.csv, a row per validation flushed at once (a killed run keeps its history), and
    TensorBoard events when the tensorboard package is installed. A resumed run (``resumed_at``
    its last.pt's step) first drops the rows written after that step (by a run killed between
    a validation and its last.pt): each validation stays one row through kills and resumes."""

    def __init__(self, out: Path, resumed_at: int | None, say: Callable[[str], None]):
        self.path = path = out / "metrics.csv"
        # a run killed before its first validation may leave an empty file: it gets its header
        exists = resumed_at is not None and path.is_file() and path.stat().st_size > 0
        if exists:
            kept_rows(path, resumed_at, say)
        try:
            self.file = open(path, "a" if exists else "w", newline="")  # noqa: SIM115
            self.csv = csv.writer(self.file)
            if not exists:
                self.csv.writerow(CSV_FIELDS)
                self.file.flush()  # on disk before the first validation, as every row
        except OSError as err:
            raise WriteError(f"cannot write {path}: {err.strerror or first_line(err)}") from None
        try:
            from torch.utils.tensorboard import SummaryWriter  # optional: needs tensorboard
        except ImportError:  # tensorboard is optional
            self.board = None
        else:
            self.board = SummaryWriter(str(out / "tensorboard"))

    def step(self, step: int, loss: float, lr: float) -> None:
        if self.board:
            self.board.add_scalar("train/loss", loss, step)
            self.board.add_scalar("train/lr", lr, step)

    def validation(
        self, state: TrainingState, loss: float, metrics: dict, lr: float, seconds: float
    ) -> None:
        miou, accuracy = metrics["miou"], metrics["pixel_accuracy"]
        row = [state.epoch, state.step, f"{loss:.5f}", f"{miou:.5f}", f"{accuracy:.5f}"]
        try:  # a partial row (a full disk) is dropped when the run resumes
            self.csv.writerow([*row, f"{lr:.4g}", f"{seconds:.1f}"])
            self.file.flush()
        except OSError as err:
            raise WriteError(
                f"cannot write {self.path}: {err.strerror or first_line(err)}"
            ) from None
        if self.board:
            self.board.add_scalar("val/miou", miou, state.step)

    def close(self) -> None:
        with contextlib.suppress(OSError):  # a full disk was said where it was met
            self.file.close()
        if self.board:
            self.board.close()


def kept_rows(path: Path, step: int, say: Callable[[str], None]) -> None:
    """metrics.csv without its rows after ``step`` (the checkpoint a run resumes from) and
    without a partial last row: rewritten atomically, with one line when rows were dropped."""
    text = path.read_text()
    lines = text.splitlines(keepends=True)
    if not lines:
        return
    header, kept, dropped = lines[0], [], 0
    for line in lines[1:]:
        row = next(csv.reader([line]), [])
        if len(row) == len(CSV_FIELDS) and line.endswith("\n") and _step(row) <= step:
            kept.append(line)
        else:
            dropped += 1
    if not dropped and text.endswith("\n"):
        return
    header = header if header.endswith("\n") else header + "\n"
    write_text_atomic(path, header + "".join(kept))
    if dropped:
        say(
            f"metrics.csv: dropped {dropped} row(s) written after step {step}, where the run "
            "resumes (it was stopped before they were saved in last.pt)"
        )


def _step(row: list[str]) -> float:
    try:
        return int(row[1])
    except ValueError:
        return math.inf


def resolve_weights(weights: str, encoder: str, say=print) -> tuple[str | None, dict[str, Any]]:
    """The ``encoder_weights`` for build_model, and what to record of them. ``auto`` means
    ImageNet weights when this machine has them or can download them, and random
    initialisation, said out loud, when it cannot. (A seglab checkpoint is not encoder weights:
    engine/finetune.py starts the whole model from it.)"""
    spec = get_encoder_spec(encoder)
    if weights == "none":
        return None, {"weights": "none", "weights_source": "random initialisation"}
    if weights not in ("auto", "imagenet"):
        if not Path(weights).is_file():
            raise SeglabError(f"weights: file {weights} does not exist")
        return weights, {"weights": weights, "weights_source": f"weights from {weights}"}
    try:
        path = fetch_imagenet_weights(spec)
    except SeglabError:
        if weights == "imagenet":
            raise
        say(
            f"note: ImageNet weights for {encoder} ({spec.weights_file}) are not available here; "
            "training from random initialisation (use --weights imagenet to require them)"
        )
        return None, {
            "weights": "none",
            "weights_source": "random initialisation (auto: ImageNet weights not available)",
        }
    return "imagenet", {"weights": "imagenet", "weights_source": f"ImageNet weights {path}"}
