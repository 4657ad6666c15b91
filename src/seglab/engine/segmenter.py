"""A segmenter: whatever turns a batch of images into class logits, with the dataset facts it
was trained on. Evaluation, prediction, benchmarking and comparison take any segmenter, so a
checkpoint's U-Net in PyTorch (fp32 or autocast, channels-last or not, compiled or not) and an
exported model (ONNX Runtime fp32 or INT8, ExecuTorch; see seglab.deployment.formats) run the
same code. A model that takes one fixed input size runs on any image through
:class:`FixedInputSegmenter`."""

from __future__ import annotations

import os
from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import nn

from seglab.data.info import DatasetInfo
from seglab.engine.checkpoint import Checkpoint, load_model
from seglab.engine.inference import sliding_window
from seglab.engine.performance import autocast, choose_precision, pick_device


@runtime_checkable
class Segmenter(Protocol):
    """``segmenter(images)``: N x C x H x W float images in [0, 1], on ``device``, to
    N x K x H x W float32 logits, on ``device``; K = ``info.num_classes``, C = ``info.in_channels``.
    """

    name: str  # what the user knows it by: a checkpoint or .onnx path, a run name
    kind: str  # how it runs: "torch", "onnxruntime", "int8", "executorch" or "executorch-int8"
    info: DatasetInfo  # classes, colours, input channels, ignore index
    device: torch.device  # where its inputs go and its logits come from

    def __call__(self, images: torch.Tensor) -> torch.Tensor: ...


class TorchSegmenter:
    """A PyTorch module run in eval mode and inference mode, optionally in channels-last memory
    format, under autocast (``autocast_dtype`` bf16 or fp16) and torch.compile'd."""

    kind = "torch"

    def __init__(
        self,
        model: nn.Module,
        info: DatasetInfo,
        *,
        name: str = "model",
        device: torch.device | str | None = None,
        autocast_dtype: torch.dtype | None = None,
        channels_last: bool = False,
        compile: bool = False,
    ):
        if device is None:  # where the model is
            device = next(model.parameters(), torch.empty(0)).device
        self.device = torch.device(device)
        layout = torch.channels_last if channels_last else torch.contiguous_format
        self.module = model.to(self.device, memory_format=layout).eval()
        self.forward = torch.compile(self.module) if compile else self.module
        self.info, self.name = info, name
        self.autocast_dtype, self.channels_last = autocast_dtype, channels_last

    @torch.inference_mode()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if self.module.training:  # a model shared with a training loop: evaluate in eval mode
            self.module.eval()
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with autocast(self.device.type, self.autocast_dtype):
            return self.forward(images).float()

    def __repr__(self) -> str:
        dtype = str(self.autocast_dtype).removeprefix("torch.") if self.autocast_dtype else "fp32"
        layout = ", channels_last" if self.channels_last else ""
        return f"TorchSegmenter({self.name!r}, {self.device}, {dtype}{layout})"


def checkpoint_segmenter(
    checkpoint: Checkpoint | str | os.PathLike,
    device: str | torch.device = "auto",
    *,
    precision: str = "fp32",
    channels_last: bool | None = None,
    name: str | None = None,
) -> TorchSegmenter:
    """The U-Net of a checkpoint (a path, or a loaded :class:`Checkpoint`), run the way its
    training validated it: fp32 and the run's memory format, unless ``precision`` ("auto",
    "bf16", "fp16") or ``channels_last`` say otherwise. ``device``: "auto", "cpu", "cuda:N"."""
    target = device if isinstance(device, torch.device) else pick_device(device)
    if isinstance(checkpoint, Checkpoint):
        model = checkpoint.build_model(name or "checkpoint")
    else:
        name = name or str(checkpoint)
        model, checkpoint = load_model(checkpoint)
    return TorchSegmenter(
        model,
        checkpoint.dataset,
        name=name or checkpoint.spec.encoder,
        device=target,
        autocast_dtype=choose_precision(target, precision).autocast_dtype,
        channels_last=checkpoint.config.channels_last if channels_last is None else channels_last,
    )


class FixedInputSegmenter:
    """A segmenter that takes only 1 x C x ``size`` images (``inner``), run on any batch and
    size: each image padded with its edge values (bottom and right) to at least ``size``, a
    larger one tiled with overlapping windows of ``size``, and the logits cropped back. Every
    other attribute (``info``, ``card``, ...) is the inner segmenter's."""

    def __init__(self, inner: Segmenter, size: tuple[int, int]):
        self.inner, self.size = inner, tuple(size)

    def __getattr__(self, name: str):
        if name == "inner":  # not set yet (a copy being made): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return torch.cat([self._one(image[None]) for image in images])

    def _one(self, image: torch.Tensor) -> torch.Tensor:
        (height, width), (rows, columns) = image.shape[-2:], self.size
        padding = (0, max(0, columns - width), 0, max(0, rows - height))
        padded = F.pad(image, padding, mode="replicate") if any(padding) else image
        if tuple(padded.shape[-2:]) == self.size:
            logits = self.inner(padded)
        else:
            logits = sliding_window(self.inner, padded, self.size)
        return logits[..., :height, :width]

    def __repr__(self) -> str:
        return f"FixedInputSegmenter({self.inner!r})"
