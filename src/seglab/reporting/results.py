"""What a comparison found, as typed records: compare.py fills them, report.py and plots.py
render them, results.json is their ``to_dict()``."""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Bootstrap:
    """mIoU(a) - mIoU(b) of two models on the same images, with its bootstrap interval over
    images (fractions, not percent)."""

    difference: float
    ci_low: float
    ci_high: float
    level: float  # of the interval, e.g. 0.95
    p_a_better: float  # share of resamples in which a is ahead
    samples: int
    images: int

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
    accurate model x form's latency over the chosen one's; ``cautions`` name the flags of the
    models involved; ``exported`` is where --export wrote it."""

    chosen: FormResult
    best: FormResult
    rule: str
    fits: bool
    speedup: float
    latency_budget_ms: float | None = None
    memory_budget_mb: float | None = None
    cautions: list[str] = field(default_factory=list)
    exported: str | None = None


@dataclass
class ModelResult:
    """One compared model: ``name`` is its run folder's name (made unique), ``metrics`` the
    evaluation's (seglab.engine.metrics.summarize), ``versus_first`` its mIoU difference to the
    first model (None for the first)."""

    name: str
    encoder: str
    metrics: dict[str, Any]
    cost: Cost
    history: list[HistoryPoint]
    setup: Setup
    versus_first: Bootstrap | None = None
    flags: list[Flag] = field(default_factory=list)

    def iou(self, name: str) -> float | None:
        return self.metrics["per_class"][name]["iou"]


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
