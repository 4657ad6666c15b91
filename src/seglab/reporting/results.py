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
    """How a model was trained, as the report lists it."""

    run: str
    checkpoint: str
    encoder_weights: str
    schedule: str


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
