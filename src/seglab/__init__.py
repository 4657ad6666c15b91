"""seglab: train, evaluate and compare U-Net segmentation models on pretrained backbones."""

from __future__ import annotations

from typing import Any

from seglab.errors import SeglabError

__version__ = "0.1.0"
__all__ = ["ENCODERS", "ModelSpec", "SeglabError", "UNet", "__version__", "build_model"]


def __getattr__(name: str) -> Any:
    # The models need torch; importing them on first use keeps `seglab --help` instant.
    if name in ("ENCODERS", "ModelSpec", "UNet", "build_model"):
        import seglab.models

        return getattr(seglab.models, name)
    raise AttributeError(f"module 'seglab' has no attribute {name!r}")
