"""ExecuTorch with the XNNPACK backend, fp32: the model exported by torch.export and lowered for
one input size, 1 x C x H x W (a fixed-size graph; seglab.engine.segmenter.FixedInputSegmenter
fits any image to it). The decoder's nearest upsampling is lowered as its exact equivalent,
copies made by views and a multiplication by ones (seglab.models.unet.CopyUpsample), which
XNNPACK takes and a nearest resize it does not: the whole graph is one XNNPACK partition (the
nearest resize left five portable kernel calls between six). The card is the program's constant
method "seglab_card", a string of a fixed capacity marked by a prefix, so it is found, read and
replaced without a runtime; a card stored in a program states how the program runs (its
"delegation": partitions and portable kernel calls), read from the program."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import mmap
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from seglab.data.info import DatasetInfo
from seglab.deployment.card import FP32_TOLERANCES, DeploymentCard
from seglab.deployment.formats import ArtifactInputs
from seglab.errors import SeglabError, first_line
from seglab.models.unet import UNet, copy_upsampling

TOLERANCES = FP32_TOLERANCES
FIXED_SIZE = True
CALIBRATION_METHOD = None  # fp32: not quantised
CARD_METHOD = "seglab_card"  # a constant method of the program: the card as a string
CARD_PREFIX = b"SEGLAB-CARD\n"  # marks the card's bytes, so it is found without a runtime
CARD_CAPACITY = 1 << 16  # bytes kept for the card (patched in place, padded with spaces)


def write(model: UNet, out: Path, inputs: ArtifactInputs) -> None:
    """``model`` as an ExecuTorch program in ``out``, lowered to XNNPACK for 1 x C x
    ``inputs.size`` images, with room for its card in the constant method "seglab_card"."""
    example = example_input(model, inputs)
    with warnings.catch_warnings(), torch.no_grad(), copy_upsampling(model.eval()):
        warnings.simplefilter("ignore")
        program = torch.export.export(model, (example,))
    out.write_bytes(lower(program))


def example_input(model: UNet, inputs: ArtifactInputs) -> torch.Tensor:
    """An input of the one size the program is lowered for: 1 x C x ``inputs.size``."""
    if inputs.size is None:
        raise SeglabError("an ExecuTorch model is lowered for one input size; give the size")
    return torch.rand(1, model.spec.in_channels, *inputs.size)


def lower(program: torch.export.ExportedProgram) -> bytes:
    """The exported ``program`` lowered to XNNPACK, with room for its card in the constant
    method "seglab_card": the bytes of a .pte file."""
    XnnpackPartitioner, to_edge_transform_and_lower = _exporter()
    placeholder = CARD_PREFIX.decode().ljust(CARD_CAPACITY)  # the card goes here
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lowered = to_edge_transform_and_lower(
            program,
            partitioner=[XnnpackPartitioner()],
            constant_methods={CARD_METHOD: placeholder},
        ).to_executorch()
    return lowered.buffer


class ExecuTorchSegmenter:
    """A .pte program run by ExecuTorch's runtime on the CPU (its XNNPACK delegate). It takes
    exactly 1 x C x ``size`` images; FixedInputSegmenter fits any other."""

    device = torch.device("cpu")

    def __init__(
        self,
        path: str | os.PathLike,
        info: DatasetInfo,
        size: tuple[int, int],
        *,
        name: str = "",
        card: DeploymentCard | None = None,
        kind: str = "executorch",
    ):
        self.kind = kind
        self.program = runtime().load_program(str(path))
        with quiet_stderr():  # the CPU probe's log lines of XNNPACK's initialisation
            self.method = self.program.load_method("forward")
        self.info, self.size, self.name, self.card = info, tuple(size), name or str(path), card

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return self.method.execute([images.detach().cpu().float().contiguous()])[0]

    def __repr__(self) -> str:
        return f"ExecuTorchSegmenter({self.name!r}, {self.size[0]}x{self.size[1]})"


def load(path: Path, card: DeploymentCard) -> ExecuTorchSegmenter:
    if not card.input.fixed or card.input.size is None:
        raise SeglabError(f"{path}: damaged seglab metadata (no fixed input size)")
    return ExecuTorchSegmenter(path, card.info, card.input.size, card=card)


# --- the card inside the program ----------------------------------------------------------------


def read_card_text(path: Path) -> str:
    with open(path, "rb") as f:
        try:
            blob = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:  # an empty file cannot be mapped
            raise SeglabError(f"{path} was not exported by seglab (an empty file)") from None
        with blob:
            start = card_offset(blob, path)
            region = blob[start + len(CARD_PREFIX) : start + CARD_CAPACITY]
    return region.decode("ascii", errors="replace").rstrip()


def write_card_text(path: Path, text: str, out: Path) -> None:
    """``path`` written to ``out`` with the card ``text`` in place of the one it carries, its
    "delegation" read from the program (how it runs is a fact of the program, never stale)."""
    blob = bytearray(path.read_bytes())
    start = card_offset(blob, path)
    card = json.loads(text)
    card["delegation"] = delegation(bytes(blob), path)
    blob[start : start + CARD_CAPACITY] = card_bytes(json.dumps(card), str(path))
    out.write_bytes(blob)


def delegation(program: bytes, path: Path) -> dict[str, Any] | None:
    """How the program's "forward" runs: its delegate calls (``partitions``: graphs each
    backend runs whole), the backends, and the operators left to ExecuTorch's portable kernels
    between them (``portable_calls``, ``portable_operators``). None where the program cannot be
    read (a newer ExecuTorch's layout)."""
    try:
        with quiet_logger("torch.utils._pytree"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # an optional dependency, and ExecuTorch's import logs: read only when asked
            from executorch.exir._serialize._program import deserialize_pte_binary
        plan = next(
            p for p in deserialize_pte_binary(program).program.execution_plan if p.name == "forward"
        )
    except ImportError:  # no ExecuTorch here: the card is stored without it
        return None
    except Exception as err:  # a layout this ExecuTorch does not read
        logging.getLogger(__name__).debug("%s: delegation not read (%s)", path, first_line(err))
        return None
    calls = [type(i.instr_args).__name__ for c in plan.chains for i in c.instructions]
    return {
        "partitions": calls.count("DelegateCall"),
        "backends": sorted({d.id for d in plan.delegates}),
        "portable_calls": calls.count("KernelCall"),
        "portable_operators": sorted({o.name for o in plan.operators}),
    }


def content_sha256(path: Path) -> str:
    """The sha256 of every byte of the program but the card's."""
    digest = hashlib.sha256()
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as blob:
        start = card_offset(blob, path)
        digest.update(blob[:start])
        digest.update(blob[start + CARD_CAPACITY :])
    return digest.hexdigest()


def card_bytes(text: str, where: str) -> bytes:
    """The card's bytes in a .pte file: the prefix, then ``text``, padded to the capacity."""
    data = CARD_PREFIX + text.encode("ascii")
    if len(data) > CARD_CAPACITY:
        raise SeglabError(f"{where}: the card ({len(data)} bytes) exceeds {CARD_CAPACITY}")
    return data.ljust(CARD_CAPACITY, b" ")


def card_offset(blob: bytes | bytearray | mmap.mmap, path: Path) -> int:
    start = blob.find(CARD_PREFIX)
    if start < 0 or blob.find(CARD_PREFIX, start + 1) >= 0:
        raise SeglabError(f"{path} was not exported by seglab (no deployment card)")
    if start + CARD_CAPACITY > len(blob):
        raise SeglabError(f"{path}: damaged seglab metadata (the card is cut short)")
    return start


# --- ExecuTorch itself: an optional dependency --------------------------------------------------


def runtime():
    """ExecuTorch's Python runtime; a one-line SeglabError where it is not installed."""
    try:
        with quiet_logger("torch.utils._pytree"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # its notes on experimental and deprecated APIs
            from executorch.runtime import Runtime  # optional: seglab[executorch]
    except ImportError as err:
        raise SeglabError(
            f"ExecuTorch is not installed here ({first_line(err)}); "
            "pip install 'seglab[executorch]' for .pte models"
        ) from None
    return Runtime.get()


def _exporter():
    """ExecuTorch's XNNPACK partitioner and lowering; a one-line SeglabError without it."""
    try:
        with quiet_logger("torch.utils._pytree"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # its notes on experimental and deprecated APIs
            from executorch.backends.xnnpack.partition.xnnpack_partitioner import (
                XnnpackPartitioner,  # optional: seglab[executorch]
            )
            from executorch.exir import to_edge_transform_and_lower  # optional, as above
    except ImportError as err:
        raise SeglabError(
            f"ExecuTorch is not installed here ({first_line(err)}); "
            "pip install 'seglab[executorch]' to export .pte models"
        ) from None
    return XnnpackPartitioner, to_edge_transform_and_lower


@contextlib.contextmanager
def quiet_logger(name: str) -> Iterator[None]:
    """Warnings of logger ``name`` (torch's notes on ExecuTorch's imports) are not shown."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """What native code writes to the standard error stream while the block runs is dropped."""
    try:
        saved = os.dup(2)
    except OSError:  # no standard error to silence
        yield
        return
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
