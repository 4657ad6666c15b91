"""The export formats, by name: what ``seglab export --format`` writes and every deployment command
runs. An entry says what a format is (file suffix, description, the benchmark backend that runs
it); its module does the work, with the same five names in each:

- ``write(model, out, inputs)``: the model (a seglab.models.unet.UNet) written to ``out``, no card;
- ``load(path, card)``: the file as a CPU segmenter (seglab.engine.segmenter), before the input
  policy of its card is applied;
- ``read_card_text(path)``, ``write_card_text(path, text)``: the deployment card inside the file;
- ``content_sha256(path)``: the hash of the model's content without its card;

and three constants: ``TOLERANCES`` (seglab.deployment.card.Tolerances: how far it may be from
PyTorch fp32), ``FIXED_SIZE`` (whether it takes one input size only) and ``CALIBRATION_METHOD``
(how training images calibrate it, recorded on its card; None for a format not quantised). A new
format is one module and one entry here. No torch in this file: ``seglab --help`` reads it at
once."""

from __future__ import annotations

import importlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from seglab.errors import SeglabError

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Format:
    """One export format: its ``name`` (``--format``), file ``suffix``, what it is, the benchmark
    ``backend`` that runs the same thing and how that backend runs (``backend_note``), the file
    name the benchmark and the comparison give it, and the ``module`` that implements it."""

    name: str
    suffix: str
    description: str
    backend: str
    backend_note: str
    file_name: str
    module: str

    def implementation(self) -> ModuleType:
        # Imported on use: the registry is read by `seglab --help`, which must not wait for
        # torch, ONNX or ExecuTorch to import.
        return importlib.import_module(self.module)


FORMATS = {
    f.name: f
    for f in (
        Format(
            "onnx",
            ".onnx",
            "ONNX Runtime fp32, any input size",
            "onnxruntime",
            "ONNX Runtime, CPU, fp32",
            "model.onnx",
            "seglab.deployment.formats.onnx_fp32",
        ),
        Format(
            "onnx-int8",
            ".onnx",
            "ONNX Runtime static INT8 (QDQ, per-channel weights) calibrated on training images, "
            "any input size",
            "int8",
            "ONNX Runtime INT8 (static, per-channel weights, QDQ)",
            "model.int8.onnx",
            "seglab.deployment.formats.onnx_int8",
        ),
        Format(
            "executorch",
            ".pte",
            "ExecuTorch with the XNNPACK backend, fp32, a fixed input size (other sizes padded, "
            "larger ones tiled)",
            "executorch",
            "ExecuTorch, XNNPACK, fp32, fixed input size",
            "model.pte",
            "seglab.deployment.formats.executorch_xnnpack",
        ),
        Format(
            "executorch-int8",
            ".pte",
            "ExecuTorch with the XNNPACK backend, static INT8 (PT2E, per-channel weights) "
            "calibrated on training images, a fixed input size (other sizes padded, larger ones "
            "tiled)",
            "executorch-int8",
            "ExecuTorch, XNNPACK, static INT8 (PT2E, per-channel weights), fixed input size",
            "model.int8.pte",
            "seglab.deployment.formats.executorch_int8",
        ),
    )
}
ARTIFACT_SUFFIXES = tuple(dict.fromkeys(f.suffix for f in FORMATS.values()))


@dataclass(frozen=True)
class ArtifactInputs:
    """What a format's ``write`` may need beside the model: the input ``size`` it is meant for
    (a fixed-size format is lowered for it), the training images (``calibration``) that
    calibrate a quantised format, and an fp32 ONNX graph of the same model already written
    (INT8 starts from it rather than exporting again)."""

    size: tuple[int, int] | None = None
    calibration: Sequence[torch.Tensor] = ()
    onnx_fp32: Path | None = None
    progress: bool = False


def get_format(name: str) -> Format:
    """The format called ``name``; one-line SeglabError naming the choices otherwise."""
    if name not in FORMATS:
        raise SeglabError(f"unknown format {name!r}; choose from {', '.join(FORMATS)}")
    return FORMATS[name]


def is_artifact(path: str | os.PathLike) -> bool:
    """Whether ``path`` names an exported model (by its suffix) rather than a checkpoint."""
    return Path(path).suffix.lower() in ARTIFACT_SUFFIXES


def container(path: str | os.PathLike) -> ModuleType:
    """The module that reads and writes the card of the exported file ``path``, by its suffix.
    Formats that share a suffix share how the card is stored (the card then says which format
    the file is)."""
    suffix = Path(path).suffix.lower()
    found = next((f for f in FORMATS.values() if f.suffix == suffix), None)
    if found is None:
        raise SeglabError(f"{path} is not an exported model ({', '.join(ARTIFACT_SUFFIXES)})")
    return found.implementation()
