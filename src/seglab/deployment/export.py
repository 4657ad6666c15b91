"""Export to ONNX with dynamic batch, height and width; the export checks itself against PyTorch
with ONNX Runtime. The file carries the class names, colours and normalisation as metadata."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from seglab.deployment.runtime import ONNX_METADATA_KEY, OnnxModel
from seglab.engine.checkpoint import load_model
from seglab.errors import SeglabError


def export_onnx(
    checkpoint: str | os.PathLike,
    out: str | os.PathLike,
    sample_size: tuple[int, int] = (256, 320),
    opset: int = 17,
) -> float:
    """Write ``out`` and return the largest |ONNX Runtime - PyTorch| logit difference on a sample
    of a size other than the one traced, so the dynamic axes are exercised too."""
    import onnx

    model, payload = load_model(checkpoint)
    channels = model.spec.in_channels
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    trace_input = torch.rand(1, channels, 64, 96)
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
            dynamic_axes={
                "images": {0: "batch", 2: "height", 3: "width"},
                "logits": {0: "batch", 2: "height", 3: "width"},
            },
        )
    proto = onnx.load(str(out))
    meta = {
        "dataset": payload["dataset"],
        "model": payload["model"],
        "input": "N x C x H x W float32 images in [0, 1]; normalisation is inside the graph",
    }
    entry = proto.metadata_props.add()
    entry.key, entry.value = ONNX_METADATA_KEY, json.dumps(meta)
    onnx.save(proto, str(out))

    sample = torch.rand(2, channels, *sample_size)
    with torch.no_grad():
        expected = model(sample).numpy()
    got = OnnxModel(out)(sample).numpy()
    if got.shape != expected.shape:
        raise SeglabError(f"exported {out} gives shape {got.shape}, PyTorch {expected.shape}")
    return float(np.abs(got - expected).max())
