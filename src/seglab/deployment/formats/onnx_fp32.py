"""ONNX, fp32: the graph exported by PyTorch's TorchScript-based exporter, run by ONNX Runtime on
the CPU at any batch and size. The card is the metadata entry "seglab" of the model."""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import onnx
import onnxruntime as ort
import torch

from seglab.data.info import DatasetInfo
from seglab.deployment.card import FP32_TOLERANCES, DeploymentCard
from seglab.deployment.formats import ArtifactInputs
from seglab.errors import SeglabError, first_line
from seglab.models.unet import UNet

# fp32 computes what PyTorch computes, up to rounding.
TOLERANCES = FP32_TOLERANCES
FIXED_SIZE = False
CALIBRATION_METHOD = None  # not quantised
METADATA_KEY = "seglab"
OPSET = 17
DYNAMIC_AXES = {
    "images": {0: "batch", 2: "height", 3: "width"},
    "logits": {0: "batch", 2: "height", 3: "width"},
}


def write(model: UNet, out: Path, inputs: ArtifactInputs) -> None:
    """``model`` as an ONNX graph in ``out``: input "images" (N x C x H x W in [0, 1]), output
    "logits", every N, H and W dynamic. The one ONNX export of seglab."""
    trace_input = torch.rand(1, model.spec.in_channels, 64, 96)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about shape-dependent Python values
        # The TorchScript-based exporter: exact for this model and 10x faster than dynamo here.
        torch.onnx.export(
            model.eval(),
            (trace_input,),
            str(out),
            dynamo=False,
            opset_version=OPSET,
            input_names=["images"],
            output_names=["logits"],
            dynamic_axes=DYNAMIC_AXES,
        )


class OnnxSegmenter:
    """An ONNX Runtime session on the CPU as a segmenter: images in [0, 1] (the normalisation is
    inside the graph), logits out. ``kind`` is "onnxruntime" (fp32) or "int8"."""

    device = torch.device("cpu")

    def __init__(
        self,
        path: str | os.PathLike,
        info: DatasetInfo,
        *,
        name: str = "",
        kind: str = "onnxruntime",
        card: DeploymentCard | None = None,
    ):
        self.session = ort.InferenceSession(
            str(path), session_options(), providers=["CPUExecutionProvider"]
        )
        self.input_name = self.session.get_inputs()[0].name
        self.info, self.name, self.kind, self.card = info, name or str(path), kind, card

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        array = images.detach().cpu().float().contiguous().numpy()
        return torch.from_numpy(self.session.run(None, {self.input_name: array})[0])

    def __repr__(self) -> str:
        return f"OnnxSegmenter({self.name!r}, {self.kind})"


def session_options() -> ort.SessionOptions:
    """ONNX Runtime under the process's thread choice: torch's intra-op threads when the
    session opens (set from the free cores by engine.machine.choose_threads, or --threads), so
    a busy machine's choice of fewer threads holds for ONNX Runtime too. Its threads still
    spin-wait between parallel sections (its default): sleeping instead saved 13% of a loaded
    server's CPU but served no more images (docs/benchmarks.md, "Serving at the benchmark's
    throughput")."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    return options


def load(path: Path, card: DeploymentCard) -> OnnxSegmenter:
    return OnnxSegmenter(path, card.info, card=card)


def read_card_text(path: Path) -> str:
    metadata = {p.key: p.value for p in load_proto(path).metadata_props}
    if METADATA_KEY not in metadata:
        raise SeglabError(f"{path} was not exported by seglab (no class metadata)")
    return metadata[METADATA_KEY]


def write_card_text(path: Path, text: str, out: Path) -> None:
    """``path`` saved to ``out`` with the card ``text`` in its metadata (replacing the one it
    carries)."""
    proto = load_proto(path)
    for entry in list(proto.metadata_props):
        if entry.key == METADATA_KEY:
            proto.metadata_props.remove(entry)
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, text
    onnx.save(proto, str(out))


def content_sha256(path: Path) -> str:
    """The sha256 of the graph (its nodes and weights), without the metadata that holds the card."""
    return hashlib.sha256(load_proto(path).graph.SerializeToString()).hexdigest()


def load_proto(path: Path) -> onnx.ModelProto:
    """The ONNX model in ``path``; one-line SeglabError for a damaged or foreign file."""
    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as err:  # a damaged or foreign file: whatever onnx raises
        raise SeglabError(f"cannot load ONNX model {path}: {first_line(err)}") from None
