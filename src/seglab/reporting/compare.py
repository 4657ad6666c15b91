"""The founding study as one command: train (or take) several models on the same data, split,
seed and schedule, evaluate them on the same images, measure what each costs in every form it can
be deployed in, say which model x form to ship, and report.

Nothing here is an engine of its own: training is seglab.engine.train, evaluation (with
per-image confusion matrices for the bootstrap) is seglab.engine.evaluate, the forms and their
measurements are seglab.reporting.forms (over seglab.deployment), the flags and set-up
differences seglab.reporting.checks, the choice seglab.reporting.verdict. This module gathers
their results into a Comparison (seglab.reporting.results) and hands it to the plots and the
report."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from tqdm.auto import tqdm

from seglab import __version__
from seglab.config import TrainConfig
from seglab.data.dataset import Data, open_data
from seglab.data.segmentation_dataset import SegmentationDataset
from seglab.deployment.artifacts import calibration_images, file_sha256
from seglab.deployment.export import card_files, export_artifact
from seglab.engine.checkpoint import Checkpoint, TrainingState
from seglab.engine.evaluate import EvalOptions, Evaluation, evaluate_split
from seglab.engine.inference import predict_probabilities
from seglab.engine.machine import machine_description
from seglab.engine.performance import pick_device
from seglab.engine.segmenter import TorchSegmenter, checkpoint_segmenter
from seglab.errors import SeglabError
from seglab.models.complexity import count_parameters, forward_gflops
from seglab.models.encoders import get_encoder_spec
from seglab.outputs import check_output_folder
from seglab.reporting import plots
from seglab.reporting.budget import NO_BUDGET, Budget
from seglab.reporting.checks import degenerate, planned_steps, undertrained
from seglab.reporting.forms import FORMS, PYTORCH, Source, measure_forms
from seglab.reporting.report import write_reports
from seglab.reporting.results import (
    Comparison,
    Cost,
    FormResult,
    ModelResult,
    Setup,
    Verdict,
    read_history,
)
from seglab.reporting.statistics import bootstrap_miou_difference
from seglab.reporting.verdict import decide, most_accurate

# What in a folder says a comparison was written there before.
PREVIOUS_OUTPUTS = ("report.html", "report.md", "results.json", "runs")


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
    budget: Budget = NO_BUDGET,
    export: str | os.PathLike | None = None,
) -> Comparison:
    """Train one model per encoder with ``base`` (each in OUT/runs/ENCODER), or take the
    finished ``runs``; evaluate each on ``split`` (of ``base.data``, or with ``runs`` of the data
    the first run was trained on) as its training validated it; measure each one in every form
    of seglab.reporting.forms.FORMS on this machine's CPU; choose the model x form to ship
    within ``budget`` (the verdict) and, with ``export``, write it and its card there; write
    OUT/report.html, OUT/report.md, OUT/results.json and the figures.
    Everything the user gave is checked first, before any training: ``out`` (and ``export``)
    must be writable and ``out`` hold no earlier comparison, the models and the device must
    exist, the data must be clean and hold images in ``split``. Progress lines go to
    ``report``."""
    if examples < 1:
        raise SeglabError(f"compare: --examples {examples} must be at least 1")
    out = check_compare_folder(out)
    export = None if export is None else check_export_folder(export)
    run_dirs = _runs_to_compare(encoders, runs, out)
    names = run_names(run_dirs)
    device = pick_device(base.device)
    compared = _finished_runs_and_data(base, encoders, runs, run_dirs, out, split, report)
    eval_size = tuple(compared.images[0][0].shape[-2:])
    calibration = calibration_images(compared.data)

    with tempfile.TemporaryDirectory(prefix="seglab-compare-") as folder:
        sources = [
            Source(name, checkpoint, path, Path(folder) / str(k), calibration, eval_size)
            for k, (name, path, checkpoint) in enumerate(
                zip(names, compared.paths, compared.checkpoints)
            )
        ]
        measured = evaluate_and_measure(
            sources, run_dirs, compared.data, compared.data_name, split, base, device, report
        )
        comparison = _comparison(measured, compared, split, eval_size, len(calibration), examples)
        comparison.verdict = decide(comparison.forms, comparison.models, budget)
        if export is not None:
            chosen = sources[names.index(comparison.verdict.chosen.model)]
            comparison.verdict = export_verdict(comparison, chosen, export, report)
    write_outputs(comparison, measured.segmenters, compared.data, out)
    return comparison


@dataclass
class ComparedRuns:
    """The finished runs compare evaluates (each one's best checkpoint, path and loaded), and the
    data they are compared on, checked, with the images of the compared split."""

    paths: list[Path]
    checkpoints: list[Checkpoint]
    data_name: str
    data: Data
    images: SegmentationDataset


def _finished_runs_and_data(
    base: TrainConfig,
    encoders: Sequence[str] | None,
    runs: Sequence[str | os.PathLike] | None,
    run_dirs: Sequence[Path],
    out: Path,
    split: str,
    report: Callable[[str], None],
) -> ComparedRuns:
    """The runs in ``run_dirs`` finished, and the data to compare them on. Finished ``runs``
    name their data (the first run's); runs trained now are trained on ``base.data``, checked
    before hours of training, not after. From their checkpoints on, both are one case."""
    finished = None if runs is None else _load_checkpoints(run_dirs)
    data_name = base.data if finished is None else finished.checkpoints[0].config.data
    data = open_data(data_name, progress=base.progress).require_clean(data_name)
    images = _split(data, data_name, split)
    out.mkdir(parents=True, exist_ok=True)
    if finished is None:
        _train_runs(base, encoders, run_dirs, report)
        finished = _load_checkpoints(run_dirs)
    paths, checkpoints = finished
    for path, checkpoint in zip(paths, checkpoints):
        data.require_classes(list(checkpoint.dataset.classes), str(path), data_name)
    return ComparedRuns(paths, checkpoints, data_name, data, images)


def _train_runs(
    base: TrainConfig,
    encoders: Sequence[str],
    run_dirs: Sequence[Path],
    report: Callable[[str], None],
) -> None:
    """One run per encoder trained with ``base`` into its folder."""
    # Imported only when runs are trained (finished --runs need no training loop), and looked
    # up at the call, so a test's stand-in for train is the one that runs.
    from seglab.engine.train import train

    for encoder, run in zip(encoders, run_dirs):
        report(f"--- training {encoder} into {run} ---")
        train(dataclasses.replace(base, encoder=encoder, out=str(run)))


class BestCheckpoints(NamedTuple):
    """Each finished run's best checkpoint: its path, and the checkpoint loaded."""

    paths: list[Path]
    checkpoints: list[Checkpoint]


def _load_checkpoints(run_dirs: Sequence[Path]) -> BestCheckpoints:
    paths = [best_checkpoint(r) for r in run_dirs]
    checkpoints = [Checkpoint.load(p) for p in paths]
    return BestCheckpoints(paths, checkpoints)


def _comparison(
    measured: Measured,
    compared: ComparedRuns,
    split: str,
    eval_size: tuple[int, int],
    calibration_images: int,
    examples: int,
) -> Comparison:
    """What was measured compared: each model against the first, every model x form against
    the most accurate (bootstraps over the same images), and ``examples`` images to show. The
    verdict is left to the caller."""
    models = measured.models
    for model, evaluation in zip(models[1:], measured.evaluations[1:]):
        model.versus_first = bootstrap_miou_difference(
            evaluation.confusions, measured.evaluations[0].confusions
        )
    return Comparison(
        models=models,
        data=compared.data_name,
        split=split,
        images=len(compared.images),
        eval_size=eval_size,
        classes=tuple(compared.data.info.classes),
        machine=machine_description(),
        seglab_version=__version__,
        examples=choose_examples([e.predictions for e in measured.evaluations], examples),
        forms=versus_best(measured.forms),
        calibration_images=calibration_images,
        unavailable_forms=measured.unavailable,
    )


@dataclass
class Measured:
    """What compare measured: each model's PyTorch segmenter (for the example grid), its
    evaluation (per image) and its result; every model x form with its per-image confusion
    matrices."""

    segmenters: list[TorchSegmenter]
    evaluations: list[Evaluation]
    models: list[ModelResult]
    forms: list[tuple[FormResult, np.ndarray]]
    unavailable: dict[str, str]  # form -> why it could not be built here


def evaluate_and_measure(
    sources: Sequence[Source],
    run_dirs: Sequence[Path],
    data: Data,
    data_name: str,
    split: str,
    base: TrainConfig,
    device: torch.device,
    report: Callable[[str], None],
) -> Measured:
    """Each model evaluated on ``split`` as its training validated it (per image, for the
    bootstrap), flagged when degenerate or undertrained, and measured in every form."""
    measured = Measured([], [], [], [], {})
    compared_train_images = len(data.split("train"))
    for source, run in zip(sources, run_dirs):
        report(f"--- evaluating and measuring {source.name} ---")
        checkpoint = source.checkpoint
        segmenter = checkpoint_segmenter(checkpoint, device, name=source.name)
        options = EvalOptions(batch_size=checkpoint.config.batch_size, workers=base.workers)
        evaluation = evaluate_split(
            segmenter, data, split, options, progress=base.progress, per_image=True
        )
        forms, unavailable = measure_forms(source, data, split, evaluation, base.progress, report)
        training = _training_state(checkpoint, run)
        same_data = checkpoint.config.data == data_name
        train_images = compared_train_images if same_data else None
        setup = _setup(checkpoint, run, source.path, training, train_images)
        flags = [
            degenerate(evaluation.confusion.numpy(), data.info.classes, evaluation.metrics["miou"]),
            undertrained(setup.steps_done, setup.planned_steps),
        ]
        measured.segmenters.append(segmenter)
        measured.evaluations.append(evaluation)
        measured.models.append(
            ModelResult(
                name=source.name,
                encoder=checkpoint.spec.encoder,
                metrics=evaluation.metrics,
                cost=measure_cost(checkpoint, training, source.size, forms[0][0]),
                history=read_history(run / "metrics.csv"),
                setup=setup,
                flags=[f for f in flags if f is not None],
            )
        )
        measured.forms += forms
        measured.unavailable.update(unavailable)
    return measured


def versus_best(forms: Sequence[tuple[FormResult, np.ndarray]]) -> list[FormResult]:
    """Every model x form with its mIoU difference to the most accurate one (bootstrap over
    the same images)."""
    best = most_accurate([f for f, _ in forms])
    reference = next(c for f, c in forms if f is best)
    return [
        f
        if f is best
        else dataclasses.replace(f, versus_best=bootstrap_miou_difference(c, reference))
        for f, c in forms
    ]


def export_verdict(
    comparison: Comparison, source: Source, folder: Path, report: Callable[[str], None]
) -> Verdict:
    """The verdict's model x form written into ``folder`` with its card beside it (FILE,
    FILE.card.json, FILE.card.md): an export format by seglab export (measured again on the
    compared images, its deployment card inside the file too), the PyTorch form as a copy of
    the checkpoint with a card of what the comparison measured. Returns the verdict with
    ``exported`` set."""
    verdict = comparison.verdict
    chosen = verdict.chosen
    target = folder / next(f for f in FORMS if f.name == chosen.form).file(source).name
    if chosen.form != "pytorch":
        export_artifact(
            source.path,
            target,
            chosen.form,
            data=comparison.data,
            split=comparison.split,
            size=comparison.eval_size,
            report=report,
        )
        return dataclasses.replace(verdict, exported=str(target))
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source.path, target)
    card = {
        "format": "pytorch",
        "runs_as": PYTORCH.description,
        "run": chosen.model,
        "source": {"checkpoint": str(source.path), "sha256": file_sha256(target)},
        "measured": {
            "data": comparison.data,
            "split": comparison.split,
            "images": comparison.images,
            "size": list(comparison.eval_size),
            **{k: v for k, v in dataclasses.asdict(chosen).items() if k not in ("model", "form")},
        },
        "machine": comparison.machine,
        "chosen_by": verdict.rule,
    }
    card_json, card_markdown = card_files(target)
    card_json.write_text(json.dumps(card, indent=2))
    card_markdown.write_text(
        "\n".join([f"# {chosen.label}", ""] + [f"- {key}: {value}" for key, value in card.items()])
        + "\n"
    )
    return dataclasses.replace(verdict, exported=str(target))


def check_export_folder(folder: str | os.PathLike) -> Path:
    """``folder`` can be written and holds nothing yet: the verdict's file never replaces
    another. One-line SeglabError otherwise."""
    folder = check_output_folder(folder, "compare: --export")
    if folder.is_dir() and any(folder.iterdir()):
        raise SeglabError(f"compare: --export {folder} is not empty; choose a new folder")
    return folder


def write_outputs(comparison: Comparison, segmenters, data: Data, out: Path) -> None:
    """The figures, results.json and the reports (HTML and Markdown) in ``out``."""
    models = comparison.models
    figures = {
        "per_class": plots.per_class_bars(comparison, out / "per_class_iou.png"),
        "confusion": plots.confusion_matrices(
            {m.name: m.metrics["confusion"] for m in models},
            comparison.classes,
            out / "confusion.png",
        ),
        "frontier": plots.accuracy_cost_frontier(comparison, out / "accuracy_vs_latency.png"),
        "curves": plots.training_curves(
            {m.name: m.history for m in models}, out / "training_curves.png"
        ),
        "examples": plots.examples_grid(
            predict_examples(segmenters, data, comparison.split, comparison.examples),
            data.info,
            out / "examples.png",
        ),
    }
    (out / "results.json").write_text(json.dumps(comparison.to_dict(), indent=2))
    write_reports(comparison, figures, out)


def _split(data: Data, data_name: str, split: str) -> SegmentationDataset:
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


def measure_cost(
    checkpoint: Checkpoint,
    training: TrainingState | None,
    size: tuple[int, int],
    pytorch: FormResult,
) -> Cost:
    """Parameters, GFLOPs at ``size``, training time, and the ``pytorch`` form's batch-1
    latency and memory on this machine's CPU (fp32, the run's memory format)."""
    model = checkpoint.build_model()
    return Cost(
        parameters_m=count_parameters(model) / 1e6,
        gflops=forward_gflops(model, *size, checkpoint.spec.in_channels),
        latency_ms=pytorch.latency_ms,
        latency_p90_ms=pytorch.latency_p90_ms,
        images_per_s=1000 / pytorch.latency_ms,
        peak_memory_mb=pytorch.peak_memory_mb,
        model_memory_mb=pytorch.model_memory_mb,
        training_minutes=None if training is None else training.elapsed / 60,
        precision="fp32",
    )


def _training_state(checkpoint: Checkpoint, run: Path) -> TrainingState | None:
    """Where the run ended: the training state of last.pt (best.pt holds none)."""
    if checkpoint.training is None and (run / "last.pt").is_file():
        return Checkpoint.load(run / "last.pt").training
    return checkpoint.training


def _setup(
    checkpoint: Checkpoint,
    run: Path,
    path: Path,
    training: TrainingState | None,
    train_images: int | None,
) -> Setup:
    """How the run was trained; its planned steps counted on ``train_images`` (None when
    the run's data is not the compared data)."""
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
    processes = int(checkpoint.resolved.get("processes", 1))
    return Setup(
        str(run),
        str(path),
        str(weights),
        schedule,
        options=config.to_dict(),
        steps_done=checkpoint.step if training is None else training.step,
        planned_steps=None
        if train_images is None
        else planned_steps(config, train_images, processes),
    )


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


def predict_examples(
    segmenters: Sequence[TorchSegmenter], data: Data, split: str, chosen: Sequence[int]
) -> list[plots.Example]:
    """The chosen images of ``split`` with their ground truth and each model's prediction: the
    rows of the example grid."""
    images = data.split(split)
    examples = []
    for i in chosen:
        image, mask = images[i]
        predictions = [
            predict_probabilities(s, image[None].to(s.device)).argmax(1)[0].cpu()
            for s in segmenters
        ]
        examples.append(plots.Example(image, mask, predictions))
    return examples
