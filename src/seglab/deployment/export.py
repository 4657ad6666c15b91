"""Export to ONNX with dynamic batch, height and width; the export checks itself against PyTorch
with ONNX Runtime. The file carries the class names, colours and architecture as metadata."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch

from seglab.data.info import DatasetInfo
from seglab.deployment.runtime import ONNX_METADATA_KEY, OnnxSegmenter, onnx_metadata
from seglab.engine.checkpoint import load_model
from seglab.errors import SeglabError
from seglab.models.unet import UNet
from seglab.outputs import check_output_file

DYNAMIC_AXES = {
    "images": {0: "batch", 2: "height", 3: "width"},
    "logits": {0: "batch", 2: "height", 3: "width"},
}


def write_onnx(model: UNet, info: DatasetInfo, out: str | os.PathLike, opset: int = 17) -> Path:
    """``model`` as an ONNX graph in ``out``: input "images" (N x C x H x W in [0, 1]), output
    "logits", every N, H and W dynamic, and seglab's metadata (classes, colours, architecture).
    The one ONNX export of seglab."""
    import onnx

    out = Path(out)
    model = model.eval()
    trace_input = torch.rand(1, model.spec.in_channels, 64, 96)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about shape-dependent Python values
        # The TorchScript-based exporter: exact for this model and 10x faster than dynamo here.
        torch.onnx.export(
            model,
            (trace_input,),
            str(out),
            dynamo=False,
            opset_version=opset,
            input_names=["images"],
            output_names=["logits"],
            dynamic_axes=DYNAMIC_AXES,
        )
    proto = onnx.load(str(out))
    entry = proto.metadata_props.add()
    entry.key, entry.value = ONNX_METADATA_KEY, onnx_metadata(info, model.spec)
    onnx.save(proto, str(out))
    return out


def export_onnx(
    checkpoint: str | os.PathLike,
    out: str | os.PathLike,
    sample_size: tuple[int, int] = (256, 320),
    opset: int = 17,
) -> float:
    """Write ``out`` from ``checkpoint`` and return the largest |ONNX Runtime - PyTorch| logit
    difference on a batch of 2 samples of ``sample_size``, a size other than the one traced, so
    the dynamic axes are exercised too. ``out`` is checked writable before any work."""
    out = check_output_file(out, "export: --out")
    model, checkpoint = load_model(checkpoint)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_onnx(model, checkpoint.dataset, out, opset)
    sample = torch.rand(2, model.spec.in_channels, *sample_size)
    with torch.inference_mode():
        expected = model(sample).numpy()
    got = OnnxSegmenter(out, checkpoint.dataset)(sample).numpy()
    if got.shape != expected.shape:
        raise SeglabError(f"exported {out} gives shape {got.shape}, PyTorch {expected.shape}")
    return float(np.abs(got - expected).max())
