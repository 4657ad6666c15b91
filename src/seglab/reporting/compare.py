"""The founding study as one command: train (or take) several models on the same data, split,
seed and schedule, evaluate them on the same images, measure what each costs, and report.

Nothing here is an engine of its own: training is seglab.engine.train, evaluation (with
per-image confusion matrices for the bootstrap) is seglab.engine.evaluate, latency and memory
are seglab.deployment.benchmark's. This module gathers their results into a Comparison
(seglab.reporting.results) and hands it to the plots and the report."""

from __future__ import annotations

import dataclasses
import json
import os
import platform
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.utils import make_grid
from tqdm.auto import tqdm

from seglab import __version__
from seglab.config import TrainConfig
from seglab.data.dataset import Data, open_data
from seglab.data.show import colorize, with_legend
from seglab.deployment.benchmark import peak_inference_memory, summarize_times, time_segmenter
from seglab.engine.checkpoint import Checkpoint
from seglab.engine.evaluate import evaluate_split
from seglab.engine.inference import predict_probabilities
from seglab.engine.performance import choose_precision, pick_device
from seglab.engine.segmenter import TorchSegmenter, checkpoint_segmenter
from seglab.errors import SeglabError
from seglab.models.complexity import count_parameters, forward_gflops
from seglab.outputs import check_output_folder
from seglab.reporting import plots
from seglab.reporting.report import write_reports
from seglab.reporting.results import Comparison, Cost, ModelResult, Setup, read_history
from seglab.reporting.statistics import bootstrap_miou_difference

# What in a folder says a comparison was written there before.
PREVIOUS_OUTPUTS = ("report.html", "report.md", "results.json", "runs")
LATENCY_REPEATS = 10
GAP = 6  # white pixels between the cells of the example grid


# The demo: without data or a schedule, each model trains 2 minutes on the synthetic data.
DEMO_SCHEDULE = {"time_budget": 120.0, "epochs": 20}


def with_demo_schedule(overrides: dict, config_file: str | None, runs: object) -> dict:
    """``overrides`` with the demo's short schedule when nothing says how long to train: no
    --config, no epochs, iterations or time budget, the synthetic data, no finished --runs."""
    given = (
        config_file
        or runs
        or any(overrides.get(k) is not None for k in ("epochs", "iterations", "time_budget"))
    )
    synthetic = overrides.get("data") in (None, "synthetic")
    return {**overrides, **DEMO_SCHEDULE} if synthetic and not given else overrides


def compare(
    base: TrainConfig,
    encoders: Sequence[str] | None = None,
    runs: Sequence[str | os.PathLike] | None = None,
    out: str | os.PathLike = "runs/compare",
    split: str = "val",
    examples: int = 6,
    report: Callable[[str], None] = tqdm.write,
) -> Comparison:
    """Train one model per encoder with ``base`` (each in OUT/runs/ENCODER), or take the
    finished ``runs``; evaluate each on ``split`` (of ``base.data``, or with ``runs`` of the data
    the first run was trained on) as its training validated it; measure each one's cost on this
    machine's CPU; write OUT/report.html, OUT/report.md, OUT/results.json and the figures.
    Everything the user gave is checked first, before any training: ``out`` must be writable and
    hold no earlier comparison, the models and the device must exist, the data must be clean
    and hold images in ``split``. Progress lines go to ``report``."""
    if examples < 1:
        raise SeglabError(f"compare: --examples {examples} must be at least 1")
    out = check_compare_folder(out)
    run_dirs = _runs_to_compare(encoders, runs, out)
    names = run_names(run_dirs)
    device = pick_device(base.device)
    if runs is None:  # the data and split checked before hours of training, not after
        data_name = base.data
        data = open_data(data_name, progress=base.progress).require_clean(data_name)
        images = _split(data, data_name, split)
        from seglab.engine.train import train

        out.mkdir(parents=True, exist_ok=True)
        for encoder, run in zip(encoders, run_dirs):
            report(f"--- training {encoder} into {run} ---")
            train(dataclasses.replace(base, encoder=encoder, out=str(run)))
    paths = [best_checkpoint(r) for r in run_dirs]
    checkpoints = [Checkpoint.load(p) for p in paths]
    if runs is not None:
        data_name = checkpoints[0].config.data
        data = open_data(data_name, progress=base.progress).require_clean(data_name)
        images = _split(data, data_name, split)
        out.mkdir(parents=True, exist_ok=True)
    for path, checkpoint in zip(paths, checkpoints):
        data.require_classes(list(checkpoint.dataset.classes), str(path), data_name)
    eval_size = tuple(images[0][0].shape[-2:])

    segmenters, evaluations, models = evaluate_and_measure(
        names, run_dirs, paths, checkpoints, data, split, eval_size, base, device, report
    )
    for model, evaluation in zip(models[1:], evaluations[1:]):
        model.versus_first = bootstrap_miou_difference(
            evaluation.confusions, evaluations[0].confusions
        )

    comparison = Comparison(
        models=models,
        data=data_name,
        split=split,
        images=len(images),
        eval_size=eval_size,
        classes=tuple(data.info.classes),
        machine=_machine(),
        seglab_version=__version__,
        examples=choose_examples([e.predictions for e in evaluations], examples),
    )
    write_outputs(comparison, segmenters, data, out)
    return comparison


def evaluate_and_measure(
    names, run_dirs, paths, checkpoints, data, split, eval_size, base, device, report
):
    """Each model evaluated on ``split`` as its training validated it (per image, for the
    bootstrap) and its cost measured: (segmenters, evaluations, model results)."""
    segmenters, evaluations, models = [], [], []
    for name, run, path, checkpoint in zip(names, run_dirs, paths, checkpoints):
        report(f"--- evaluating and measuring {name} ---")
        segmenter = checkpoint_segmenter(checkpoint, device, name=name)
        evaluation = evaluate_split(
            segmenter,
            data,
            split,
            batch_size=checkpoint.config.batch_size,
            workers=base.workers,
            progress=base.progress,
            per_image=True,
        )
        segmenters.append(segmenter)
        evaluations.append(evaluation)
        models.append(
            ModelResult(
                name=name,
                encoder=checkpoint.spec.encoder,
                metrics=evaluation.metrics,
                cost=measure_cost(checkpoint, path, run, eval_size),
                history=read_history(run / "metrics.csv"),
                setup=_setup(checkpoint, run, path),
            )
        )
    return segmenters, evaluations, models


def write_outputs(comparison: Comparison, segmenters, data: Data, out: Path) -> None:
    """The figures, results.json and the reports (HTML and Markdown) in ``out``."""
    models = comparison.models
    figures = {
        "per_class": plots.per_class_bars(comparison, out / "per_class_iou.png"),
        "frontier": plots.accuracy_cost_frontier(comparison, out / "accuracy_vs_latency.png"),
        "curves": plots.training_curves(
            {m.name: m.history for m in models}, out / "training_curves.png"
        ),
        "examples": out / "examples.png",
    }
    examples_grid(segmenters, data, comparison.split, comparison.examples).save(figures["examples"])
    (out / "results.json").write_text(json.dumps(comparison.to_dict(), indent=2))
    write_reports(comparison, figures, out)


def _split(data: Data, data_name: str, split: str):
    images = data.split(split)
    if len(images) == 0:
        raise SeglabError(f"compare: {data_name} has no {split!r} images to compare on")
    return images


def check_compare_folder(out: str | os.PathLike) -> Path:
    """``out`` can be written, and holds no earlier comparison (report or runs): a new
    comparison never mixes with, or overwrites, an old one. One-line SeglabError otherwise."""
    out = check_output_folder(out, "compare: --out")
    previous = [name for name in PREVIOUS_OUTPUTS if (out / name).exists()]
    if previous:
        raise SeglabError(
            f"compare: --out {out} already holds a comparison ({', '.join(previous)}); "
            "choose another --out"
        )
    return out


def _runs_to_compare(
    encoders: Sequence[str] | None, runs: Sequence[str | os.PathLike] | None, out: Path
) -> list[Path]:
    """The run folders to compare: the given ``runs`` (each checked finished), or one per
    encoder in OUT/runs (each encoder checked registered, none twice)."""
    if runs is not None:
        if len(runs) < 2:
            raise SeglabError("compare needs at least two models (--encoders A,B or --runs A B)")
        for run in runs:
            best_checkpoint(Path(run))
        return [Path(r) for r in runs]
    from seglab.models.encoders import get_encoder_spec

    encoders = list(encoders or [])
    if len(encoders) < 2:
        raise SeglabError("compare needs at least two models (--encoders A,B or --runs A B)")
    for encoder in encoders:
        get_encoder_spec(encoder)
        if encoders.count(encoder) > 1:
            raise SeglabError(f"compare: --encoders names {encoder} twice; name each once")
    return [out / "runs" / encoder for encoder in encoders]


def run_names(runs: Sequence[Path]) -> list[str]:
    """Each run's name in the report: its folder's name, with as many parent folders as it
    takes to tell apart runs whose folders have the same name (a/mobilenet_v2, b/mobilenet_v2).
    """
    resolved = [Path(r).resolve() for r in runs]
    for k, path in enumerate(resolved):
        if path in resolved[:k]:
            raise SeglabError(f"compare: --runs names {runs[k]} twice; name each run once")
    depth = [1] * len(runs)
    while True:
        names = ["/".join(p.parts[-d:]) for p, d in zip(resolved, depth)]
        clashes = [k for k, name in enumerate(names) if names.count(name) > 1]
        if not clashes:
            return names
        for k in clashes:
            depth[k] += 1


def best_checkpoint(run: Path) -> Path:
    for name in ("best.pt", "last.pt"):
        if (run / name).is_file():
            return run / name
    raise SeglabError(f"{run}: no best.pt or last.pt (is it a finished seglab run?)")


def measure_cost(checkpoint: Checkpoint, path: Path, run: Path, size: tuple[int, int]) -> Cost:
    """Parameters, GFLOPs at ``size``, batch-1 latency and throughput, and peak memory of the
    way seglab runs the model on this machine's CPU (channels_last, automatic precision)."""
    cpu = torch.device("cpu")
    precision = choose_precision(cpu, "auto")
    segmenter = checkpoint_segmenter(checkpoint, cpu, precision="auto", channels_last=True)
    sample = torch.rand(1, checkpoint.spec.in_channels, *size)
    timing = summarize_times("", time_segmenter(segmenter, sample, LATENCY_REPEATS), 1, 0.0)
    peak, baseline = peak_inference_memory(path, size, precision="auto")
    return Cost(
        parameters_m=count_parameters(segmenter.module) / 1e6,
        gflops=forward_gflops(segmenter.module, *size, checkpoint.spec.in_channels),
        latency_ms=timing.median_ms,
        latency_p90_ms=timing.p90_ms,
        images_per_s=timing.images_per_s,
        peak_memory_mb=peak,
        model_memory_mb=peak - baseline,
        training_minutes=_training_minutes(checkpoint, run),
        precision=precision.name,
    )


def _training_minutes(checkpoint: Checkpoint, run: Path) -> float | None:
    """The run's training time, from the training state of last.pt (best.pt holds none)."""
    training = checkpoint.training
    if training is None and (run / "last.pt").is_file():
        training = Checkpoint.load(run / "last.pt").training
    return None if training is None else training.elapsed / 60


def _setup(checkpoint: Checkpoint, run: Path, path: Path) -> Setup:
    config = checkpoint.config
    steps = f"{config.iterations} steps" if config.iterations else f"{config.epochs} epochs"
    budget = f", time budget {config.time_budget:.0f}s" if config.time_budget else ""
    crop = "x".join(map(str, config.crop_size)) if config.crop_size else "full images"
    schedule = (
        f"{steps}{budget}, batch {config.batch_size}, {config.optimizer} lr {config.lr:g} "
        f"{config.schedule}, crops {crop}, loss {config.loss}, "
        f"class weights {config.class_weights}, seed {config.seed}"
    )
    # what training resolved (e.g. "ImageNet weights FILE", "random initialisation")
    weights = checkpoint.resolved.get("weights_source") or config.weights
    return Setup(str(run), str(path), str(weights), schedule)


def choose_examples(predictions: Sequence[Sequence[np.ndarray]], count: int) -> list[int]:
    """Indices of ``count`` images to show: first those where the models' scored predictions
    (one list per model, see seglab.engine.evaluate.Evaluation) disagree most, then some spread
    through the split."""
    first, others = predictions[0], predictions[1:]
    disagreement = [_disagreement(first[i], [p[i] for p in others]) for i in range(len(first))]
    worst = [int(i) for i in np.argsort(disagreement, kind="stable")[::-1][: max(1, count // 2)]]
    spread = [int(i) for i in np.linspace(0, len(first) - 1, num=count).round()]
    return list(dict.fromkeys(worst + spread))[:count]


def _disagreement(reference: np.ndarray, others: list[np.ndarray]) -> float:
    """The largest share of scored pixels on which another model differs from ``reference``
    (predictions of one image, padded to each model's batch: compared where they overlap)."""
    shares = []
    for other in others:
        height = min(reference.shape[0], other.shape[0])
        width = min(reference.shape[1], other.shape[1])
        a, b = reference[:height, :width], other[:height, :width]
        scored = a != 255
        shares.append(float((a != b)[scored].mean()) if scored.any() else 0.0)
    return max(shares, default=0.0)


def examples_grid(
    segmenters: Sequence[TorchSegmenter], data: Data, split: str, chosen: Sequence[int]
) -> Image.Image:
    """One row per chosen image of ``split``: the image, its ground truth and each model's
    prediction in the class colours; small images drawn larger; a legend of the classes below."""
    info = data.info
    images = data.split(split)
    rows = []
    for i in chosen:
        image, mask = images[i]
        predictions = [
            predict_probabilities(s, image[None].to(s.device)).argmax(1)[0].cpu()
            for s in segmenters
        ]
        rgb = (image.clamp(0, 1) * 255).round().to(torch.uint8)
        rows.append(rgb.expand(3, -1, -1) if rgb.shape[0] == 1 else rgb[:3])
        rows += [_colours(classes, info) for classes in (mask, *predictions)]
    height = max(r.shape[-2] for r in rows)
    width = max(r.shape[-1] for r in rows)
    cells = torch.full((len(rows), 3, height, width), 255, dtype=torch.uint8)
    for k, cell in enumerate(rows):  # images of other sizes: padded white at bottom and right
        cells[k, :, : cell.shape[-2], : cell.shape[-1]] = cell
    grid = make_grid(cells, nrow=2 + len(segmenters), padding=GAP, pad_value=255)
    picture = Image.fromarray(grid[:, GAP:-GAP, GAP:-GAP].permute(1, 2, 0).numpy())
    scale = max(1, round(160 / height))  # small images drawn larger
    if scale > 1:
        picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
    return with_legend(picture, info)


def _colours(classes: torch.Tensor, info) -> torch.Tensor:
    """3 x H x W uint8: each class in its colour, ignored pixels black."""
    return torch.from_numpy(colorize(classes.numpy(), info)).permute(2, 0, 1)


def _machine() -> dict:
    return {
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
