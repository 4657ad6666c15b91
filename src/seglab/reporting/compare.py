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
from seglab.config import DEFAULT_EPOCHS, TrainConfig, parse_fold
from seglab.data.dataset import Data, open_data
from seglab.data.segmentation_dataset import SegmentationDataset
from seglab.deployment.artifacts import calibration_images, file_sha256
from seglab.deployment.export import card_files, export_artifact
from seglab.engine.checkpoint import Checkpoint, TrainingState
from seglab.engine.data_record import resolve_data
from seglab.engine.evaluate import EvalOptions
from seglab.engine.inference import predict_probabilities
from seglab.engine.machine import machine_description
from seglab.engine.metrics import summarize
from seglab.engine.performance import pick_device
from seglab.engine.segmenter import TorchSegmenter, checkpoint_segmenter
from seglab.errors import SeglabError
from seglab.models.complexity import count_parameters, forward_gflops
from seglab.models.encoders import get_encoder_spec
from seglab.outputs import check_output_folder, write_text_atomic
from seglab.reporting import plots
from seglab.reporting.budget import NO_BUDGET, Budget
from seglab.reporting.checks import degenerate, planned_steps
from seglab.reporting.forms import (
    FORMS,
    LATENCY_REPEATS,
    PYTORCH,
    Form,
    Source,
    chosen_forms,
    measure_forms,
)
from seglab.reporting.repeats import (
    ModelEvaluation,
    ModelRuns,
    PlannedRun,
    evaluate_runs,
    group_runs,
    plan_runs,
)
from seglab.reporting.report import write_reports
from seglab.reporting.results import (
    Bootstrap,
    Comparison,
    Cost,
    Flag,
    FormResult,
    HistoryPoint,
    ModelResult,
    Setup,
    Verdict,
    read_history,
)
from seglab.reporting.statistics import bootstrap_miou_difference
from seglab.reporting.verdict import decide, most_accurate

# What in a folder says a comparison was written there before.
PREVIOUS_OUTPUTS = ("report.html", "report.md", "results.json", "runs")


# The demo: without data or a schedule, each model trains this many steps on the synthetic
# data: the same study on a slow or a busy machine, only later.
DEMO_SCHEDULE = {"iterations": 200, "batch_size": 8}


def with_demo_schedule(overrides: dict, config_file: str | None, runs: object) -> dict:
    """``overrides`` with the demo's short schedule when nothing says how long to train: no
    --config, no epochs, iterations or time budget, the synthetic data, no finished --runs."""
    given = (
        config_file
        or runs
        or any(overrides.get(k) is not None for k in ("epochs", "iterations", "time_budget"))
    )
    synthetic = overrides.get("data") in (None, "synthetic")
    if not synthetic or given:
        return overrides
    return {**overrides, **{k: overrides.get(k) or v for k, v in DEMO_SCHEDULE.items()}}


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
    seeds: int = 1,
    folds: int = 0,
    margin: float = 0.01,
    repeats: int = LATENCY_REPEATS,
    forms: Sequence[str] | None = None,
) -> Comparison:
    """Train each encoder with ``base`` ``seeds`` times (with ``folds``, once per fold of
    train+val for each seed), each run in its own folder under OUT/runs, or take the finished
    ``runs`` (gathered into models by their set-up: see seglab.reporting.repeats); evaluate
    every run per image on ``split`` (of ``base.data``, or with ``runs`` of the data the first
    run was trained on; a fold run on its own fold); measure each model's first run in every
    form of seglab.reporting.forms.FORMS (or the ``forms`` named, PyTorch always among them)
    on this machine's CPU (latency: the median of
    ``repeats`` runs); choose the model x form to ship within ``budget``, counting as equal
    what differs by less than ``margin`` mIoU (a fraction) or cannot be told from zero (the
    verdict), and with ``export`` write it and its card there (timed with ``repeats`` too);
    write OUT/report.html, OUT/report.md, OUT/results.json and the figures.
    Everything the user gave is checked first, before any training: ``out`` (and ``export``)
    must be writable and ``out`` hold no earlier comparison, the models and the device must
    exist, the data must be clean and hold images in ``split``. Progress lines go to
    ``report``."""
    if examples < 1:
        raise SeglabError(f"compare: --examples {examples} must be at least 1")
    check_repeats(seeds, folds, runs, split)
    measured_forms = chosen_forms(forms)
    out = check_compare_folder(out)
    export = None if export is None else check_export_folder(export)
    planned = _runs_to_compare(encoders, runs, out, seeds, folds, base.seed)
    device = pick_device(base.device)
    compared = _finished_runs_and_data(base, planned, runs, out, split, report)
    split = "val" if compared.folds else split
    eval_size = tuple(compared.images[0][0].shape[-2:])
    calibration = calibration_images(compared.data)

    with tempfile.TemporaryDirectory(prefix="seglab-compare-") as folder:
        measured = evaluate_and_measure(
            compared,
            split,
            base,
            device,
            Path(folder),
            calibration,
            eval_size,
            report,
            repeats,
            measured_forms,
        )
        comparison = _comparison(measured, compared, split, eval_size, len(calibration), examples)
        comparison.verdict = decide(comparison.forms, comparison.models, budget, margin)
        if comparison.verdict is None:
            comparison.no_verdict = no_verdict_reason(comparison.models)
        elif export is not None:
            chosen = measured.sources[comparison.verdict.chosen.model]
            comparison.verdict = export_verdict(
                comparison, chosen, export, report, repeats, base.progress
            )
    write_outputs(comparison, measured.segmenters, measured.example_data, out)
    return comparison


def check_repeats(seeds: int, folds: int, runs: object, split: str) -> None:
    """--seeds, --folds and --split fit together (finished --runs carry their own)."""
    if seeds < 1:
        raise SeglabError(f"compare: --seeds {seeds} must be at least 1")
    if folds == 1 or folds < 0:
        raise SeglabError(f"compare: --folds {folds} must be 0 (off) or at least 2")
    if runs is not None and (seeds > 1 or folds):
        raise SeglabError(
            "compare: finished --runs bring their own seeds and folds; give no --seeds or --folds"
        )
    if folds and split != "val":
        raise SeglabError(
            f"compare: with --folds every run is scored on its own validation fold; --split "
            f"{split} does not apply (the {split} split is left alone)"
        )


def no_verdict_reason(models: Sequence[ModelResult]) -> str:
    """Why there is no verdict: every model is degenerate, each with its reason."""
    reasons = "; ".join(
        f"{m.name} {f.reason}" for m in models for f in m.flags if f.kind == "degenerate"
    )
    return (
        f"every compared model is degenerate ({reasons}): none has learned the task, so there "
        "is nothing to choose between. Train longer (a larger --iterations or --time-budget), "
        "or check the labels with seglab data check"
    )


@dataclass
class ComparedRuns:
    """The finished runs compare evaluates, gathered into models, each run's best checkpoint
    (path and loaded), and the data they are compared on, checked: ``data`` is the dataset's
    own split, ``images`` the compared images (with folds, the first fold's val)."""

    models: list[ModelRuns]
    paths: dict[Path, Path]
    checkpoints: dict[Path, Checkpoint]
    data_name: str
    data: Data
    images: SegmentationDataset
    folds: int | None = None  # K, when the runs are cross-validation folds


def _finished_runs_and_data(
    base: TrainConfig,
    planned: dict[str, list[PlannedRun]] | None,
    runs: Sequence[str | os.PathLike] | None,
    out: Path,
    split: str,
    report: Callable[[str], None],
) -> ComparedRuns:
    """The runs finished, and the data to compare them on. Finished ``runs`` name their data
    (the first run's); runs trained now (``planned``) are trained on ``base.data``, checked
    before hours of training, not after. From their checkpoints on, both are one case."""
    loaded = None if runs is None else _load_checkpoints([Path(r) for r in runs])
    data_name = base.data if loaded is None else loaded.checkpoints[0].config.data
    data = open_data(data_name, progress=base.progress).require_clean(data_name)
    images = _split(data, data_name, split)
    out.mkdir(parents=True, exist_ok=True)
    if planned is not None:
        _train_runs(base, planned, report)
        models = [ModelRuns(encoder, [r.folder for r in rs]) for encoder, rs in planned.items()]
        loaded = _load_checkpoints([f for m in models for f in m.folders])
    else:
        folders = [Path(r) for r in runs]
        models = group_runs(folders, [c.config for c in loaded.checkpoints], run_names(folders))
        if len(models) < 2:
            raise SeglabError(
                f"compare: the {len(folders)} runs are one model (the same set-up but for seed "
                "and fold); compare needs at least two"
            )
    paths = dict(zip(loaded.folders, loaded.paths))
    checkpoints = dict(zip(loaded.folders, loaded.checkpoints))
    for path, checkpoint in zip(loaded.paths, loaded.checkpoints):
        data.require_classes(list(checkpoint.dataset.classes), str(path), data_name)
    first_fold = checkpoints[models[0].folders[0]].config.fold
    folds = None
    if first_fold is not None:
        folds = parse_fold(first_fold)[1]
        images = open_data(data_name, progress=False, fold=parse_fold(first_fold)).split("val")
    return ComparedRuns(models, paths, checkpoints, data_name, data, images, folds)


def _train_runs(
    base: TrainConfig, planned: dict[str, list[PlannedRun]], report: Callable[[str], None]
) -> None:
    """Every planned run trained with ``base`` into its folder, with its seed and fold."""
    # Imported only when runs are trained (finished --runs need no training loop), and looked
    # up at the call, so a test's stand-in for train is the one that runs.
    from seglab.engine.train import train

    for encoder, runs in planned.items():
        for run in runs:
            repeat = f", seed {run.seed}" + (f", fold {run.fold}" if run.fold else "")
            report(f"--- training {encoder} into {run.folder}{repeat} ---")
            train(
                dataclasses.replace(
                    base, encoder=encoder, out=str(run.folder), seed=run.seed, fold=run.fold
                ),
                log=report,
            )


class BestCheckpoints(NamedTuple):
    """Each finished run's folder, its best checkpoint's path, and the checkpoint loaded."""

    folders: list[Path]
    paths: list[Path]
    checkpoints: list[Checkpoint]


def _load_checkpoints(run_dirs: Sequence[Path]) -> BestCheckpoints:
    paths = [best_checkpoint(r) for r in run_dirs]
    checkpoints = [Checkpoint.load(p) for p in paths]
    return BestCheckpoints(list(run_dirs), paths, checkpoints)


def _comparison(
    measured: Measured,
    compared: ComparedRuns,
    split: str,
    eval_size: tuple[int, int],
    calibration_images: int,
    examples: int,
) -> Comparison:
    """What was measured compared: each model against the first and every model x form against
    the most accurate (bootstraps over the images or their groups, and the runs), and
    ``examples`` images to show. The verdict is left to the caller."""
    models, evaluations = measured.models, measured.evaluations
    for model, evaluation in zip(models[1:], evaluations[1:]):
        model.versus_first = model_difference(evaluation, evaluations[0])
    groups = evaluations[0].groups
    return Comparison(
        models=models,
        data=compared.data_name,
        split=split,
        images=int(evaluations[0].confusions.shape[1]),  # with folds, every train+val image
        eval_size=eval_size,
        classes=tuple(compared.data.info.classes),
        machine=machine_description(),
        seglab_version=__version__,
        examples=choose_examples([e.first.predictions for e in evaluations], examples),
        forms=versus_best(measured.forms, models, evaluations, split),
        calibration_images=calibration_images,
        unavailable_forms=measured.unavailable,
        groups=len(set(groups)) if groups else None,
        folds=compared.folds,
    )


def model_difference(a: ModelEvaluation, b: ModelEvaluation) -> Bootstrap:
    """mIoU(a) - mIoU(b) over every run of each, resampling the images' groups, with each
    model's seed noise: measured by its seeds, or assumed where it ran with one."""
    noise = (a.noise, b.noise)
    return bootstrap_miou_difference(a.confusions, b.confusions, groups=a.groups, seed_noise=noise)


@dataclass
class Measured:
    """What compare measured: each model's PyTorch segmenter of its first run (for the example
    grid, on ``example_data``), every run's evaluation, its result and the source of its forms;
    every model x form of the first runs with its per-image confusion matrices."""

    segmenters: list[TorchSegmenter]
    evaluations: list[ModelEvaluation]
    models: list[ModelResult]
    forms: list[tuple[FormResult, np.ndarray]]
    unavailable: dict[str, str]  # form -> why it could not be built here
    sources: dict[str, Source]
    example_data: Data | None = None


def evaluate_and_measure(
    compared: ComparedRuns,
    split: str,
    base: TrainConfig,
    device: torch.device,
    folder: Path,
    calibration: Sequence[torch.Tensor],
    eval_size: tuple[int, int],
    report: Callable[[str], None],
    repeats: int = LATENCY_REPEATS,
    forms: Sequence[Form] | None = None,
) -> Measured:
    """Each model's runs evaluated per image (as their training validated them), the model
    flagged when degenerate or undertrained, and its first run measured in every form."""
    measured = Measured([], [], [], [], {}, {})
    options = EvalOptions(workers=base.workers, threads=base.threads)
    fold_data: dict[str, Data] = {}
    for k, model in enumerate(compared.models):
        report(f"--- evaluating and measuring {model.name} ({len(model.folders)} run(s)) ---")
        checkpoints = [compared.checkpoints[f] for f in model.folders]
        trainings = [_training_state(c, f) for c, f in zip(checkpoints, model.folders)]
        histories = [read_history(f / "metrics.csv") for f in model.folders]
        steps = [c.step if t is None else t.step for c, t in zip(checkpoints, trainings)]
        evaluation = evaluate_runs(
            model.folders,
            checkpoints,
            histories,
            steps,
            compared.data,
            compared.data_name,
            split,
            options,
            device,
            fold_data,
            base.progress,
        )
        first, path = checkpoints[0], compared.paths[model.folders[0]]
        source = Source(model.name, first, path, folder / str(k), calibration, eval_size)
        in_forms, unavailable = measure_forms(
            source,
            evaluation.first_data,
            split,
            evaluation.first,
            base.progress,
            report,
            repeats,
            forms,
        )
        measured.sources[model.name] = source
        measured.segmenters.append(checkpoint_segmenter(first, device, name=model.name))
        measured.evaluations.append(evaluation)
        measured.models.append(
            _model_result(
                model, compared, evaluation, trainings[0], histories, in_forms[0][0], eval_size
            )
        )
        measured.example_data = evaluation.first_data
        measured.forms += in_forms
        measured.unavailable.update(unavailable)
    return measured


def _model_result(
    model: ModelRuns,
    compared: ComparedRuns,
    evaluation: ModelEvaluation,
    training: TrainingState | None,
    histories: Sequence[list[HistoryPoint]],
    pytorch: FormResult,
    eval_size: tuple[int, int],
) -> ModelResult:
    """One model's record: its runs' summed scores, its first run's set-up, cost and curve,
    flagged when degenerate or when a run was undertrained."""
    first_folder = model.folders[0]
    checkpoint = compared.checkpoints[first_folder]
    trained_on = resolve_data(checkpoint.config.data)  # runs record it resolved
    same_data = trained_on == resolve_data(compared.data_name) and not checkpoint.config.fold
    train_images = len(compared.data.split("train")) if same_data else None
    setup = _setup(checkpoint, first_folder, compared.paths[first_folder], training, train_images)
    metrics = summarize(evaluation.pooled, compared.data.info.classes)
    flags = [degenerate(evaluation.pooled.numpy(), compared.data.info.classes, metrics["miou"])]
    several = len(evaluation.runs) > 1
    for run in evaluation.runs:
        if run.undertrained is not None:
            name = f"{Path(run.run).name}: " if several else ""
            flags.append(Flag("undertrained", name + run.undertrained))
            break
    return ModelResult(
        name=model.name,
        encoder=checkpoint.spec.encoder,
        metrics=metrics,
        cost=measure_cost(checkpoint, training, eval_size, pytorch),
        history=histories[0],
        setup=setup,
        flags=[f for f in flags if f is not None],
        runs=evaluation.runs,
    )


def versus_best(
    forms: Sequence[tuple[FormResult, np.ndarray]],
    models: Sequence[ModelResult],
    evaluations: Sequence[ModelEvaluation],
    split: str,
) -> list[FormResult]:
    """Every model x form with its mIoU difference to the most accurate one of a model that is
    not degenerate. A form's mIoU is its model's score (the mean over its runs) moved by what
    the form changes on the first run. Two forms of one model differ by a bootstrap over the
    same images; forms of two models by the models' difference (images or groups, and runs)
    moved by what their forms change."""
    pytorch = {f.model: f.miou for f, _ in forms if f.form == PYTORCH.name}
    scores = {m.name: m.miou for m in models}
    adjusted = [
        (dataclasses.replace(f, miou=scores[f.model] + f.miou - pytorch[f.model]), c)
        for f, c in forms
    ]
    sound = {m.name for m in models if not any(flag.kind == "degenerate" for flag in m.flags)}
    best = most_accurate([f for f, _ in adjusted if f.model in sound] or [f for f, _ in adjusted])
    reference = next(c for f, c in adjusted if f is best)
    by_model = dict(zip((m.name for m in models), evaluations))
    groups = by_model[best.model].first_data.groups(split)
    compared = []
    for form, confusions in adjusted:
        if form is best:
            compared.append(form)
            continue
        if form.model == best.model:
            difference = bootstrap_miou_difference(confusions, reference, groups=groups)
        else:
            models_apart = model_difference(by_model[form.model], by_model[best.model])
            shift = (form.miou - best.miou) - models_apart.difference
            difference = dataclasses.replace(
                models_apart,
                difference=form.miou - best.miou,
                ci_low=models_apart.ci_low + shift,
                ci_high=models_apart.ci_high + shift,
            )
        compared.append(dataclasses.replace(form, versus_best=difference))
    return compared


def export_verdict(
    comparison: Comparison,
    source: Source,
    folder: Path,
    report: Callable[[str], None],
    repeats: int = LATENCY_REPEATS,
    progress: bool = True,
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
            repeats=repeats,
            report=report,
            progress=progress,
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
    write_text_atomic(card_json, json.dumps(card, indent=2))
    write_text_atomic(
        card_markdown,
        "\n".join([f"# {chosen.label}", ""] + [f"- {key}: {value}" for key, value in card.items()])
        + "\n",
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
    write_text_atomic(out / "results.json", json.dumps(comparison.to_dict(), indent=2))
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
    encoders: Sequence[str] | None,
    runs: Sequence[str | os.PathLike] | None,
    out: Path,
    seeds: int,
    folds: int,
    base_seed: int,
) -> dict[str, list[PlannedRun]] | None:
    """The runs to train per encoder (None when finished ``runs`` are given, each checked
    finished), each encoder checked registered, none twice."""
    if runs is not None:
        if len(runs) < 2:
            raise SeglabError("compare needs at least two models (--encoders A,B or --runs A B)")
        for run in runs:
            best_checkpoint(Path(run))
        return None
    encoders = list(encoders or [])
    if len(encoders) < 2:
        raise SeglabError("compare needs at least two models (--encoders A,B or --runs A B)")
    for encoder in encoders:
        get_encoder_spec(encoder)
        if encoders.count(encoder) > 1:
            raise SeglabError(f"compare: --encoders names {encoder} twice; name each once")
    return plan_runs(encoders, out, seeds, folds, base_seed)


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
    if config.fills_budget:
        steps = "as many steps as fit the budget"
    else:
        steps = (
            f"{config.iterations} steps"
            if config.iterations
            else f"{config.epochs or DEFAULT_EPOCHS} epochs"
        )
    budget = f", time budget {config.time_budget / 60:g} min" if config.time_budget else ""
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
        weights_requested=str(checkpoint.resolved.get("weights_requested", "")),
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
