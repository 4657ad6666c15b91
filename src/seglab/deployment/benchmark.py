"""How fast a model runs here, backend by backend: latency (median and p90 of repeats),
throughput and peak resident memory; with data, the mIoU each backend gives. Every backend is a
segmenter (seglab.engine.segmenter), so each is timed and evaluated by the same code."""

from __future__ import annotations

import os
import statistics
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from seglab.data.info import DatasetInfo
from seglab.deployment.backends import BACKEND_NOTES, BACKENDS, FORMATS, TORCH_BACKENDS
from seglab.engine.performance import synchronize, time_it
from seglab.engine.segmenter import Segmenter, TorchSegmenter
from seglab.errors import SeglabError, first_line
from seglab.models.unet import ModelSpec, UNet

if TYPE_CHECKING:
    from seglab.data.dataset import Data
    from seglab.deployment.card import DeploymentCard


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
        }


# --- measuring ----------------------------------------------------------------------------------


def rss_mb(pid: int | str = "self") -> float:
    """A process's resident memory now, this one by default (Linux /proc; elsewhere this
    process's ru_maxrss as a bound)."""
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        if pid != "self":
            raise
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class PeakMemory:
    """Samples resident memory in a background thread while the block runs."""

    def __enter__(self):
        self.peak, self._stop = rss_mb(), threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self):
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, rss_mb())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mb())


def time_segmenter(
    segmenter: Segmenter, images: torch.Tensor, repeats: int, warmup: int = 2
) -> list[float]:
    """Seconds of each of ``repeats`` runs of ``segmenter`` on ``images`` (waiting for the GPU
    to finish, on a GPU)."""
    images = images.to(segmenter.device)

    def run() -> None:
        segmenter(images)
        synchronize(segmenter.device)

    return time_it(run, repeats, warmup)


def summarize_times(backend: str, times: list[float], batch: int, peak: float) -> Timing:
    median = statistics.median(times)
    p90 = float(np.percentile(times, 90))
    return Timing(backend, 1000 * median, 1000 * p90, batch / median, peak)


def peak_inference_memory(
    checkpoint: str | os.PathLike, size: tuple[int, int], batch: int = 1, precision: str = "auto"
) -> tuple[float, float]:
    """(peak, baseline) resident memory in MB of a fresh process that loads ``checkpoint`` as a
    segmenter on the CPU (``precision``) and runs it twice on ``batch`` images of ``size``; the
    baseline is the same process after its imports (PyTorch alone), so peak - baseline is what
    the model and its activations take."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_load_and_infer, (str(checkpoint), tuple(size), batch, precision))


def _load_and_infer(
    checkpoint: str, size: tuple[int, int], batch: int, precision: str
) -> tuple[float, float]:
    from seglab.deployment.runtime import load_segmenter

    baseline = rss_mb()
    with PeakMemory() as memory:
        segmenter = load_segmenter(checkpoint, "cpu", precision=precision)
        images = torch.rand(batch, segmenter.info.in_channels, *size)
        for _ in range(2):
            segmenter(images)
    return memory.peak, baseline


# --- backends -----------------------------------------------------------------------------------

# The file each exporting backend writes into the benchmark's folder.
BACKEND_FORMATS = {
    "onnxruntime": ("onnx", "model.onnx"),
    "int8": ("onnx-int8", "model.int8.onnx"),
    "executorch": ("executorch", "model.pte"),
}


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
    into ``folder`` (see BACKEND_FORMATS; INT8 from the fp32 graph there when it exists,
    calibrated on the ``calibration`` images, random ones of 64x96 when none are given;
    ExecuTorch for images of ``size``)."""
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
    from seglab.deployment.export import write_artifact
    from seglab.deployment.runtime import artifact_segmenter

    format, name = BACKEND_FORMATS[backend]
    if backend == "executorch" and size is None:
        raise SeglabError("backend executorch needs the input size it is lowered for")
    if not calibration:
        calibration = [torch.rand(1, info.in_channels, 64, 96) for _ in range(4)]
    fp32 = folder / BACKEND_FORMATS["onnxruntime"][1]
    path = folder / name
    if not path.is_file():
        write_artifact(
            model,
            info,
            format,
            path,
            size=size,
            calibration=calibration,
            fp32=fp32 if fp32.is_file() else None,
        )
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
        timing = summarize_times(name, times, images.shape[0], memory.peak)
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
    the model's own input size, see seglab.deployment.export.model_input_size; 360x480 for an
    untrained model), for ``source``, a checkpoint (every backend by default) or a file exported
    by seglab (the file itself, and beside it ``backends`` run from its source checkpoint when
    that is here: eager PyTorch fp32 by default), or an untrained U-Net on ``encoder`` with
    ``classes`` classes. With data (``data``, default: the model's own dataset when it is
    here), each one's mIoU on the validation split (its first ``limit`` images), and
    ``calibration`` of its training images calibrate INT8. Prints the headline, and what
    cannot run or be measured here, through ``report``."""
    from seglab.models.complexity import forward_gflops

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
    evaluate, calibration_set = None, []
    if target.data is not None:
        evaluate = _validation(target.data, limit)
        if "int8" in backends:
            from seglab.deployment.export import calibration_images

            calibration_set = calibration_images(target.data, calibration)
    images = torch.rand(batch, target.info.in_channels, height, width)
    calibration_set = calibration_set or list(images)  # without data, INT8 sees the timed images
    builders: dict[str, Callable[[], Segmenter]] = {}
    notes = dict(BACKEND_NOTES)
    if target.artifact is not None:
        from seglab.deployment.runtime import artifact_segmenter

        name = f"{target.card.format} (file)"
        builders[name] = lambda: artifact_segmenter(target.artifact, target.card)
        backend = FORMATS[target.card.format][2]
        notes[name] = f"{target.artifact.name}: {BACKEND_NOTES[backend]}"
    with tempfile.TemporaryDirectory(prefix="seglab-bench-") as folder:
        for backend in backends:
            if target.model is None:
                result.unavailable[backend] = target.why_no_model
                report(f"{backend}: not available here ({target.why_no_model})")
                continue
            builders[backend] = lambda b=backend: backend_segmenter(
                b, target.model, target.info, Path(folder), calibration_set, (height, width)
            )
        result.results, unavailable = benchmark(builders, images, repeats, evaluate, report, notes)
    result.unavailable.update(unavailable)
    return result


def benchmark_source(
    source: str | os.PathLike | None,
    encoder: str | None,
    classes: int,
    data: str | None,
    report: Callable[[str], None] = print,
) -> BenchmarkSource:
    """The model a benchmark times, its own input size and data (see :func:`benchmark_model`);
    a recorded dataset that cannot be opened here is reported and left out."""
    from seglab.deployment.card import open_model_data

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
        from seglab.data.classes import default_colors
        from seglab.models import build_model

        model = build_model(encoder, classes, encoder_weights=None).eval()
        names = tuple(f"class {i}" for i in range(classes))
        info = DatasetInfo("untrained", names, default_colors(classes))
        return BenchmarkSource(model, info, model.spec, f"untrained U-Net on {encoder}", (360, 480))
    from seglab.deployment.runtime import is_artifact

    if is_artifact(source):
        from seglab.deployment.runtime import read_card, source_model

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
    from seglab.deployment.export import model_input_size
    from seglab.engine.checkpoint import load_model

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
    from seglab.engine.evaluate import evaluate_split

    def miou(segmenter: Segmenter) -> float:
        result = evaluate_split(segmenter, data, "val", limit=limit, progress=False)
        return result.metrics["miou"]

    return miou
