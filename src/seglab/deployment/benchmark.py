"""How fast a model runs here, backend by backend: latency (median and p90 of repeats),
throughput and peak resident memory; with data, the mIoU each backend gives. Every backend is a
segmenter (seglab.engine.segmenter), so each is timed and evaluated by the same code."""

from __future__ import annotations

import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seglab.data.info import DatasetInfo
from seglab.deployment.backends import BACKEND_NOTES, BACKENDS, TORCH_BACKENDS
from seglab.engine.segmenter import Segmenter, TorchSegmenter
from seglab.errors import SeglabError, first_line
from seglab.models.unet import ModelSpec, UNet


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
        """(header, rows) of the table printed for a person (mIoU in percent)."""
        header = (
            "backend",
            "median ms",
            "p90 ms",
            "images/s",
            "GFLOP/s",
            "peak RSS MB",
            "mIoU",
            "how",
        )
        rows = [
            (
                r.backend,
                f"{r.median_ms:.1f}",
                f"{r.p90_ms:.1f}",
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


def rss_mb() -> float:
    """This process's resident memory now (Linux /proc; elsewhere ru_maxrss as a bound)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
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


def time_it(run: Callable[[], object], repeats: int, warmup: int = 2) -> list[float]:
    """Seconds of each of ``repeats`` calls of ``run``, after ``warmup`` untimed ones."""
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return times


def time_segmenter(
    segmenter: Segmenter, images: torch.Tensor, repeats: int, warmup: int = 2
) -> list[float]:
    """Seconds of each of ``repeats`` runs of ``segmenter`` on ``images`` (waiting for the GPU
    to finish, on a GPU)."""
    images = images.to(segmenter.device)
    sync = torch.cuda.synchronize if segmenter.device.type == "cuda" else (lambda: None)

    def run() -> None:
        segmenter(images)
        sync()

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


def backend_segmenter(
    backend: str,
    model: UNet | None,
    info: DatasetInfo,
    folder: Path,
    onnx_file: Path | None = None,
    calibration: Sequence[torch.Tensor] = (),
) -> Segmenter:
    """``backend`` (one of BACKENDS) as a segmenter on the CPU. PyTorch backends run ``model``
    (the same module, set to each backend's memory format); ONNX Runtime ones run
    ``onnx_file``, or ``model`` exported into ``folder``; INT8 is calibrated on the
    ``calibration`` images (random ones of 64x96 when none are given)."""
    if backend not in BACKENDS:
        raise SeglabError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    if backend in TORCH_BACKENDS:
        if model is None:
            raise SeglabError(f"backend {backend} needs a checkpoint, not an .onnx file")
        return TorchSegmenter(
            model,
            info,
            name=backend,
            device="cpu",
            autocast_dtype=torch.bfloat16 if backend == "bf16" else None,
            channels_last=backend != "eager",
            compile=backend == "compile",
        )
    from seglab.deployment.runtime import OnnxSegmenter

    fp32 = onnx_file or folder / "model.onnx"
    if not fp32.is_file():
        from seglab.deployment.export import write_onnx

        write_onnx(model, info, fp32)
    if backend == "onnxruntime":
        return OnnxSegmenter(fp32, info, name=backend, kind="onnxruntime")
    if not calibration:
        calibration = [torch.rand(1, info.in_channels, 64, 96) for _ in range(4)]
    int8 = quantize_int8(fp32, calibration, folder / "model.int8.onnx")
    return OnnxSegmenter(int8, info, name=backend, kind="int8")


def quantize_int8(fp32_path: Path, calibration: Sequence[torch.Tensor], out: Path) -> Path:
    """Static INT8 quantisation with ONNX Runtime (QDQ, per-channel weights), calibrated on the
    ``calibration`` images (each 1 x C x H x W, or C x H x W); writes ``out`` (and a prepared
    copy beside it)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter(
                {"images": image.reshape(1, *image.shape[-3:]).float().numpy()}
                for image in calibration
            )

        def get_next(self):
            return next(self.items, None)

    prepared = out.with_name(f"{out.stem}.prep.onnx")
    quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
    quantize_static(
        str(prepared),
        str(out),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
    )
    return out


def benchmark(
    segmenters: Mapping[str, Callable[[], Segmenter]],
    images: torch.Tensor,
    repeats: int = 20,
    evaluate: Callable[[Segmenter], float] | None = None,
    report: Callable[[str], None] = print,
) -> tuple[list[Timing], dict[str, str]]:
    """Builds and times each segmenter (name -> a function that builds it) on ``images``;
    ``evaluate(segmenter)`` adds its mIoU. A segmenter that cannot be built or run here is
    reported and skipped. Returns the timings and {name: why} of the skipped ones."""
    results, unavailable = [], {}
    for name, build in segmenters.items():
        try:
            with PeakMemory() as memory:
                segmenter = build()
                times = time_segmenter(segmenter, images, repeats)
        except SeglabError:
            raise
        except Exception as err:  # a backend this machine cannot run is reported, not fatal
            unavailable[name] = first_line(err)[:160]
            report(f"{name}: not available here ({unavailable[name]})")
            continue
        timing = summarize_times(name, times, images.shape[0], memory.peak)
        timing.note = BACKEND_NOTES.get(name, segmenter.kind)
        if evaluate is not None:
            timing.miou = evaluate(segmenter)
        results.append(timing)
        del segmenter
    return results, unavailable


def benchmark_model(
    source: str | os.PathLike | None = None,
    *,
    encoder: str | None = None,
    classes: int = 12,
    size: tuple[int, int] = (360, 480),
    batch: int = 1,
    backends: Sequence[str] = BACKENDS,
    repeats: int = 20,
    data: str | None = None,
    limit: int | None = None,
    report: Callable[[str], None] = print,
) -> BenchmarkResult:
    """``seglab benchmark``: times ``backends`` on the CPU on random images of ``size``, for
    ``source`` (a checkpoint, or an .onnx file exported by seglab: its ONNX Runtime backends
    only) or an untrained U-Net on ``encoder`` with ``classes`` classes. With ``data`` (a
    checkpoint or .onnx only), each backend's mIoU on its validation split (the first ``limit``
    images), whose images also calibrate INT8. Prints the headline, and each backend that
    cannot run here, through ``report``."""
    from seglab.models.complexity import forward_gflops

    backends = tuple(dict.fromkeys(backends))
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown or not backends:
        raise SeglabError(
            f"benchmark: --backends {','.join(backends)!r}: choose from {', '.join(BACKENDS)}"
        )
    for option, value in (("--batch", batch), ("--repeats", repeats), ("--limit", limit)):
        if value is not None and value < 1:
            raise SeglabError(f"benchmark: {option} {value} must be at least 1")
    if (source is None) == (encoder is None):
        raise SeglabError("benchmark: give either a checkpoint (or .onnx file) or an encoder")
    if data and source is None:
        raise SeglabError(
            "benchmark: --data needs --checkpoint: an untrained model has no mIoU to compare"
        )
    model, onnx_file, info, spec, label = _benchmark_source(source, encoder, classes)
    if onnx_file is not None:
        backends = tuple(b for b in backends if b not in TORCH_BACKENDS)
        if not backends:
            raise SeglabError(
                f"benchmark: {source} is an .onnx file; its backends are onnxruntime and int8"
            )
    height, width = size
    counted = model if model is not None else UNet(spec)  # FLOPs need no trained weights
    result = BenchmarkResult(
        label,
        (height, width),
        batch,
        forward_gflops(counted, height, width, info.in_channels),
        torch.get_num_threads(),
    )
    evaluate, calibration = None, []
    if data:
        evaluate, calibration = _validation(data, info, str(source), limit)
    report(result.headline())
    images = torch.rand(batch, info.in_channels, height, width)
    calibration = calibration or list(images)  # without data, INT8 sees the timed images
    with tempfile.TemporaryDirectory(prefix="seglab-bench-") as folder:
        builders = {
            backend: (
                lambda b=backend: backend_segmenter(
                    b, model, info, Path(folder), onnx_file, calibration
                )
            )
            for backend in backends
        }
        result.results, result.unavailable = benchmark(builders, images, repeats, evaluate, report)
    return result


def _benchmark_source(
    source: str | os.PathLike | None, encoder: str | None, classes: int
) -> tuple[UNet | None, Path | None, DatasetInfo, ModelSpec, str]:
    """(PyTorch model or None, .onnx file or None, dataset facts, architecture, label)."""
    if source is not None and Path(source).suffix.lower() == ".onnx":
        from seglab.deployment.runtime import read_onnx_metadata

        info, spec = read_onnx_metadata(source)
        return None, Path(source), info, spec, f"{source} ({spec.encoder}, ONNX)"
    if source is not None:
        from seglab.engine.checkpoint import load_model

        model, checkpoint = load_model(source)
        return model, None, checkpoint.dataset, model.spec, f"{source} ({model.spec.encoder})"
    from seglab.data.classes import default_colors
    from seglab.models import build_model

    model = build_model(encoder, classes, encoder_weights=None).eval()
    names = tuple(f"class {i}" for i in range(classes))
    info = DatasetInfo("untrained", names, default_colors(classes))
    return model, None, info, model.spec, f"untrained U-Net on {encoder}"


def _validation(
    data: str, info: DatasetInfo, source: str, limit: int | None
) -> tuple[Callable[[Segmenter], float], list[torch.Tensor]]:
    """A function ``segmenter -> validation mIoU`` on ``data`` (its first ``limit`` images),
    and calibration images for INT8 from the same split."""
    from seglab.engine.evaluate import evaluate_split, open_data_for

    dataset = open_data_for(data, info.classes, source, progress=False)
    val = dataset.split("val")
    calibration = [val[i][0] for i in range(min(8, len(val)))]

    def miou(segmenter: Segmenter) -> float:
        result = evaluate_split(segmenter, dataset, "val", limit=limit, progress=False)
        return result.metrics["miou"]

    return miou, calibration
