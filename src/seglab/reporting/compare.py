"""The founding study as one command: train (or take) several models on the same data, split,
seed and schedule, evaluate them on the same images, measure what each costs, and report."""

from __future__ import annotations

import csv
import dataclasses
import json
import platform
import statistics
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from seglab.config import TrainConfig
from seglab.data.dataset import open_data
from seglab.data.show import colorize
from seglab.deployment.benchmark import peak_inference_memory, time_it
from seglab.engine.checkpoint import load_checkpoint, load_model
from seglab.engine.inference import predict_probabilities
from seglab.engine.metrics import confusion_matrix, summarize
from seglab.engine.performance import choose_precision
from seglab.errors import SeglabError
from seglab.models.complexity import count_parameters, forward_gflops
from seglab.reporting import plots
from seglab.reporting.report import write_reports
from seglab.reporting.statistics import bootstrap_miou_difference


def compare(
    base: TrainConfig,
    encoders: list[str] | None = None,
    runs: list[str] | None = None,
    out: str | Path = "runs/compare",
    split: str = "val",
    examples: int = 6,
) -> dict:
    """Train one model per encoder (or take the finished ``runs``), then write DIR/report.html,
    DIR/report.md and DIR/results.json. Returns the results."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if runs is None:
        from seglab.engine.train import train

        runs = []
        for encoder in encoders or []:
            run_dir = out / "runs" / encoder
            tqdm.write(f"--- training {encoder} ---")
            train(dataclasses.replace(base, encoder=encoder, out=str(run_dir)))
            runs.append(str(run_dir))
    if len(runs) < 2:
        raise SeglabError("compare needs at least two models (--encoders A,B or --runs DIR DIR)")

    checkpoints = [_best_checkpoint(Path(r)) for r in runs]
    data_name = base.data if encoders else load_checkpoint(checkpoints[0])["config"]["data"]
    data = open_data(data_name, progress=False).require_clean(data_name)
    dataset = data.split(split)
    info = data.info

    models = []
    for run, checkpoint in zip(runs, checkpoints):
        models.append(_evaluate_run(Path(run), checkpoint, dataset, data, data_name))
    height, width = dataset.load(0)[0].shape[-2:]
    for m in models:
        m["cost"] = _cost(m.pop("model"), info.in_channels, (height, width), m["cost"])
        peak, baseline = peak_inference_memory(m["checkpoint"], (height, width))
        m["cost"].update(peak_memory_mb=peak, model_memory_mb=peak - baseline)

    reference = models[0]
    for m in models[1:]:
        m["versus_first"] = bootstrap_miou_difference(m.pop("confusions"), reference["confusions"])
    reference.pop("confusions")

    figures = {
        "per_class": plots.per_class_bars(models, list(info.classes), out / "per_class_iou.png"),
        "frontier": plots.accuracy_cost_frontier(models, out / "accuracy_vs_latency.png"),
        "curves": plots.training_curves(models, out / "training_curves.png"),
        "examples": _examples_grid(models, dataset, info, examples, out / "examples.png"),
    }
    for m in models:
        m.pop("predictions")
    from seglab import __version__

    results = {
        "seglab_version": __version__,
        "data": data_name,
        "split": split,
        "images": len(dataset),
        "eval_size": [int(height), int(width)],
        "classes": list(info.classes),
        "machine": _machine(),
        "models": models,
    }
    (out / "results.json").write_text(json.dumps(results, indent=2))
    write_reports(results, figures, out)
    return results


def _best_checkpoint(run: Path) -> Path:
    for name in ("best.pt", "last.pt"):
        if (run / name).is_file():
            return run / name
    raise SeglabError(f"{run}: no best.pt or last.pt (is it a finished seglab run?)")


@torch.inference_mode()
def _evaluate_run(run: Path, checkpoint: Path, dataset, data, data_name: str) -> dict:
    model, payload = load_model(checkpoint)
    data.require_classes(payload["dataset"]["classes"], str(checkpoint), data_name)
    info = data.info
    model = model.to(memory_format=torch.channels_last)
    confusions, predictions = [], []
    name = payload["model"]["encoder"]
    for i in tqdm(range(len(dataset)), desc=f"evaluate {name}", leave=False):
        image, mask = dataset[i]
        probs = predict_probabilities(
            model, image[None].contiguous(memory_format=torch.channels_last)
        )
        pred = probs.argmax(1)[0]
        confusions.append(confusion_matrix(pred, mask, info.num_classes, info.ignore_index).numpy())
        predictions.append(pred.numpy().astype(np.uint8))
    confusions = np.stack(confusions)
    training = payload.get("training") or load_checkpoint(run / "last.pt").get("training", {})
    return {
        "name": name,
        "run": str(run),
        "checkpoint": str(checkpoint),
        "metrics": summarize(torch.from_numpy(confusions.sum(0)), info.classes),
        "history": _history(run / "metrics.csv"),
        "cost": {"training_minutes": training.get("elapsed", float("nan")) / 60},
        "encoder_weights": payload.get("encoder_weights"),
        "schedule": _schedule(payload["config"]),
        "model": model,
        "confusions": confusions,
        "predictions": predictions,
    }


def _schedule(config: dict) -> str:
    budget = f", time budget {config['time_budget']:.0f}s" if config.get("time_budget") else ""
    steps = (
        f"{config['iterations']} steps"
        if config.get("iterations")
        else f"{config['epochs']} epochs"
    )
    crop = "x".join(map(str, config["crop_size"])) if config.get("crop_size") else "full images"
    return (
        f"{steps}{budget}, batch {config['batch_size']}, {config['optimizer']} lr {config['lr']:g} "
        f"{config['schedule']}, crops {crop}, loss {config['loss']}, "
        f"class weights {config['class_weights']}, seed {config['seed']}"
    )


def _history(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path) as f:
        return list(csv.DictReader(f))


def _cost(model, in_channels: int, size: tuple[int, int], cost: dict, repeats: int = 10) -> dict:
    """Parameters, GFLOPs at the evaluation size, and batch-1 latency and throughput of the way
    seglab runs the model here (channels_last, automatic precision)."""
    precision = choose_precision(torch.device("cpu"))
    sample = torch.rand(1, in_channels, *size).contiguous(memory_format=torch.channels_last)

    @torch.inference_mode()
    def run():
        with torch.autocast(
            "cpu",
            dtype=precision.autocast_dtype or torch.float32,
            enabled=precision.autocast_dtype is not None,
        ):
            model(sample)

    times = time_it(run, repeats)
    latency = statistics.median(times)
    return {
        **cost,
        "parameters_m": count_parameters(model) / 1e6,
        "gflops": forward_gflops(model, *size, in_channels),
        "latency_ms": 1000 * latency,
        "latency_p90_ms": 1000 * float(np.percentile(times, 90)),
        "images_per_s": 1 / latency,
        "precision": precision.name,
    }


def _examples_grid(models, dataset, info, count: int, path: Path) -> Path:
    """Image, truth and each model's prediction, for the images where the models disagree most
    and a few spread through the split."""
    first = models[0]["predictions"]
    disagreement = [
        max(float((first[i] != m["predictions"][i]).mean()) for m in models[1:])
        for i in range(len(first))
    ]
    worst = list(np.argsort(disagreement)[::-1][: max(1, count // 2)])
    spread = [int(i) for i in np.linspace(0, len(first) - 1, num=count) if int(i) not in worst]
    chosen = (worst + spread)[:count]
    rows = []
    for i in chosen:
        image, mask = dataset[int(i)]
        rgb = (image.clamp(0, 1) * 255).byte()
        rgb = rgb.expand(3, -1, -1) if rgb.shape[0] == 1 else rgb
        cells = [rgb.permute(1, 2, 0).numpy(), colorize(mask.numpy(), info)]
        cells += [colorize(m["predictions"][int(i)].astype(np.int64), info) for m in models]
        gap = np.full((cells[0].shape[0], 6, 3), 255, np.uint8)
        rows.append(np.concatenate([x for c in cells for x in (c, gap)][:-1], axis=1))
        rows.append(np.full((6, rows[-1].shape[1], 3), 255, np.uint8))
    grid = Image.fromarray(np.concatenate(rows[:-1], axis=0))
    scale = max(1, round(160 / int(dataset.load(0)[0].shape[-2])))  # small images drawn larger
    if scale > 1:
        grid = grid.resize((grid.width * scale, grid.height * scale), Image.NEAREST)
    with_legend(grid, info).save(path)
    for m in models:
        m["examples"] = [int(i) for i in chosen]
    return path


def with_legend(grid: Image.Image, info) -> Image.Image:
    """The grid with a strip of class colours and names below it."""
    from PIL import ImageDraw, ImageFont

    font = ImageFont.load_default(size=14)
    per_row = max(1, grid.width // 150)
    rows = -(-info.num_classes // per_row)
    canvas = Image.new("RGB", (grid.width, grid.height + 8 + rows * 22), "white")
    canvas.paste(grid, (0, 0))
    draw = ImageDraw.Draw(canvas)
    for c, (name, color) in enumerate(zip(info.classes, info.colors)):
        x, y = (c % per_row) * 150 + 4, grid.height + 8 + (c // per_row) * 22
        draw.rectangle([x, y, x + 14, y + 14], fill=tuple(color), outline="black")
        draw.text((x + 20, y), name, fill="black", font=font)
    return canvas


def _machine() -> dict:
    return {
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
