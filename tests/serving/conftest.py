"""Served models for the serving tests: the two tiny trained runs (tests/conftest.py), loaded
once, and stand-ins that block on an event, to hold the worker busy at will."""

from __future__ import annotations

import io
import threading

import numpy as np
import pytest
import torch
from PIL import Image

from seglab.data.synthetic import INFO
from seglab.serving.models import ServedModel, load_models


@pytest.fixture(scope="module")
def served(tiny_runs) -> list[ServedModel]:
    """The MobileNetV2 run (the default) and the VGG19 run, named after their folders."""
    return load_models([str(tiny_runs["mobilenet_v2"]), str(tiny_runs["vgg19"] / "best.pt")])


def png_bytes(height: int = 48, width: int = 64, seed: int = 0, mode: str = "RGB") -> bytes:
    rng = np.random.default_rng(seed)
    channels = 3 if mode == "RGB" else 1
    pixels = rng.integers(0, 256, (height, width, channels), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels, mode).save(buffer, "PNG")
    return buffer.getvalue()


class GatedSegmenter:
    """Constant logits once ``gate`` is set; ``entered`` is set when a batch arrives, and each
    batch's size is recorded. A ``card`` may be attached as an artifact's would be."""

    kind, name, info, device = "stand-in", "gated", INFO, torch.device("cpu")

    def __init__(self, card: dict | None = None):
        self.gate, self.entered = threading.Event(), threading.Event()
        self.batches: list[int] = []
        if card is not None:
            self.card = card

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        self.entered.set()
        assert self.gate.wait(30), "the test never opened the gate"
        self.batches.append(images.shape[0])
        logits = torch.zeros(images.shape[0], INFO.num_classes, *images.shape[-2:])
        logits[:, 2] = 1  # every pixel: class 2
        return logits


def gated(name: str = "gated", open_: bool = True, card: dict | None = None) -> ServedModel:
    segmenter = GatedSegmenter(card)
    if open_:
        segmenter.gate.set()
    return ServedModel(name, segmenter)
