"""Self-describing checkpoints: the model spec, its weights, the dataset facts (classes,
colours, ignore index), the configuration and the metrics; written atomically, loaded
without running pickled code."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from seglab.data.info import DatasetInfo
from seglab.errors import SeglabError
from seglab.models.unet import ModelSpec, UNet

FORMAT = "seglab-checkpoint"
VERSION = 1


def save_checkpoint(
    path: str | os.PathLike,
    model: UNet,
    info: DatasetInfo,
    config: dict[str, Any],
    metrics: dict[str, Any],
    **extra: Any,
) -> None:
    """Write to a temporary file and rename it over ``path``: a kill while saving never leaves a
    truncated checkpoint, and the previous one stays intact until the new one is complete."""
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "model": model.spec.to_dict(),
        "state_dict": model.state_dict(),
        "dataset": info.to_dict(),
        "config": config,
        "metrics": metrics,
        **extra,
    }
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The checkpoint's contents; ``weights_only`` loading, so a file can hold no code to run."""
    path = Path(path)
    if not path.is_file():
        raise SeglabError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated zip, foreign pickle, ...: all mean "not readable"
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise SeglabError(f"checkpoint {path} is damaged or not a checkpoint ({reason})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise SeglabError(f"{path} is not a seglab checkpoint")
    if payload.get("version", 0) > VERSION:
        raise SeglabError(f"checkpoint {path} needs a newer seglab (format {payload['version']})")
    return payload


def load_model(path: str | os.PathLike) -> tuple[UNet, dict[str, Any]]:
    """The model a checkpoint holds, in eval mode, and the checkpoint's contents."""
    payload = load_checkpoint(path)
    model = UNet(ModelSpec.from_dict(payload["model"]))
    model.load_state_dict(payload["state_dict"])
    return model.eval(), payload
