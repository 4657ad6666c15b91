"""The machine a figure was measured on: CPU model and the flags that decide inference speed,
cores, threads, the versions of every runtime and how busy other processes kept it. Every latency
seglab records carries it, and a figure taken on a busy machine says so."""

from __future__ import annotations

import os
import platform
import time
from importlib import metadata as package_metadata
from pathlib import Path
from typing import Any

import torch

CPU_FLAGS = (
    "avx2",
    "avx512f",
    "avx512_bf16",
    "avx512_vnni",
    "avx_vnni",
    "amx_bf16",
    "amx_int8",
    "asimd",  # Arm: NEON, dot product, int8 matrix multiply, bf16, SVE
    "asimddp",
    "i8mm",
    "bf16",
    "sve",
)
RUNTIMES = ("torch", "onnxruntime", "executorch")
# Other processes using this share of all cores or more make a timing "busy": two cores shared
# with one other busy process halve what a timing sees.
BUSY_SHARE = 0.25
LOAD_SAMPLE_SECONDS = 0.25


def machine_description() -> dict[str, Any]:
    """The CPU (model name and the flags that decide inference speed), threads and the versions
    of every runtime: what a latency figure needs beside it."""
    name, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and name in ("", platform.machine(), "x86_64"):
                name = value.strip()
            elif key.strip() in ("flags", "Features") and not flags:
                flags = set(value.split())
    except OSError:
        pass
    versions = {"python": platform.python_version()}
    for package in RUNTIMES:
        try:
            versions[package] = package_metadata.version(package)
        except package_metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "cpu": name,
        "architecture": platform.machine(),
        "flags": [f for f in CPU_FLAGS if f in flags],
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "system": platform.system(),
        "versions": versions,
        "load": cpu_load(),
    }


def cpu_load(seconds: float = LOAD_SAMPLE_SECONDS) -> dict[str, float | None]:
    """How busy the machine is apart from this process: the share of all cores other processes
    used over ``seconds`` (from /proc/stat, less this process's own CPU time; None where there
    is no /proc) and the 1-minute load average (which counts this process too)."""
    try:
        load_average = os.getloadavg()[0]
    except OSError:
        load_average = None
    first, own = _cpu_jiffies(), _own_cpu_seconds()
    if first is None:
        return {"others_busy": None, "load_average": load_average}
    time.sleep(seconds)
    second, own_after = _cpu_jiffies(), _own_cpu_seconds()
    busy_seconds = (second[0] - first[0]) / os.sysconf("SC_CLK_TCK")
    total_seconds = (second[1] - first[1]) / os.sysconf("SC_CLK_TCK")
    others = busy_seconds - (own_after - own)
    share = max(0.0, min(1.0, others / total_seconds)) if total_seconds > 0 else 0.0
    return {"others_busy": round(share, 3), "load_average": load_average}


def _cpu_jiffies() -> tuple[int, int] | None:
    """(busy, total) clock ticks of all cores since boot, from /proc/stat."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except (OSError, IndexError):
        return None
    ticks = [int(f) for f in fields[:8]]
    idle = ticks[3] + ticks[4]  # idle and iowait
    return sum(ticks) - idle, sum(ticks)


def _own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def busy_note(machine: dict[str, Any]) -> str | None:
    """A sentence for a figure measured while other processes kept the machine busy (None when
    it was quiet enough, or not recorded): its timings and their ratios may not hold."""
    share = (machine.get("load") or {}).get("others_busy")
    if share is None or share < BUSY_SHARE:
        return None
    return (
        f"the machine was busy: other processes used {100 * share:.0f}% of its "
        f"{machine.get('cores')} cores as this was measured, so its timings (and ratios of them) "
        "may not hold on a quiet machine"
    )


def describe_machine(machine: dict[str, Any]) -> str:
    """One line: CPU, flags, threads, runtime versions, and how busy it was (when recorded)."""
    versions = ", ".join(f"{k} {v}" for k, v in machine.get("versions", {}).items() if v)
    flags = " ".join(machine.get("flags", [])) or "no listed flags"
    share = (machine.get("load") or {}).get("others_busy")
    load = "" if share is None else f"; other processes' CPU use {100 * share:.0f}%"
    busy = " (busy)" if busy_note(machine) else ""
    return (
        f"{machine.get('cpu', '?')} ({flags}), {machine.get('cores')} cores, "
        f"{machine.get('torch_threads')} torch threads; {versions}{load}{busy}"
    )
