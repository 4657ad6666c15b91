"""The training loop: data, model, optimizer, then epochs of training and validation, read top
to bottom. Writes config.json, metrics.csv, last.pt and best.pt (by validation mIoU)."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from seglab.config import TrainConfig
from seglab.data.dataset import open_data, pad_collate
from seglab.data.stats import class_weights
from seglab.data.transforms import train_transform
from seglab.engine.checkpoint import save_checkpoint
from seglab.engine.evaluate import evaluate
from seglab.errors import SeglabError
from seglab.models.encoders import get_encoder_spec
from seglab.models.unet import UNet, build_model
from seglab.models.weights import fetch_imagenet_weights


def train(config: TrainConfig) -> dict:
    """Train a U-Net as ``config`` says; returns the best validation metrics."""
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(config.to_dict(), indent=2))
    torch.manual_seed(config.seed)
    device = pick_device(config.device)
    say = tqdm.write

    # Data: checked before anything trains on it
    data = open_data(config.data, seed=config.seed, progress=config.progress)
    if data.problems:
        for problem in data.problems:
            say(problem)
        raise SeglabError(
            f"{config.data}: {len(data.problems)} problem(s) in the data, listed above; "
            "fix them (see 'seglab data check') before training"
        )
    info = data.info
    augment = train_transform(config.crop_size, config.scale, config.hflip, config.color_jitter)
    train_set, val_set = data.split("train", augment), data.split("val")
    loader_args = {
        "batch_size": config.batch_size,
        "num_workers": config.workers,
        "pin_memory": device.type == "cuda",
        "persistent_workers": config.workers > 0,
        "collate_fn": pad_collate(info.ignore_index),
    }
    generator = torch.Generator().manual_seed(config.seed)
    train_loader = DataLoader(
        train_set, shuffle=True, drop_last=True, generator=generator, **loader_args
    )
    val_loader = DataLoader(val_set, shuffle=False, **loader_args)
    if len(train_loader) == 0:
        raise SeglabError(f"{config.data}: {len(train_set)} training images, fewer than one batch")
    weights_per_class = class_weights(config.class_weights, *data.train_statistics())
    loss_weight = None
    if weights_per_class is not None:
        loss_weight = torch.tensor(weights_per_class, dtype=torch.float32, device=device)
        say(
            f"class weights ({config.class_weights}): "
            + ", ".join(f"{n} {w:.2f}" for n, w in zip(info.classes, weights_per_class))
        )

    # Model and optimizer
    weights = resolve_weights(config.weights, config.encoder, say)
    model = build_model(config.encoder, info.num_classes, info.in_channels, weights).to(device)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    total_steps = config.epochs * len(train_loader)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: (1 - s / total_steps) ** 0.9)
    say(
        f"training {config.encoder} U-Net ({weights or 'random'} encoder weights) on "
        f"{info.name}: {len(train_set)} train / {len(val_set)} val images, {info.num_classes} "
        f"classes, {config.epochs} epochs, device {device}"
    )

    # The loop
    best_miou, best_metrics = -1.0, {}
    log_path = out / "metrics.csv"
    with open(log_path, "w", newline="") as log:
        writer = csv.writer(log)
        writer.writerow(["epoch", "train_loss", "val_miou", "val_pixel_accuracy", "lr", "seconds"])
        for epoch in range(1, config.epochs + 1):
            start = time.perf_counter()
            loss = train_one_epoch(
                model,
                train_loader,
                optimizer,
                schedule,
                info.ignore_index,
                loss_weight,
                device,
                f"epoch {epoch}/{config.epochs}",
                config.progress,
            )
            metrics = evaluate(model, val_loader, info, device, progress=config.progress)
            seconds = time.perf_counter() - start
            writer.writerow(
                [
                    epoch,
                    f"{loss:.5f}",
                    f"{metrics['miou']:.5f}",
                    f"{metrics['pixel_accuracy']:.5f}",
                    f"{schedule.get_last_lr()[0]:.3g}",
                    f"{seconds:.1f}",
                ]
            )
            log.flush()
            say(
                f"epoch {epoch}: train loss {loss:.4f}, val mIoU {metrics['miou']:.4f}, "
                f"pixel accuracy {metrics['pixel_accuracy']:.4f} ({seconds:.0f}s)"
            )
            state = {"epoch": epoch, "encoder_weights": weights}
            save_checkpoint(out / "last.pt", model, info, config.to_dict(), metrics, **state)
            if metrics["miou"] > best_miou:
                best_miou, best_metrics = metrics["miou"], metrics
                save_checkpoint(out / "best.pt", model, info, config.to_dict(), metrics, **state)
    (out / "metrics.json").write_text(json.dumps(best_metrics, indent=2))
    say(format_summary(best_metrics, out))
    return best_metrics


def train_one_epoch(
    model: UNet,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
    ignore_index: int,
    loss_weight: torch.Tensor | None,
    device: torch.device,
    desc: str,
    progress: bool = True,
) -> float:
    """One pass over ``loader``; returns the mean training loss."""
    model.train()
    total, count = 0.0, 0
    bar = tqdm(loader, desc=desc, unit="batch", disable=not progress)
    for images, masks in bar:
        images, masks = images.to(device, non_blocking=True), masks.to(device, non_blocking=True)
        loss = F.cross_entropy(model(images), masks, weight=loss_weight, ignore_index=ignore_index)
        if not torch.isfinite(loss):
            raise SeglabError(
                f"training diverged: loss is {loss.item()} at {desc}; lower the learning rate"
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        total, count = total + loss.item(), count + 1
        bar.set_postfix(loss=f"{total / count:.4f}", lr=f"{schedule.get_last_lr()[0]:.2e}")
    return total / max(count, 1)


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


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SeglabError(f"device {name!r} requested but CUDA is not available on this machine")
    return torch.device(name)


def format_summary(metrics: dict, out: Path) -> str:
    lines = [f"best val mIoU {metrics['miou']:.4f}  pixel accuracy {metrics['pixel_accuracy']:.4f}"]
    for name, scores in metrics["per_class"].items():
        iou = "absent" if scores["iou"] is None else f"{scores['iou']:.4f}"
        lines.append(f"  {name:<16} IoU {iou}")
    if metrics["absent_classes"]:
        lines.append(
            f"  (absent from truth and prediction, excluded from mIoU: "
            f"{', '.join(metrics['absent_classes'])})"
        )
    lines.append(f"checkpoints: {out / 'best.pt'}, {out / 'last.pt'}")
    return "\n".join(lines)
