"""The machine a figure was measured on: CPU model and the flags that decide inference speed,
cores, threads, the versions of every runtime and how busy other processes kept it. Every latency
seglab records carries it, and a figure taken on a busy machine says so."""

from __future__ import annotations

import contextlib
import math
import os
import platform
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata as package_metadata
from pathlib import Path
from typing import Any

import torch

from seglab.config import AUTO

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


# --- threads and loader workers from the cores that are free -----------------------------------

ROLES = ("training", "evaluation", "serving")
# The sample of other processes' CPU use that chooses threads: short, it is taken at every start.
CHOICE_SAMPLE_SECONDS = 0.2


@dataclass(frozen=True)
class Cores:
    """The cores this process may run on, and how many of them other processes keep busy."""

    usable: int
    busy: float = 0.0

    @property
    def free(self) -> int:
        """Usable cores less the busy ones, rounded to the nearest whole core, at least 1."""
        return max(1, min(self.usable, math.floor(self.usable - self.busy + 0.5)))


@dataclass(frozen=True)
class ThreadChoice:
    """Intra-op threads and data-loading workers for one command, and why (one line)."""

    threads: int
    workers: int
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"threads": self.threads, "workers": self.workers, "threads_reason": self.reason}


def usable_cores() -> int:
    """The cores this process may run on (its affinity, as taskset, cgroup cpusets and batch
    schedulers set it), not all the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # no affinity on macOS and Windows
        return os.cpu_count() or 1


def free_cores(load: dict[str, float | None] | None = None, usable: int | None = None) -> Cores:
    """The cores this process may use and how many other processes keep busy (from ``load``,
    cpu_load's, sampled now when None). Other processes' share is of the whole machine, so on
    a machine larger than this process's affinity it is counted on the cores outside it first."""
    usable = usable_cores() if usable is None else usable
    if load is None:
        load = cpu_load(CHOICE_SAMPLE_SECONDS)
    machine = max(os.cpu_count() or usable, usable)
    others = (load.get("others_busy") or 0.0) * machine - (machine - usable)
    return Cores(usable, round(max(0.0, min(float(usable), others)), 2))


def choose_threads(
    role: str,
    cores: Cores,
    *,
    processes: int = 1,
    accelerator: bool = False,
    threads: int | None = None,
    workers: int | None = None,
    given: str = "given",
) -> ThreadChoice:
    """Intra-op threads and data-loading workers for ``role`` (training, evaluation or serving)
    on ``cores``, shared by ``processes`` (DDP on one machine); ``threads`` or ``workers``
    given win over the rule (the reason marks them ``given``), the other chosen around them.

    The rule: threads and workers together never more than the free cores. torch's threads
    wait for each other at every operator, so one held up by another process holds up all: on
    2 cores beside one busy process a 6-step training took 33.8 s on 2 threads and 12.6 s on 1,
    and with the cores busy, 2 threads beside a loader worker took 2.7x as long as 1 thread
    beside one (benchmarks/threads.py). On 2 quiet cores, 2 threads and no loader worker
    trained 14% faster than 1 + 1 and evaluated 37% faster (benchmarks/results/threads.json):
    the loader's work is small beside a step, and a second thread halves the step. So: a loader
    worker for each four free cores (none below 4, at most 4), the rest as threads: 1 or 2
    cores, all threads; 16 cores, 12 + 4. On an
    accelerator the CPU only feeds it: workers on the free cores but one (at most 8), 1 thread.
    Serving decodes in its request threads: no loader workers, a thread per free core."""
    if role not in ROLES:
        raise ValueError(f"role {role!r} is not one of {', '.join(ROLES)}")
    free = max(1, cores.free // max(1, processes))
    if workers is None:
        workers = auto_workers(role, free, accelerator)
        given_workers = False
    else:
        given_workers = True
    if threads is None:
        threads = 1 if accelerator else max(1, free - workers)
        given_threads = False
    else:
        given_threads = True
    where = f"{_count(cores.usable, 'core')}"
    if cores.busy >= 0.05:
        where += f", {cores.busy:.2g} busy with other processes"
    if processes > 1:
        where += f", shared by {processes} processes"
    said = (
        f"{_count(threads, 'thread')}{f' ({given})' if given_threads else ''}, "
        f"{_count(workers, 'loader worker')}{f' ({given})' if given_workers else ''}"
    )
    return ThreadChoice(threads, workers, f"{where}: {said}")


def auto_workers(role: str, free: int, accelerator: bool) -> int:
    """Loader workers on ``free`` cores: see choose_threads."""
    if role == "serving":
        return 0
    if accelerator:
        return min(8, free - 1)
    if free < 2:
        return 0
    return min(4, free // 4)


def _count(n: float, what: str) -> str:
    return f"{n:g} {what}{'' if n == 1 else 's'}"


def resolve_threads(
    role: str,
    threads: int | str = AUTO,
    workers: int | str = AUTO,
    *,
    processes: int = 1,
    accelerator: bool = False,
    given: str = "given",
) -> ThreadChoice:
    """``threads`` and ``workers`` as numbers: either given as "auto" is chosen from the cores
    free now (other processes' use sampled only then)."""
    given_threads = None if threads == AUTO else int(threads)
    given_workers = None if workers == AUTO else int(workers)
    if given_threads is not None and given_workers is not None:
        cores = Cores(usable_cores())  # nothing to choose: no sample of the load
    else:
        cores = free_cores()
    return choose_threads(
        role,
        cores,
        processes=processes,
        accelerator=accelerator,
        threads=given_threads,
        workers=given_workers,
        given=given,
    )


@contextlib.contextmanager
def torch_threads(threads: int | None = None) -> Iterator[None]:
    """torch's intra-op threads set to ``threads`` inside the block (None: as they are), and
    put back after it whatever the block set, so a command run from Python leaves the caller's
    setting as it was."""
    before = torch.get_num_threads()
    if threads is not None and threads != before:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
