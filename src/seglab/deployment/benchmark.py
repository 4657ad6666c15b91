"""How fast a model runs here, backend by backend: latency (median and p90 of repeats),
throughput and peak resident memory; with data, the mIoU each backend gives."""

from __future__ import annotations

import os
import statistics
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from seglab.errors import SeglabError

BACKENDS = ("eager", "channels_last", "bf16", "compile", "onnxruntime", "int8")


@dataclass
class Timing:
    backend: str
    median_ms: float
    p90_ms: float
    images_per_s: float
    peak_rss_mb: float
    miou: float | None = None
    note: str = ""


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


def peak_inference_memory(
    checkpoint: str, size: tuple[int, int], batch: int = 1
) -> tuple[float, float]:
    """(peak, baseline) resident memory in MB of a fresh process that loads ``checkpoint`` and
    runs inference on ``batch`` images of ``size``; the baseline is the same process after its
    imports (PyTorch alone), so peak - baseline is what the model and its activations take."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_load_and_infer, (str(checkpoint), tuple(size), batch))


def _load_and_infer(checkpoint: str, size: tuple[int, int], batch: int) -> tuple[float, float]:
    from seglab.engine.checkpoint import load_model

    baseline = rss_mb()
    with PeakMemory() as memory, torch.inference_mode():
        model, _ = load_model(checkpoint)
        model = model.to(memory_format=torch.channels_last)
        shape = (batch, model.spec.in_channels, *size)
        images = torch.rand(shape).contiguous(memory_format=torch.channels_last)
        for _ in range(2):
            model(images)
    return memory.peak, baseline


def time_it(run: Callable[[], object], repeats: int, warmup: int = 2) -> list[float]:
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return times


def summarize_times(backend: str, times: list[float], batch: int, peak: float) -> Timing:
    median = statistics.median(times)
    p90 = float(np.percentile(times, 90))
    return Timing(backend, 1000 * median, 1000 * p90, batch / median, peak)


def make_runner(backend: str, model: torch.nn.Module, sample: torch.Tensor, calibration=None):
    """A callable ``images -> logits`` for ``backend``, and a note on how it was built."""
    model = model.eval()
    if backend == "eager":
        return _torch_runner(model, None, False), "fp32, default memory format"
    if backend == "channels_last":
        return _torch_runner(model.to(memory_format=torch.channels_last), None, True), "fp32"
    if backend == "bf16":
        cl = model.to(memory_format=torch.channels_last)
        return _torch_runner(cl, torch.bfloat16, True), "bf16 autocast, channels_last"
    if backend == "compile":
        compiled = torch.compile(model.to(memory_format=torch.channels_last))
        return _torch_runner(compiled, None, True), "torch.compile (inductor), channels_last"
    if backend in ("onnxruntime", "int8"):
        return _onnx_runner(backend, model, sample, calibration)
    raise SeglabError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")


def _torch_runner(model, dtype, channels_last):
    @torch.inference_mode()
    def run(images: torch.Tensor) -> torch.Tensor:
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
            return model(images).float()

    return run


def _onnx_runner(backend, model, sample, calibration):
    import onnxruntime as ort

    from seglab.deployment.runtime import OnnxModel

    folder = Path(tempfile.mkdtemp(prefix="seglab-bench-"))
    fp32 = folder / "model.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (sample[:1],),
            str(fp32),
            dynamo=False,
            opset_version=17,
            input_names=["images"],
            output_names=["logits"],
            dynamic_axes={"images": {0: "batch", 2: "height", 3: "width"}},
        )
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if backend == "onnxruntime":
        return OnnxModel(fp32, options), "ONNX Runtime, CPU, fp32"
    path = quantize_int8(fp32, calibration if calibration is not None else sample)
    return OnnxModel(path, options), "ONNX Runtime INT8 (static, per-channel weights, QDQ)"


def quantize_int8(fp32_path: Path, calibration: torch.Tensor) -> Path:
    """Static INT8 quantisation with ONNX Runtime, calibrated on ``calibration`` images."""
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
                [{"images": calibration[i : i + 1].numpy()} for i in range(len(calibration))]
            )

        def get_next(self):
            return next(self.items, None)

    prepared = fp32_path.with_name("model.prep.onnx")
    quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
    out = fp32_path.with_name("model.int8.onnx")
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
    model: torch.nn.Module,
    in_channels: int,
    size: tuple[int, int],
    batch: int = 1,
    backends: tuple[str, ...] = BACKENDS,
    repeats: int = 20,
    evaluate: Callable[[Callable], float] | None = None,
    calibration: torch.Tensor | None = None,
    report: Callable[[str], None] = print,
) -> list[Timing]:
    """Times each backend on random images of ``size``; ``evaluate(runner)`` adds its mIoU."""
    sample = torch.rand(batch, in_channels, *size)
    results = []
    for backend in backends:
        try:
            with PeakMemory() as memory:
                runner, note = make_runner(backend, model, sample, calibration)
                times = time_it(lambda r=runner: r(sample), repeats)
        except SeglabError:
            raise
        except Exception as err:  # a backend this machine cannot run is reported, not fatal
            report(f"{backend}: not available here ({str(err).strip().splitlines()[0][:120]})")
            continue
        timing = summarize_times(backend, times, batch, memory.peak)
        timing.note = note
        if evaluate is not None:
            timing.miou = evaluate(runner)
        results.append(timing)
    return results


def validation_evaluator(
    data: str, classes: list[str], checkpoint: str, limit: int | None = None
) -> tuple[Callable[[Callable], float], torch.Tensor]:
    """A function ``runner -> validation mIoU`` on ``data`` (its first ``limit`` images), and
    calibration images for INT8 quantisation from the same split."""
    from torch.utils.data import Subset

    from seglab.data.dataset import open_data
    from seglab.data.loading import make_loader
    from seglab.engine.evaluate import evaluate

    dataset = open_data(data, progress=False).require_clean(data)
    dataset.require_classes(classes, checkpoint, data)
    val = dataset.split("val")
    if limit:
        val = Subset(val, range(min(limit, len(val))))
    loader = make_loader(val, 1, 0, dataset.info.ignore_index, train=False)
    calibration = torch.stack([val[i][0] for i in range(min(8, len(val)))])
    cpu = torch.device("cpu")
    return (
        lambda runner: evaluate(runner, loader, dataset.info, cpu, progress=False)["miou"]
    ), calibration
