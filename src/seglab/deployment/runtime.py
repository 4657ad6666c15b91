"""Trained models ready to run from a file: a checkpoint (.pt, PyTorch) or an exported model
(.onnx, ONNX Runtime fp32 or INT8), each a segmenter (seglab.engine.segmenter)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from seglab.data.info import DatasetInfo
from seglab.engine.segmenter import Segmenter, checkpoint_segmenter
from seglab.errors import SeglabError, first_line
from seglab.models.unet import ModelSpec

ONNX_METADATA_KEY = "seglab"


class OnnxSegmenter:
    """An ONNX Runtime session on the CPU as a segmenter: images in [0, 1] (the normalisation is
    inside the graph), logits out. ``kind`` is "onnxruntime" (fp32) or "int8"."""

    device = torch.device("cpu")

    def __init__(
        self, path: str | os.PathLike, info: DatasetInfo, *, name: str = "", kind: str = ""
    ):
        import onnxruntime as ort

        self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.info, self.name = info, name or str(path)
        self.kind = kind or "onnxruntime"

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        array = images.detach().cpu().float().contiguous().numpy()
        return torch.from_numpy(self.session.run(None, {self.input_name: array})[0])

    def __repr__(self) -> str:
        return f"OnnxSegmenter({self.name!r}, {self.kind})"


def read_onnx_metadata(path: str | os.PathLike) -> tuple[DatasetInfo, ModelSpec]:
    """The dataset facts and architecture that seglab's export wrote into an .onnx file."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise SeglabError(f"model {path} does not exist")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as err:  # a damaged or foreign file: whatever onnx raises
        raise SeglabError(f"cannot load ONNX model {path}: {first_line(err)}") from None
    metadata = {p.key: p.value for p in proto.metadata_props}
    if ONNX_METADATA_KEY not in metadata:
        raise SeglabError(f"{path} was not exported by seglab (no class metadata)")
    try:
        meta = json.loads(metadata[ONNX_METADATA_KEY])
        return DatasetInfo.from_dict(meta["dataset"]), ModelSpec.from_dict(meta["model"])
    except (ValueError, KeyError, TypeError) as err:
        raise SeglabError(f"{path}: damaged seglab metadata ({first_line(err)})") from None


def onnx_metadata(info: DatasetInfo, spec: ModelSpec) -> str:
    """The metadata value :func:`read_onnx_metadata` reads back."""
    meta: dict[str, Any] = {
        "dataset": info.to_dict(),
        "model": spec.to_dict(),
        "input": "N x C x H x W float32 images in [0, 1]; normalisation is inside the graph",
    }
    return json.dumps(meta)


def load_segmenter(
    path: str | os.PathLike, device: str = "cpu", *, precision: str = "fp32"
) -> Segmenter:
    """The model in ``path``: a seglab checkpoint (PyTorch on ``device``: "auto", "cpu",
    "cuda", "cuda:N"; fp32 unless ``precision`` says "auto", "bf16" or "fp16") or an .onnx file
    exported by seglab (ONNX Runtime on the CPU). One-line SeglabError for anything else."""
    path = Path(path)
    if path.suffix.lower() != ".onnx":
        return checkpoint_segmenter(path, device, precision=precision)
    if device.startswith("cuda"):
        raise SeglabError(
            f"device {device!r}: an .onnx model runs on the CPU here (ONNX Runtime); use cpu"
        )
    info, _ = read_onnx_metadata(path)
    try:
        return OnnxSegmenter(path, info)
    except Exception as err:  # onnxruntime's own failures (invalid graph, ...)
        raise SeglabError(f"cannot load ONNX model {path}: {first_line(err)}") from None
