"""How fast a model runs here, backend by backend: latency (median and p90 of repeats),
throughput and peak resident memory; with data, the mIoU each backend gives. Every backend is a
segmenter (seglab.engine.segmenter), so each is timed and evaluated by the same code."""

from __future__ import annotations

import html
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from seglab.data.classes import default_colors
from seglab.data.dataset import Data
from seglab.data.info import DatasetInfo
from seglab.deployment.artifacts import (
    artifact_segmenter,
    calibration_images,
    model_input_size,
    read_card,
    write_artifact,
)
from seglab.deployment.backends import (
    BACKEND_NOTES,
    BACKENDS,
    FORMAT_OF_BACKEND,
    TORCH_BACKENDS,
)
from seglab.deployment.card import DeploymentCard
from seglab.deployment.formats import FORMATS, ArtifactInputs, is_artifact
from seglab.deployment.measure import open_model_data, source_model, time_segmenter
from seglab.engine.checkpoint import load_model
from seglab.engine.evaluate import evaluate_split
from seglab.engine.machine import busy_note, machine_description
from seglab.engine.performance import PeakMemory, latency_ms
from seglab.engine.segmenter import Segmenter, TorchSegmenter
from seglab.errors import SeglabError, first_line
from seglab.formatting import html_table
from seglab.models.complexity import forward_gflops
from seglab.models.unet import ModelSpec, UNet, build_model


@dataclass
class Timing:
    """One backend's figures: latency in ms, throughput, peak resident memory of this process
    while it was built and timed, and the mIoU it gives (with data)."""

    backend: str
    median_ms: float
    p90_ms: float
    images_per_s: float
    peak_rss_mb: float
    miou: float | None = None
    note: str = ""


@dataclass
class BenchmarkResult:
    """What ``seglab benchmark`` measured: the model, the input, and one Timing per backend."""

    model: str  # what was timed, e.g. "runs/x/best.pt (mobilenet_v2)"
    size: tuple[int, int]
    batch: int
    gflops: float  # per image, at ``size``
    threads: int
    results: list[Timing] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)  # backend -> why not
    machine: dict[str, Any] = field(default_factory=dict)  # as the timings ended, load included

    def notes(self) -> list[str]:
        """What a reader must know beside the table: a busy machine."""
        busy = busy_note(self.machine) if self.machine else None
        return [f"note: {busy}"] if busy else []

    def headline(self) -> str:
        height, width = self.size
        return (
            f"benchmark: {self.model}, batch {self.batch} at {height}x{width}, "
            f"{self.gflops:.1f} GFLOPs per image, {self.threads} threads"
        )

    def table(self) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
        """(header, rows) of the table printed for a person (mIoU in percent; "x eager": how
        many times faster than eager PyTorch fp32, when that was timed)."""
        header = (
            "backend",
            "median ms",
            "p90 ms",
            "x eager",
            "images/s",
            "GFLOP/s",
            "peak RSS MB",
            "mIoU",
            "how",
        )
        eager = next((r.median_ms for r in self.results if r.backend == "eager"), None)
        rows = [
            (
                r.backend,
                f"{r.median_ms:.1f}",
                f"{r.p90_ms:.1f}",
                "-" if eager is None else f"{eager / r.median_ms:.2f}",
                f"{r.images_per_s:.2f}",
                f"{self.gflops * r.images_per_s:.0f}",
                f"{r.peak_rss_mb:.0f}",
                "-" if r.miou is None else f"{100 * r.miou:.2f}",
                r.note,
            )
            for r in self.results
        ]
        return header, rows

    def _repr_html_(self) -> str:
        unavailable = "".join(
            f"<p>{html.escape(b)}: not available here ({html.escape(why)})</p>"
            for b, why in self.unavailable.items()
        )
        title = f"<b>{html.escape(self.headline())}</b>"
        notes = "".join(f"<p>{html.escape(line)}</p>" for line in self.notes())
        return f"<div>{title}{html_table(*self.table())}{unavailable}{notes}</div>"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (mIoU as a fraction)."""
        return {
            "model": self.model,
            "size": list(self.size),
            "batch": self.batch,
            "gflops": self.gflops,
            "threads": self.threads,
            "results": [asdict(r) for r in self.results],
            "unavailable": dict(self.unavailable),
            "machine": dict(self.machine),
        }


# --- backends -----------------------------------------------------------------------------------


def backend_segmenter(
    backend: str,
    model: UNet | None,
    info: DatasetInfo,
    folder: Path,
    calibration: Sequence[torch.Tensor] = (),
    size: tuple[int, int] | None = None,
) -> Segmenter:
    """``backend`` (one of BACKENDS) as a segmenter on the CPU. PyTorch backends run ``model``
    (the same module, set to each backend's memory format); the others run ``model`` exported
    into ``folder`` in their format (under the format's ``file_name``; INT8 from the fp32 graph
    there when it exists, calibrated on the ``calibration`` images, random ones of 64x96 when
    none are given; a fixed-size format for images of ``size``)."""
    if backend not in BACKENDS:
        raise SeglabError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    if model is None:
        raise SeglabError(f"backend {backend} needs the PyTorch model")
    if backend in TORCH_BACKENDS:
        return TorchSegmenter(
            model,
            info,
            name=backend,
            device="cpu",
            autocast_dtype=torch.bfloat16 if backend == "bf16" else None,
            channels_last=backend != "eager",
            compile=backend == "compile",
        )
    format = FORMATS[FORMAT_OF_BACKEND[backend]]
    if format.implementation().FIXED_SIZE and size is None:
        raise SeglabError(f"backend {backend} needs the input size it is lowered for")
    if not calibration:
        calibration = [torch.rand(1, info.in_channels, 64, 96) for _ in range(4)]
    fp32 = folder / FORMATS["onnx"].file_name
    path = folder / format.file_name
    if not path.is_file():
        inputs = ArtifactInputs(size, calibration, fp32 if fp32.is_file() else None)
        write_artifact(model, info, format.name, path, inputs)
    segmenter = artifact_segmenter(path)
    segmenter.name = backend
    return segmenter


def benchmark(
    segmenters: Mapping[str, Callable[[], Segmenter]],
    images: torch.Tensor,
    repeats: int = 20,
    evaluate: Callable[[Segmenter], float] | None = None,
    report: Callable[[str], None] = print,
    notes: Mapping[str, str] = BACKEND_NOTES,
) -> tuple[list[Timing], dict[str, str]]:
    """Builds and times each segmenter (name -> a function that builds it) on ``images``;
    ``evaluate(segmenter)`` adds its mIoU; ``notes`` say how each runs (the segmenter's kind
    otherwise). A segmenter that cannot be built or run here is reported and skipped. Returns
    the timings and {name: why} of the skipped ones."""
    results, unavailable = [], {}
    for name, build in segmenters.items():
        try:
            with PeakMemory() as memory:
                segmenter = build()
                times = time_segmenter(segmenter, images, repeats)
        except Exception as err:  # a backend this machine cannot run is reported, not fatal
            unavailable[name] = first_line(err)[:160]
            report(f"{name}: not available here ({unavailable[name]})")
            continue
        median, p90 = latency_ms(times)
        timing = Timing(name, median, p90, 1000 * images.shape[0] / median, memory.peak)
        timing.note = notes.get(name, segmenter.kind)
        if evaluate is not None:
            timing.miou = evaluate(segmenter)
        results.append(timing)
        del segmenter
    return results, unavailable


@dataclass
class BenchmarkSource:
    """What a benchmark times: the PyTorch model its backends run (None for an exported file
    whose checkpoint is not here, and why), the exported file itself, the dataset facts and
    architecture, a label, the model's own input size, and its data (None when absent)."""

    model: UNet | None
    info: DatasetInfo
    spec: ModelSpec
    label: str
    size: tuple[int, int]
    data: Data | None = None
    artifact: Path | None = None
    card: DeploymentCard | None = None
    why_no_model: str = ""


def benchmark_model(
    source: str | os.PathLike | None = None,
    *,
    encoder: str | None = None,
    classes: int = 12,
    size: tuple[int, int] | None = None,
    batch: int = 1,
    backends: Sequence[str] | None = None,
    repeats: int = 20,
    data: str | None = None,
    limit: int | None = None,
    calibration: int = 32,
    report: Callable[[str], None] = print,
) -> BenchmarkResult:
    """``seglab benchmark``: times ``backends`` on the CPU on random images of ``size`` (default:
    the model's own input size, see seglab.deployment.artifacts.model_input_size; 360x480 for
    an untrained model), for ``source``, a checkpoint (every backend by default) or a file
    exported by seglab (the file itself, and beside it ``backends`` run from its source
    checkpoint when that is here: eager PyTorch fp32 by default), or an untrained U-Net on
    ``encoder`` with ``classes`` classes. With data (``data``, default: the model's own dataset
    when it is here), each one's mIoU on the validation split (its first ``limit`` images), and
    ``calibration`` of its training images calibrate INT8. Prints the headline, and what
    cannot run or be measured here, through ``report``."""
    backends = check_benchmark_request(
        source, encoder, data, backends, batch, repeats, limit, calibration
    )
    target = benchmark_source(source, encoder, classes, data, report)
    if backends is None:
        backends = BACKENDS if target.artifact is None else ("eager",) * bool(target.model)
    height, width = size or target.size
    counted = target.model or UNet(target.spec)  # FLOPs need no trained weights
    result = BenchmarkResult(
        target.label,
        (height, width),
        batch,
        forward_gflops(counted, height, width, target.info.in_channels),
        torch.get_num_threads(),
    )
    report(result.headline())
    evaluate = None if target.data is None else _validation(target.data, limit)
    images = torch.rand(batch, target.info.in_channels, height, width)
    calibration_set = list(images)  # without data, INT8 sees the timed images
    if target.data is not None and {"int8", "executorch-int8"} & set(backends):
        calibration_set = calibration_images(target.data, calibration)
    if target.model is None:  # an exported file whose checkpoint is not here: itself only
        for backend in backends:
            result.unavailable[backend] = target.why_no_model
            report(f"{backend}: not available here ({target.why_no_model})")
    with tempfile.TemporaryDirectory(prefix="seglab-bench-") as folder:
        builders, notes = _builders(target, backends, Path(folder), calibration_set, result.size)
        result.results, unavailable = benchmark(builders, images, repeats, evaluate, report, notes)
    result.unavailable.update(unavailable)
    result.machine = machine_description()
    return result


def check_benchmark_request(
    source: str | os.PathLike | None,
    encoder: str | None,
    data: str | None,
    backends: Sequence[str] | None,
    batch: int,
    repeats: int,
    limit: int | None,
    calibration: int,
) -> tuple[str, ...] | None:
    """Every option checked before any work; the backends asked for, each once."""
    if backends is not None:
        backends = tuple(dict.fromkeys(backends))
        unknown = [b for b in backends if b not in BACKENDS]
        if unknown or not backends:
            raise SeglabError(
                f"benchmark: --backends {','.join(backends)!r}: choose from {', '.join(BACKENDS)}"
            )
    for option, value in (
        ("--batch", batch),
        ("--repeats", repeats),
        ("--limit", limit),
        ("--calibration", calibration),
    ):
        if value is not None and value < 1:
            raise SeglabError(f"benchmark: {option} {value} must be at least 1")
    if (source is None) == (encoder is None):
        raise SeglabError("benchmark: give either a checkpoint (or exported model) or an encoder")
    if data and source is None:
        raise SeglabError(
            "benchmark: --data needs --checkpoint: an untrained model has no mIoU to compare"
        )
    return backends


def _builders(
    target: BenchmarkSource,
    backends: Sequence[str],
    folder: Path,
    calibration: Sequence[torch.Tensor],
    size: tuple[int, int],
) -> tuple[dict[str, Callable[[], Segmenter]], dict[str, str]]:
    """A function that builds each timed segmenter, by name (the exported file first, when the
    target is one), and how each runs."""
    builders: dict[str, Callable[[], Segmenter]] = {}
    notes = dict(BACKEND_NOTES)
    if target.artifact is not None:
        name = f"{target.card.format} (file)"
        builders[name] = lambda: artifact_segmenter(target.artifact, target.card)
        notes[name] = f"{target.artifact.name}: {FORMATS[target.card.format].backend_note}"
    if target.model is not None:
        for backend in backends:
            builders[backend] = lambda b=backend: backend_segmenter(
                b, target.model, target.info, folder, calibration, size
            )
    return builders, notes


def benchmark_source(
    source: str | os.PathLike | None,
    encoder: str | None,
    classes: int,
    data: str | None,
    report: Callable[[str], None] = print,
) -> BenchmarkSource:
    """The model a benchmark times, its own input size and data (see :func:`benchmark_model`);
    a recorded dataset that cannot be opened here is reported and left out."""

    def own_data(name: str | None, info: DatasetInfo) -> Data | None:
        if name is None:
            return None
        try:
            return open_model_data(name, info, str(source), given=data is not None)
        except SeglabError as err:
            if data is not None:
                raise
            report(f"benchmark: no mIoU: {err}")
            return None

    if encoder is not None:
        model = build_model(encoder, classes, encoder_weights=None).eval()
        names = tuple(f"class {i}" for i in range(classes))
        info = DatasetInfo("untrained", names, default_colors(classes))
        return BenchmarkSource(model, info, model.spec, f"untrained U-Net on {encoder}", (360, 480))
    if is_artifact(source):
        card = read_card(source)
        model, why_not = source_model(card)
        recorded = card.measured.data if card.measured else None
        return BenchmarkSource(
            model,
            card.info,
            card.spec,
            f"{source} ({card.spec.encoder}, {card.format})",
            card.input.size or (360, 480),
            own_data(data or recorded, card.info),
            Path(source),
            card,
            why_not,
        )
    model, checkpoint = load_model(source)
    dataset = own_data(data or checkpoint.config.data, checkpoint.dataset)
    try:
        size = model_input_size(checkpoint, dataset)[0]
    except SeglabError:
        size = (360, 480)
    label = f"{source} ({model.spec.encoder})"
    return BenchmarkSource(model, checkpoint.dataset, model.spec, label, size, dataset)


def _validation(data: Data, limit: int | None) -> Callable[[Segmenter], float]:
    """A function ``segmenter -> validation mIoU`` on ``data`` (its first ``limit`` images)."""

    def miou(segmenter: Segmenter) -> float:
        result = evaluate_split(segmenter, data, "val", limit=limit, progress=False)
        return result.metrics["miou"]

    return miou
