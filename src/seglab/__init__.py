"""seglab: train, evaluate and compare U-Net segmentation models on pretrained backbones.

In Python: ``seglab.check(data)``, ``seglab.train(...)``, ``seglab.load(path)``,
``seglab.compare(...)`` (seglab.api),
and the model itself: ``seglab.build_model(...)`` (seglab.models)."""

from __future__ import annotations

from typing import Any

from seglab.errors import SeglabError

__version__ = "0.1.0"
__all__ = [
    "ENCODERS",
    "Comparison",
    "DataCheck",
    "Metrics",
    "Model",
    "ModelSpec",
    "Run",
    "SeglabError",
    "UNet",
    "__version__",
    "build_model",
    "check",
    "compare",
    "load",
    "train",
]
_MODELS = ("ENCODERS", "ModelSpec", "UNet", "build_model")
_API = ("Comparison", "DataCheck", "Metrics", "Model", "Run", "check", "compare", "load", "train")


def __getattr__(name: str) -> Any:
    # The models and the API need torch; importing them on first use keeps `seglab --help` instant.
    if name in _MODELS:
        import seglab.models

        return getattr(seglab.models, name)
    if name in _API:
        import seglab.api

        return getattr(seglab.api, name)
    raise AttributeError(f"module 'seglab' has no attribute {name!r}")
