"""The training loop, read top to bottom: configuration, data, model, optimizer, then steps with
periodic validation and checkpoints. DDP, mixed precision and exact resume are a few marked lines.

A run folder holds config.yaml (the resolved configuration), metrics.csv (a row per validation),
metrics.json (the best validation's metrics), best.pt (by validation mIoU) and last.pt (with the
optimizer and RNG state, for --resume).
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import random
import time
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from seglab.config import TrainConfig, load_config, save_config
from seglab.data.dataset import open_data
from seglab.data.loading import make_loader
from seglab.data.stats import class_weights
from seglab.data.transforms import train_transform
from seglab.engine.checkpoint import load_checkpoint, save_checkpoint
from seglab.engine.distributed import Dist, all_reduce_sum, init_distributed, shutdown
from seglab.engine.evaluate import evaluate
from seglab.engine.losses import build_loss
from seglab.engine.optim import build_optimizer, lr_factor, set_lr
from seglab.engine.performance import choose_precision, configure_backends, pick_device
from seglab.errors import SeglabError
from seglab.models.encoders import get_encoder_spec
from seglab.models.unet import build_model
from seglab.models.weights import fetch_imagenet_weights

CSV_FIELDS = ["epoch", "step", "train_loss", "val_miou", "val_pixel_accuracy", "lr", "seconds"]


def train(config: TrainConfig, resume: str | Path | None = None) -> dict:
    """Train as ``config`` says (or continue the run in ``resume``); returns the best metrics."""
    ctx = init_distributed(config.device)
    try:
        return _train(config, ctx, resume)
    finally:
        shutdown(ctx)


def resume_config(run_dir: str | Path, overrides: dict) -> TrainConfig:
    """The configuration a run was started with, with ``overrides`` (e.g. more epochs)."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise SeglabError(f"cannot resume {run_dir}: no config.yaml (is it a seglab run folder?)")
    return load_config(path, {**overrides, "out": str(run_dir)})


def _train(config: TrainConfig, ctx: Dist, resume: str | Path | None) -> dict:
    out = Path(config.out)
    say = tqdm.write if ctx.is_main else (lambda *_: None)
    device = pick_device(config.device, ctx.local_rank)
    configure_backends(device)
    precision = choose_precision(device, config.precision)
    torch.manual_seed(config.seed + ctx.rank)
    random.seed(config.seed + ctx.rank)

    # Data: checked before anything trains on it
    data = open_data(config.data, seed=config.seed, progress=config.progress and ctx.is_main)
    data.require_clean(config.data, say)
    info = data.info
    augment = train_transform(config.crop_size, config.scale, config.hflip, config.color_jitter)
    loader_args = {
        "seed": config.seed,
        "ignore_index": info.ignore_index,
        "workers": config.workers,
        "rank": ctx.rank,
        "world_size": ctx.world_size,
        "pin_memory": device.type == "cuda",
    }
    train_loader = make_loader(
        data.split("train", augment), config.batch_size, train=True, **loader_args
    )
    val_loader = make_loader(data.split("val"), config.batch_size, train=False, **loader_args)
    steps_per_epoch = len(train_loader) // config.accumulate
    global_batch = config.batch_size * config.accumulate * ctx.world_size
    if steps_per_epoch == 0:
        raise SeglabError(
            f"{config.data}: {len(train_loader.dataset)} training images, fewer than one step of "
            f"{global_batch}"
        )
    total_steps = config.iterations or config.epochs * steps_per_epoch
    epochs = math.ceil(total_steps / steps_per_epoch)

    # Model, loss, optimizer
    weights = resolve_weights(config.weights, config.encoder, say)
    model = build_model(config.encoder, info.num_classes, info.in_channels, weights).to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    per_class = None
    if config.class_weights != "none":
        per_class = class_weights(config.class_weights, *data.train_statistics())
    loss_weight = (
        None if per_class is None else torch.tensor(per_class, dtype=torch.float32, device=device)
    )
    criterion = build_loss(config.loss, info.ignore_index, loss_weight, config.focal_gamma)
    optimizer = build_optimizer(model, config)
    scaler = torch.amp.GradScaler(device.type, enabled=precision.grad_scaler)

    # Resume: model, optimizer, scaler, RNG, position and elapsed time, exactly where it stopped
    state = {"step": 0, "epoch": 0, "elapsed": 0.0, "best_miou": -1.0, "best_metrics": {}}
    if resume is not None:
        state = restore(Path(resume) / "last.pt", model, optimizer, scaler)
        say(f"resuming {resume} at epoch {state['epoch']}, step {state['step']}")

    # Distributed: one model replica per process, gradients averaged across them
    train_model, ddp = model, None
    if ctx.enabled:
        if config.sync_bn:
            train_model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(train_model)
        train_model = DistributedDataParallel(
            train_model,
            device_ids=[device.index] if device.type == "cuda" else None,
            # a frozen encoder produces no gradients for DDP to wait for
            find_unused_parameters=config.freeze_encoder_epochs > 0,
        )
        ddp = train_model
    if config.compile:
        train_model = torch.compile(train_model)

    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
        save_config(config, out / "config.yaml")
    say(
        f"training {config.encoder} U-Net ({weights or 'random'} encoder weights) on {info.name}: "
        f"{len(train_loader.dataset)} train / {len(val_loader.dataset)} val images, "
        f"{info.num_classes} classes, {total_steps} steps of {global_batch} images "
        f"({epochs} epochs)" + (f" within {config.time_budget:.0f}s" if config.time_budget else "")
    )
    say(
        f"device {device}{f' x {ctx.world_size} processes' if ctx.enabled else ''}; precision "
        f"{precision.name} ({precision.reason}); channels_last {config.channels_last}; "
        f"compile {config.compile}; loss {config.loss}, class weights {config.class_weights}"
    )

    # The loop
    log = MetricsLog(out / "metrics.csv", append=resume is not None) if ctx.is_main else None
    writer = _tensorboard(out) if ctx.is_main else None
    start_time = time.perf_counter() - state["elapsed"]
    step, finished = state["step"], False
    for epoch in range(state["epoch"] + 1, epochs + 1):
        frozen = epoch <= config.freeze_encoder_epochs
        model.freeze_encoder() if frozen else model.unfreeze_encoder()
        train_model.train()
        train_loader.batch_sampler.set_epoch(epoch)
        epoch_start, loss_sum, loss_count, images_seen = time.perf_counter(), 0.0, 0, 0
        bar = tqdm(
            total=min(steps_per_epoch, total_steps - step),
            desc=f"epoch {epoch}/{epochs}",
            unit="step",
            disable=not (config.progress and ctx.is_main),
        )
        batches = iter(train_loader)
        for _ in range(min(steps_per_epoch, total_steps - step)):
            progress = _progress(
                step, total_steps, time.perf_counter() - start_time, config.time_budget
            )
            lr = set_lr(optimizer, lr_factor(config, step, progress))
            step_loss = torch.zeros((), device=device)
            for micro in range(config.accumulate):
                images, masks = next(batches)
                images = images.to(device, non_blocking=True)
                masks = masks.to(device, non_blocking=True)
                if config.channels_last:
                    images = images.contiguous(memory_format=torch.channels_last)
                # DDP all-reduces gradients only after the last micro-batch of a step
                sync = ddp is None or micro == config.accumulate - 1
                with (
                    contextlib.nullcontext() if sync else ddp.no_sync(),
                    torch.autocast(
                        device.type,
                        dtype=precision.autocast_dtype or torch.float32,
                        enabled=precision.autocast_dtype is not None,
                    ),
                ):
                    loss = criterion(train_model(images), masks) / config.accumulate
                scaler.scale(loss).backward()
                step_loss += loss.detach()
                images_seen += images.shape[0] * ctx.world_size
            if config.clip_grad:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            # One all-reduce carries the loss and the time-budget verdict, so every process
            # logs the same loss and stops at the same step.
            time_up = (
                bool(config.time_budget) and time.perf_counter() - start_time >= config.time_budget
            )
            shared = all_reduce_sum(
                torch.stack([step_loss.float(), torch.tensor(float(time_up), device=device)]), ctx
            )
            step_loss, time_up = shared[0] / ctx.world_size, bool(shared[1] > 0)
            if not torch.isfinite(step_loss):
                raise SeglabError(
                    f"training diverged: loss is {step_loss.item()} at epoch {epoch}, step {step}; "
                    f"the last good checkpoint is {out / 'last.pt'}; lower the learning rate"
                )
            loss_sum, loss_count = loss_sum + step_loss.item(), loss_count + 1
            rate = images_seen / (time.perf_counter() - epoch_start)
            bar.set_postfix(
                loss=f"{loss_sum / loss_count:.4f}", lr=f"{lr:.2e}", img_s=f"{rate:.1f}"
            )
            bar.update()
            if writer:
                writer.add_scalar("train/loss", step_loss.item(), step)
                writer.add_scalar("train/lr", lr, step)
            if time_up:
                finished = True
                break
        bar.close()
        finished = finished or step >= total_steps
        train_loss = loss_sum / max(loss_count, 1)

        if epoch % config.val_interval == 0 or finished:
            metrics = evaluate(
                model,
                val_loader,
                info,
                device,
                progress=config.progress and ctx.is_main,
                dist=ctx,
                autocast_dtype=precision.autocast_dtype,
                channels_last=config.channels_last,
            )
            elapsed = time.perf_counter() - start_time
            say(
                f"epoch {epoch}: train loss {train_loss:.4f}, val mIoU {metrics['miou']:.4f}, "
                f"pixel accuracy {metrics['pixel_accuracy']:.4f} ({elapsed:.0f}s elapsed)"
            )
            if metrics["miou"] > state["best_miou"]:
                state["best_miou"], state["best_metrics"] = metrics["miou"], metrics
                if ctx.is_main:
                    save_checkpoint(
                        out / "best.pt",
                        model,
                        info,
                        config.to_dict(),
                        metrics,
                        epoch=epoch,
                        step=step,
                        encoder_weights=weights,
                    )
            if log:
                log.write(
                    [
                        epoch,
                        step,
                        f"{train_loss:.5f}",
                        f"{metrics['miou']:.5f}",
                        f"{metrics['pixel_accuracy']:.5f}",
                        f"{lr:.4g}",
                        f"{elapsed:.1f}",
                    ]
                )
            if writer:
                writer.add_scalar("val/miou", metrics["miou"], step)
        if ctx.is_main:
            state.update(step=step, epoch=epoch, elapsed=time.perf_counter() - start_time)
            save_checkpoint(
                out / "last.pt",
                model,
                info,
                config.to_dict(),
                state["best_metrics"],
                epoch=epoch,
                step=step,
                encoder_weights=weights,
                training=training_state(optimizer, scaler, state),
            )
        if finished:
            break

    if ctx.is_main:
        (out / "metrics.json").write_text(json.dumps(state["best_metrics"], indent=2))
        say(format_summary(state["best_metrics"], out, time.perf_counter() - start_time))
    for closeable in (log, writer):
        if closeable:
            closeable.close()
    return state["best_metrics"]


def _progress(step: int, total_steps: int, elapsed: float, budget: float | None) -> float:
    """Fraction of training done: by steps, or by time when a time budget is set."""
    done = step / total_steps
    return max(done, elapsed / budget) if budget else done


def training_state(optimizer, scaler, state: dict) -> dict:
    return {
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict(),
        "step": state["step"],
        "epoch": state["epoch"],
        "elapsed": state["elapsed"],
        "best_miou": state["best_miou"],
        "best_metrics": state["best_metrics"],
        "rng": {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "python": random.getstate(),
        },
    }


def restore(path: Path, model, optimizer, scaler) -> dict:
    payload = load_checkpoint(path)
    if "training" not in payload:
        raise SeglabError(f"{path} holds no training state to resume from")
    training = payload["training"]
    model.load_state_dict(payload["state_dict"])
    optimizer.load_state_dict(training["optimizer"])
    scaler.load_state_dict(training["scaler"])
    torch.set_rng_state(training["rng"]["torch"])
    if training["rng"]["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(training["rng"]["cuda"])
    random.setstate(training["rng"]["python"])
    return {k: training[k] for k in ("step", "epoch", "elapsed", "best_miou", "best_metrics")}


class MetricsLog:
    """metrics.csv: one row per validation, flushed at once so a killed run keeps its history."""

    def __init__(self, path: Path, append: bool):
        exists = append and path.is_file()
        self.file = open(path, "a" if exists else "w", newline="")  # noqa: SIM115
        self.writer = csv.writer(self.file)
        if not exists:
            self.write(CSV_FIELDS)

    def write(self, row: list) -> None:
        self.writer.writerow(row)
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def _tensorboard(out: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        return None
    return SummaryWriter(str(out / "tensorboard"))


def resolve_weights(weights: str, encoder: str, say=print) -> str | None:
    """The ``encoder_weights`` for build_model. ``auto`` means ImageNet weights when this machine
    has them or can download them, and random initialisation, said out loud, when it cannot."""
    spec = get_encoder_spec(encoder)
    if weights == "none":
        return None
    if weights != "auto":
        return weights
    try:
        fetch_imagenet_weights(spec)
    except SeglabError:
        say(
            f"note: ImageNet weights for {encoder} ({spec.weights_file}) are not available here; "
            "training from random initialisation (use --weights imagenet to require them)"
        )
        return None
    return "imagenet"


def format_summary(metrics: dict, out: Path, seconds: float | None = None) -> str:
    if not metrics:
        return f"no validation ran; checkpoint: {out / 'last.pt'}"
    head = f"best val mIoU {metrics['miou']:.4f}  pixel accuracy {metrics['pixel_accuracy']:.4f}"
    if seconds is not None:
        head += f"  (training took {seconds / 60:.1f} min)"
    lines = [head]
    for name, scores in metrics["per_class"].items():
        iou = "absent" if scores["iou"] is None else f"{scores['iou']:.4f}"
        lines.append(f"  {name:<16} IoU {iou}")
    if metrics["absent_classes"]:
        lines.append(
            "  (absent from truth and prediction, excluded from mIoU: "
            f"{', '.join(metrics['absent_classes'])})"
        )
    lines.append(f"checkpoints: {out / 'best.pt'}, {out / 'last.pt'}")
    return "\n".join(lines)
