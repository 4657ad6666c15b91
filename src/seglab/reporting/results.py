"""What a comparison found, as typed records: compare.py fills them, report.py and plots.py
render them, results.json is their ``to_dict()``."""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Bootstrap:
    """mIoU(a) - mIoU(b) of two models on the same images, with its bootstrap interval
    (fractions, not percent). The resampled units are the images' groups (``groups``: how many;
    None when each image is its own) and each model's runs (``runs``: seeds of a and of b).
    ``seed_noise``: where a model ran once, the standard deviation of one run's mIoU that was
    assumed for it and added to the interval (its validation curve's noise, or the calibrated
    floor if larger; None: measured by the runs themselves, or not at all)."""

    difference: float
    ci_low: float
    ci_high: float
    level: float  # of the interval, e.g. 0.95
    p_a_better: float  # share of resamples in which a is ahead
    samples: int
    images: int
    groups: int | None = None
    runs: tuple[int, int] = (1, 1)
    seed_noise: float | None = None

    @property
    def excludes_zero(self) -> bool:
        return self.ci_low > 0 or self.ci_high < 0


@dataclass(frozen=True)
class Cost:
    """What a model costs to run here: size, work, batch-1 latency and memory, training time."""

    parameters_m: float
    gflops: float  # one image at the evaluation size
    latency_ms: float  # batch 1, median of repeats
    latency_p90_ms: float
    images_per_s: float
    peak_memory_mb: float  # a fresh process that loads the model and runs batch-1 inference
    model_memory_mb: float  # that peak less the same process before loading (PyTorch alone)
    training_minutes: float | None  # None when the run does not record it
    precision: str  # how latency and memory were measured: fp32 or bf16


@dataclass(frozen=True)
class HistoryPoint:
    """One validation of a training run (a row of its metrics.csv)."""

    epoch: int
    step: int
    seconds: float
    train_loss: float
    val_miou: float


@dataclass(frozen=True)
class Setup:
    """How a model was trained, as the report lists it: ``options`` is the run's recorded
    configuration (TrainConfig.to_dict()), ``steps_done`` the optimizer steps it ran and
    ``planned_steps`` those its schedule planned (None where unknown)."""

    run: str
    checkpoint: str
    encoder_weights: str
    schedule: str
    options: dict[str, Any] = field(default_factory=dict)
    steps_done: int | None = None
    planned_steps: int | None = None
    weights_requested: str = ""  # what was asked for (auto, imagenet, none, a file)

    @property
    def premise_failed(self) -> bool:
        """ImageNet weights were asked for (auto) but the run started from random weights."""
        return self.weights_requested == "auto" and self.encoder_weights.startswith("random")


@dataclass(frozen=True)
class Flag:
    """Why a model's scores say little: ``kind`` is "degenerate" (it predicts one class, or
    does no better than predicting the commonest class everywhere) or "undertrained" (it ran
    far fewer steps than planned); ``reason`` says it with the numbers."""

    kind: str
    reason: str


@dataclass(frozen=True)
class FormResult:
    """One compared model (``model``: its run's name) in one deployable form (``form``: a
    seglab.reporting.forms.FORMS name), measured on the compared images and this machine's CPU:
    batch-1 latency at the compared size, memory of a fresh process that loads and runs it
    (peak, and what loading the model added), and its mIoU difference to the most accurate
    model x form (None for that one)."""

    model: str
    form: str
    miou: float
    latency_ms: float
    latency_p90_ms: float
    peak_memory_mb: float
    model_memory_mb: float
    versus_best: Bootstrap | None = None

    @property
    def label(self) -> str:
        return f"{self.model} as {self.form}"


@dataclass(frozen=True)
class Verdict:
    """The model x form to ship and why. ``rule`` says how it was chosen; ``fits`` is False
    when nothing fits the budget (``chosen`` is then the closest); ``speedup`` is the most
    accurate model x form's latency over the chosen one's; ``equivalent`` the labels of the
    model x forms counted as accurate as the most accurate one (their difference cannot be
    told from zero, or is within ``margin`` mIoU, a fraction); ``cautions`` name the flags of
    the models involved; ``exported`` is where --export wrote it."""

    chosen: FormResult
    best: FormResult
    rule: str
    fits: bool
    speedup: float
    latency_budget_ms: float | None = None
    memory_budget_mb: float | None = None
    cautions: list[str] = field(default_factory=list)
    exported: str | None = None
    equivalent: list[str] = field(default_factory=list)
    margin: float = 0.01


@dataclass(frozen=True)
class RunResult:
    """One training run of a compared model: its folder, its seed, its fold ("2/5"; None when
    it trained on the dataset's own split), its mIoU on the images it was evaluated on, the
    steps it ran, the noise of one run's mIoU estimated from its validation curve, and why it
    is undertrained (None: it is not)."""

    run: str
    seed: int
    fold: str | None
    miou: float
    steps_done: int | None = None
    curve_noise: float | None = None
    undertrained: str | None = None


@dataclass
class ModelResult:
    """One compared model: ``name`` is its run folder's name (made unique; with several runs,
    the first run's), ``metrics`` the evaluation's (seglab.engine.metrics.summarize) of its
    runs' confusion matrices summed (every seed, every fold), ``runs`` each run's own result,
    ``versus_first`` its mIoU difference to the first model (None for the first)."""

    name: str
    encoder: str
    metrics: dict[str, Any]
    cost: Cost
    history: list[HistoryPoint]
    setup: Setup
    versus_first: Bootstrap | None = None
    flags: list[Flag] = field(default_factory=list)
    runs: list[RunResult] = field(default_factory=list)

    def iou(self, name: str) -> float | None:
        return self.metrics["per_class"][name]["iou"]

    @property
    def miou(self) -> float:
        """The model's score: the mean of its runs' mIoU (each fold's run counts for its
        images), or the evaluation's mIoU where runs are not recorded."""
        if not self.runs:
            return float(self.metrics["miou"])
        if any(r.fold for r in self.runs):  # folds: every image once, from its fold's model
            return float(self.metrics["miou"]) if self.seeds == 1 else self._mean_over_seeds()
        return sum(r.miou for r in self.runs) / len(self.runs)

    @property
    def seeds(self) -> int:
        return len({r.seed for r in self.runs}) or 1

    @property
    def miou_sd(self) -> float | None:
        """Standard deviation of the runs' mIoU (seeds; folds score different images and are
        not compared with each other); None with fewer than two seeds."""
        if self.seeds < 2:
            return None
        values = self._per_seed()
        mean = sum(values) / len(values)
        return (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5

    def _per_seed(self) -> list[float]:
        by_seed: dict[int, list[float]] = {}
        for r in self.runs:
            by_seed.setdefault(r.seed, []).append(r.miou)
        return [sum(v) / len(v) for v in by_seed.values()]

    def _mean_over_seeds(self) -> float:
        values = self._per_seed()
        return sum(values) / len(values)


@dataclass
class Comparison:
    """Several models evaluated on the same images (``images`` of ``split`` of ``data``)."""

    models: list[ModelResult]
    data: str
    split: str
    images: int
    eval_size: tuple[int, int]
    classes: tuple[str, ...]
    machine: dict[str, Any]
    seglab_version: str
    examples: list[int] = field(default_factory=list)  # indices shown in the example grid
    forms: list[FormResult] = field(default_factory=list)  # every model in every form
    calibration_images: int = 0  # training images that calibrated INT8
    unavailable_forms: dict[str, str] = field(default_factory=dict)  # form -> why not measured
    verdict: Verdict | None = None
    no_verdict: str | None = None  # why there is no verdict (every model degenerate)
    groups: int | None = None  # groups of the compared images, when the dataset declares them
    folds: int | None = None  # K of K-fold cross-validation, when the runs are folds

    @property
    def first(self) -> ModelResult:
        return self.models[0]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: every number (scores as fractions)."""
        record = asdict(self)
        record["eval_size"] = list(self.eval_size)
        record["classes"] = list(self.classes)
        return record


def read_history(path: Path) -> list[HistoryPoint]:
    """A run's metrics.csv as history points (none when the file is absent; rows that are not
    numbers, such as one cut short by a kill, are left out)."""
    if not path.is_file():
        return []
    points = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            try:
                points.append(
                    HistoryPoint(
                        int(row["epoch"]),
                        int(row["step"]),
                        float(row["seconds"]),
                        float(row["train_loss"]),
                        float(row["val_miou"]),
                    )
                )
            except (KeyError, TypeError, ValueError):
                continue
    return points
