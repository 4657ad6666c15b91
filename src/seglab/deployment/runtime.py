"""A trained model ready to run, from a checkpoint (PyTorch) or an exported .onnx file (ONNX
Runtime), behind one interface: images in, logits out, and the dataset facts it was trained on."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seglab.data.info import DatasetInfo
from seglab.errors import SeglabError

ONNX_METADATA_KEY = "seglab"


@dataclass
class Runtime:
    """``model(images)`` maps N x C x H x W float images in [0, 1] to N x K x H x W logits."""

    model: Any  # a torch.nn.Module, or OnnxModel
    info: DatasetInfo
    source: str
    kind: str  # "torch" | "onnx"

    @property
    def in_channels(self) -> int:
        return self.info.in_channels


class OnnxModel:
    """An ONNX Runtime session called like a torch module."""

    def __init__(self, path: str | os.PathLike, session_options: Any = None):
        import onnxruntime as ort

        self.session = ort.InferenceSession(
            str(path), session_options, providers=["CPUExecutionProvider"]
        )
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        array = images.detach().cpu().float().contiguous().numpy()
        return torch.from_numpy(self.session.run(None, {self.input_name: array})[0])

    def eval(self) -> OnnxModel:
        return self


def load_runtime(path: str | os.PathLike, device: str = "cpu") -> Runtime:
    """A checkpoint (.pt) or an exported model (.onnx)."""
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        if not path.is_file():
            raise SeglabError(f"model {path} does not exist")
        try:
            import onnx

            metadata = {
                p.key: p.value
                for p in onnx.load(str(path), load_external_data=False).metadata_props
            }
            info = DatasetInfo.from_dict(json.loads(metadata[ONNX_METADATA_KEY])["dataset"])
            model = OnnxModel(path)
        except KeyError:
            raise SeglabError(f"{path} was not exported by seglab (no class metadata)") from None
        except Exception as err:
            raise SeglabError(
                f"cannot load ONNX model {path}: {str(err).splitlines()[0]}"
            ) from None
        return Runtime(model, info, str(path), "onnx")
    from seglab.engine.checkpoint import load_model

    model, payload = load_model(path)
    return Runtime(model.to(device), DatasetInfo.from_dict(payload["dataset"]), str(path), "torch")


def palette_png(classes: np.ndarray, info: DatasetInfo):
    """A PIL 'P' image of class indices whose palette holds the class colours (ignored = black),
    so any image viewer shows the colours and any reader gets the indices back."""
    from PIL import Image

    image = Image.fromarray(classes.astype(np.uint8), mode="P")
    palette = np.zeros((256, 3), np.uint8)
    palette[: info.num_classes] = np.array(info.colors, np.uint8)
    image.putpalette(palette.flatten().tolist())
    return image
