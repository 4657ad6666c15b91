"""The machine a figure was measured on: CPU model and the flags that decide inference speed,
cores, threads and the versions of every runtime. Every latency seglab records carries it."""

from __future__ import annotations

import os
import platform
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
    }


def describe_machine(machine: dict[str, Any]) -> str:
    """One line: CPU, flags, threads, runtime versions."""
    versions = ", ".join(f"{k} {v}" for k, v in machine.get("versions", {}).items() if v)
    flags = " ".join(machine.get("flags", [])) or "no listed flags"
    return (
        f"{machine.get('cpu', '?')} ({flags}), {machine.get('cores')} cores, "
        f"{machine.get('torch_threads')} torch threads; {versions}"
    )
