"""What a deployment may cost: a latency and a memory budget, written as a person writes them
(``50ms``, ``0.2s``; ``300MB``, ``1.5GB``). No torch or numpy here: the command line parses
them while it reads its flags."""

from __future__ import annotations

import math
from dataclasses import dataclass

from seglab.errors import SeglabError

LATENCY_UNITS = {"ms": 1.0, "s": 1000.0}  # to milliseconds
MEMORY_UNITS = {"kb": 1 / 1024, "mb": 1.0, "gb": 1024.0}  # to MB (MiB)


@dataclass(frozen=True)
class Budget:
    """Limits on a model x form: median batch-1 latency in ms and memory in MB (what loading
    and running the model adds to a process); None: no limit."""

    latency_ms: float | None = None
    memory_mb: float | None = None

    def __bool__(self) -> bool:
        return self.latency_ms is not None or self.memory_mb is not None

    def describe(self) -> str:
        """e.g. "50 ms and 300 MB"."""
        parts = []
        if self.latency_ms is not None:
            parts.append(f"{self.latency_ms:g} ms")
        if self.memory_mb is not None:
            parts.append(f"{self.memory_mb:g} MB")
        return " and ".join(parts) or "no budget"


NO_BUDGET = Budget()


def parse_quantity(text: str, units: dict[str, float], where: str, example: str) -> float:
    """A positive amount written with one of ``units`` (e.g. "50ms") in the first unit's
    terms; a bare number is taken in the default unit (the one worth 1)."""
    value = str(text).strip().lower().replace(" ", "")
    unit = next((u for u in sorted(units, key=len, reverse=True) if value.endswith(u)), None)
    default = next(u for u, factor in units.items() if factor == 1.0)
    try:
        amount = float(value[: -len(unit)] if unit else value) * units[unit or default]
    except ValueError:
        raise SeglabError(f"{where}: {text!r} is not an amount, e.g. {example}") from None
    if not math.isfinite(amount) or amount <= 0:
        raise SeglabError(f"{where}: {text!r} must be positive")
    return amount


def parse_latency(text: str) -> float:
    """Milliseconds from "50ms", "0.2s" or "50"."""
    return parse_quantity(text, LATENCY_UNITS, "--budget", "50ms or 0.2s")


def parse_memory(text: str) -> float:
    """MB from "300MB", "1.5GB" or "300"."""
    return parse_quantity(text, MEMORY_UNITS, "--memory", "300MB or 1.5GB")
