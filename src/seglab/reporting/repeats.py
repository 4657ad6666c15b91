"""Repeated runs of a compared model: seeds (compare --seeds N) and cross-validation folds
(compare --folds K). Each run is a plain ``seglab train`` run folder, so runs can be trained
anywhere (another GPU, another machine) and gathered again with ``compare --runs``: runs whose
recorded set-up is the same but for the seed and the fold are one model.

Every run is scored per image, so the statistics can resample images (or their groups) and runs:
the runs of one seed on the compared split, or, with folds, each image by the run that held its
fold out (every train+val image once)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from seglab.config import TrainConfig, parse_fold
from seglab.data.dataset import Data, open_data
from seglab.engine.checkpoint import Checkpoint
from seglab.engine.evaluate import EvalOptions, Evaluation, evaluate_split
from seglab.engine.segmenter import checkpoint_segmenter
from seglab.errors import SeglabError
from seglab.reporting.checks import undertrained
from seglab.reporting.results import HistoryPoint, RunResult
from seglab.reporting.statistics import assumed_seed_noise, curve_noise

# Options in which the runs of one model may differ: which repeat it is, and how and where it ran.
REPEAT_OPTIONS = (
    "seed",
    "fold",
    "out",
    "progress",
    "workers",
    "threads",
    "device",
    "precision",
    "compile",
    "channels_last",
    "auto",
)


@dataclass(frozen=True)
class PlannedRun:
    """A run compare trains: its folder, seed and fold (None: the dataset's own split)."""

    folder: Path
    seed: int
    fold: str | None


@dataclass
class ModelRuns:
    """One compared model: its name in the report, and its runs' folders, first the one whose
    checkpoint stands for the model in the forms, the examples and the set-up."""

    name: str
    folders: list[Path]


def plan_runs(
    encoders: Sequence[str], out: Path, seeds: int, folds: int, base_seed: int
) -> dict[str, list[PlannedRun]]:
    """The runs to train per encoder: OUT/runs/ENCODER for one run, otherwise
    OUT/runs/ENCODER/seedS (-foldIofK with folds), seeds from ``base_seed`` on."""
    planned = {}
    for encoder in encoders:
        runs = []
        for seed in range(base_seed, base_seed + seeds):
            for index in range(1, folds + 1) if folds else [None]:
                fold = None if index is None else f"{index}/{folds}"
                if seeds == 1 and fold is None:
                    folder = out / "runs" / encoder
                else:
                    name = f"seed{seed}" + ("" if index is None else f"-fold{index}of{folds}")
                    folder = out / "runs" / encoder / name
                runs.append(PlannedRun(folder, seed, fold))
        planned[encoder] = runs
    return planned


def setup_key(config: TrainConfig) -> tuple:
    """What makes two runs the same model: every recorded option but REPEAT_OPTIONS, and but
    those the fingerprint chose (each fold's own data may choose a little differently): for
    those, that they were chosen (the same command) is what counts."""
    options = config.to_dict()
    chosen = set(config.auto)
    kept = ((k, repr(v)) for k, v in sorted(options.items()) if k not in REPEAT_OPTIONS)
    return (*(item for item in kept if item[0] not in chosen), ("auto", tuple(sorted(chosen))))


def group_runs(
    folders: Sequence[Path], configs: Sequence[TrainConfig], names: Sequence[str]
) -> list[ModelRuns]:
    """Finished runs gathered into models by their set-up (setup_key), in the order each model
    first appears; ``names`` are the runs' own names, a single run's model keeps its own.
    One-line SeglabError when a model's repeats do not fit together (the same seed and fold
    twice, or folds of one seed missing)."""
    groups: dict[tuple, list[int]] = {}
    for k, config in enumerate(configs):
        groups.setdefault(setup_key(config), []).append(k)
    encoders = [configs[members[0]].encoder for members in groups.values()]
    models = []
    for members in groups.values():
        _check_repeats([folders[k] for k in members], [configs[k] for k in members])
        encoder = configs[members[0]].encoder
        parents = {folders[k].resolve().parent for k in members}
        if len(members) == 1:
            name = names[members[0]]
        elif encoders.count(encoder) == 1:
            name = encoder
        elif len(parents) == 1:  # e.g. runs/lr-high/seed0, runs/lr-high/seed1: lr-high
            name = parents.pop().name
        else:
            name = names[members[0]]
        models.append(ModelRuns(name, [folders[k] for k in _ordered(members, configs)]))
    if len({m.name for m in models}) < len(models):
        raise SeglabError(
            "compare: two models have the same name; keep each model's runs in its own folder"
        )
    return models


def _ordered(members: list[int], configs: Sequence[TrainConfig]) -> list[int]:
    return sorted(members, key=lambda k: (configs[k].seed, _fold_index(configs[k].fold)))


def _fold_index(fold: str | None) -> int:
    return 0 if fold is None else parse_fold(fold)[0]


def _check_repeats(folders: list[Path], configs: list[TrainConfig]) -> None:
    seen: dict[tuple[int, str | None], Path] = {}
    for folder, config in zip(folders, configs):
        key = (config.seed, config.fold)
        if key in seen:
            raise SeglabError(
                f"compare: {seen[key]} and {folder} are the same run (seed {config.seed}, fold "
                f"{config.fold or 'none'}); give each once"
            )
        seen[key] = folder
    folds = {c.fold for c in configs}
    if folds == {None}:
        return
    if None in folds:
        raise SeglabError(f"compare: {folders[0].parent}: fold runs mixed with a plain run")
    count = parse_fold(next(iter(folds)))[1]
    for seed in sorted({c.seed for c in configs}):
        have = {_fold_index(c.fold) for c in configs if c.seed == seed}
        missing = sorted(set(range(1, count + 1)) - have)
        if missing:
            raise SeglabError(
                f"compare: the runs of seed {seed} lack fold {missing[0]}/{count} (every fold "
                "is needed to score every image once)"
            )


@dataclass
class ModelEvaluation:
    """Every run of one model scored per image. ``confusions``: S x N x K x K (S seeds; N the
    compared split's images, or with folds every train+val image, each scored by the run that
    held its fold out). ``groups``: each of the N images' group (None: none declared).
    ``first``: the first run's evaluation (with predictions), on ``first_data``'s val or the
    compared split."""

    confusions: np.ndarray
    groups: list[str] | None
    runs: list[RunResult]
    first: Evaluation
    first_data: Data

    @property
    def pooled(self) -> torch.Tensor:
        """Every run's confusion matrices summed: the model's per-class table."""
        return torch.from_numpy(self.confusions.sum(axis=(0, 1)))

    @property
    def noise(self) -> float | None:
        """With one seed, the seed noise assumed for the model's score (see
        statistics.assumed_seed_noise; over K folds, the mean run's over sqrt(K)); None with
        several seeds (measured by them)."""
        if len({r.seed for r in self.runs}) > 1:
            return None
        each = [assumed_seed_noise(r.curve_noise) for r in self.runs]
        return sum(each) / len(each) / math.sqrt(len(self.runs))


def evaluate_runs(
    folders: Sequence[Path],
    checkpoints: Sequence[Checkpoint],
    histories: Sequence[Sequence[HistoryPoint]],
    steps_done: Sequence[int | None],
    data: Data,
    data_name: str,
    split: str,
    options: EvalOptions,
    device: torch.device,
    folds: dict[str, Data],
    progress: bool = False,
) -> ModelEvaluation:
    """Each run evaluated per image: on ``split`` of ``data``, or a fold run on its own
    validation fold (train+val opened again with the run's fold, kept in ``folds`` for the
    next model)."""
    by_seed: dict[int, list[np.ndarray]] = {}
    groups_by_seed: dict[int, list[str]] = {}
    runs, evaluations = [], []
    for folder, checkpoint, history, steps in zip(folders, checkpoints, histories, steps_done):
        config = checkpoint.config
        run_data, run_split = data, split
        if config.fold is not None:
            if config.fold not in folds:
                folds[config.fold] = open_data(
                    data_name, progress=False, fold=parse_fold(config.fold)
                )
            run_data, run_split = folds[config.fold], "val"
        segmenter = checkpoint_segmenter(checkpoint, device, name=str(folder))
        run_options = dataclasses.replace(options, batch_size=config.batch_size)
        evaluation = evaluate_split(
            segmenter, run_data, run_split, run_options, progress=progress, per_image=True
        )
        evaluations.append((evaluation, run_data))
        flag = undertrained(steps, history, checkpoint.resolved.get("minimum_steps"))
        by_seed.setdefault(config.seed, []).append(evaluation.confusions)
        groups_by_seed.setdefault(config.seed, []).extend(run_data.groups(run_split) or [])
        runs.append(
            RunResult(
                run=str(folder),
                seed=config.seed,
                fold=config.fold,
                miou=float(evaluation.metrics["miou"]),
                steps_done=steps,
                curve_noise=curve_noise([p.val_miou for p in history]),
                undertrained=None if flag is None else flag.reason,
            )
        )
    sizes = {sum(len(c) for c in parts) for parts in by_seed.values()}
    if len(sizes) > 1:
        raise SeglabError(f"compare: the seeds of {folders[0]} were scored on different images")
    stacked = np.stack([np.concatenate(parts) for parts in by_seed.values()])
    groups = next(iter(groups_by_seed.values())) or None
    first, first_data = evaluations[0]
    return ModelEvaluation(stacked, groups, runs, first, first_data)
