"""Models: the encoder registry, pretrained weights and the U-Net built on them."""

from __future__ import annotations

from typing import Any

# How images are normalised before the encoder: the encoder weights' fixed mean and std, or each
# image's own. Here, torch-free, because the configuration offers them as choices in --help.
INPUT_NORMS = ("dataset", "image")

__all__ = [
    "ENCODERS",
    "INPUT_NORMS",
    "EncoderSpec",
    "ModelSpec",
    "UNet",
    "build_model",
    "get_encoder_spec",
]


def __getattr__(name: str) -> Any:
    # Imported on first use, so torch-free modules of this package (table.py) load at once.
    if name in ("ENCODERS", "EncoderSpec", "get_encoder_spec"):
        from seglab.models import encoders

        return getattr(encoders, name)
    if name in ("ModelSpec", "UNet", "build_model"):
        from seglab.models import unet

        return getattr(unet, name)
    raise AttributeError(f"module 'seglab.models' has no attribute {name!r}")
