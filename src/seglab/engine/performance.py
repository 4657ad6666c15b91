"""Choosing how to run fast on the machine at hand (precision, memory format, backend flags), and
measuring how fast and how large it runs: timing with warm-up, latency summaries, resident
memory. Every latency and memory figure of seglab is taken with these."""

from __future__ import annotations

import contextlib
import os
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from seglab.errors import SeglabError


@dataclass(frozen=True)
class Precision:
    name: str  # fp32 | bf16 | fp16
    autocast_dtype: torch.dtype | None
    grad_scaler: bool  # fp16 needs loss scaling
    reason: str


def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX: without them oneDNN emulates bf16, several times slower than fp32."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def choose_precision(device: torch.device, requested: str = "auto") -> Precision:
    if requested == "fp32":
        return Precision("fp32", None, False, "requested")
    if requested == "bf16":
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise SeglabError("bf16 requested but this GPU does not support it; use fp16 or fp32")
        return Precision("bf16", torch.bfloat16, False, "requested")
    if requested == "fp16":
        if device.type != "cuda":
            raise SeglabError("fp16 mixed precision needs a CUDA device; use bf16 or fp32 on CPU")
        return Precision("fp16", torch.float16, True, "requested")
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return Precision("bf16", torch.bfloat16, False, "auto: GPU supports bf16")
        return Precision(
            "fp16", torch.float16, True, "auto: GPU without bf16, fp16 with loss scaling"
        )
    if cpu_has_native_bf16():
        return Precision("bf16", torch.bfloat16, False, "auto: CPU has native bf16")
    return Precision(
        "fp32", None, False, "auto: CPU has no native bf16 (it would be emulated, slower)"
    )


def autocast(device_type: str, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """Mixed precision in ``dtype`` on ``device_type``, or plain fp32 when ``dtype`` is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type, dtype=dtype)


def configure_backends(device: torch.device) -> None:
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SeglabError(f"device {name!r} requested but CUDA is not available on this machine")
    return torch.device(name)


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (a GPU runs asynchronously; a CPU has none queued)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_it(run: Callable[[], object], repeats: int, warmup: int = 2) -> list[float]:
    """Seconds of each of ``repeats`` calls of ``run``, after ``warmup`` untimed ones (first
    calls pay one-off costs: cuDNN's algorithm choice, oneDNN's kernel set-up, allocations)."""
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return times


def time_inference(
    model: Callable[[torch.Tensor], object], images: torch.Tensor, repeats: int, warmup: int = 2
) -> list[float]:
    """Seconds of each of ``repeats`` runs of ``model`` on ``images`` (already where the model
    takes them), waiting for a GPU to finish each."""

    def run() -> None:
        model(images)
        synchronize(images.device)

    return time_it(run, repeats, warmup)


def latency_ms(times: list[float]) -> tuple[float, float]:
    """(median, 90th percentile) of ``times`` (seconds), in milliseconds."""
    return 1000 * statistics.median(times), 1000 * float(np.percentile(times, 90))


def rss_mb(pid: int | str = "self") -> float:
    """A process's resident memory now, this one by default (Linux /proc; elsewhere this
    process's ru_maxrss as a bound)."""
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        if pid != "self":
            raise
        import resource  # Unix only; /proc answers on Linux

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class PeakMemory:
    """Samples resident memory in a background thread while the block runs; ``peak`` in MB."""

    def __enter__(self) -> PeakMemory:
        self.peak, self._stop = rss_mb(), threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, rss_mb())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mb())
