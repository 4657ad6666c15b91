"""Self-describing checkpoints: one typed record of a trained model (its architecture, weights,
the dataset facts it was trained on, the configuration, the metrics and, in last.pt, the state
needed to continue training). Written atomically, loaded without running pickled code, and
checked field by field on loading. No other module reads a checkpoint's keys.

A checkpoint outlives the seglab that wrote it: a file of an older format ``version`` is brought
up to date by the MIGRATIONS, one step per version, and config options this seglab does not know
(removed or not yet known) are left out with a CheckpointWarning naming them, so a best.pt stays
loadable after an option goes. Everything else (values, architecture, weights) is checked as
strictly as ever."""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from seglab.config import TrainConfig
from seglab.data.info import DatasetInfo
from seglab.errors import SeglabError, SeglabWarning, first_line
from seglab.models.unet import ModelSpec, UNet
from seglab.models.weights import load_weights_only
from seglab.outputs import write_atomic

FORMAT = "seglab-checkpoint"
VERSION = 2  # of the payload's layout; a change needs a migration from the previous one


class CheckpointWarning(SeglabWarning):
    """A checkpoint loaded without something this seglab no longer knows (e.g. a removed config
    option); the message names the file and what was left out."""


def migrate_1_to_2(payload: dict[str, Any]) -> dict[str, Any]:
    """Format 1, written by ``save_checkpoint`` before the typed Checkpoint (commit cc1f7e5),
    kept what the encoder weights resolved to in a top-level ``encoder_weights`` ("imagenet", a
    weights file, or None for random initialisation), and the ``weights`` option as requested
    ("auto" included) in its config. Format 2 records the outcome as training does since: in
    ``resolved`` (``weights`` and the ``weights_source`` that comparisons print) and in the
    config's ``weights``, so a comparison of set-ups sees what each run really used.

    Otherwise format 1 differs only in what the loader tolerates by itself: early files have no
    ``step`` (0), last.pt's ``training`` holds fewer fields than TrainingState (the others keep
    their defaults), and configs and model specs lack later options (their defaults, which are
    what those runs did)."""
    payload = dict(payload)
    if "encoder_weights" not in payload:
        return payload
    used = payload.pop("encoder_weights")
    config = payload.get("config")
    requested = config.get("weights") if isinstance(config, dict) else None
    if used is None:  # "none", or "auto" where ImageNet weights could not be had
        record = {"weights": "none", "weights_source": "random initialisation"}
        if requested == "auto":
            record["weights_source"] += " (auto: ImageNet weights not available)"
    elif used == "imagenet":
        record = {"weights": "imagenet", "weights_source": "ImageNet weights"}
    else:
        record = {"weights": str(used), "weights_source": f"weights from {used}"}
    payload["resolved"] = record  # format 1 had none
    if isinstance(config, dict):
        payload["config"] = {**config, "weights": record["weights"]}
    return payload


# The migration from each older format to the next; load applies them in order up to VERSION.
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: migrate_1_to_2}


@dataclass
class TrainingState:
    """Where a run stands, enough to continue it exactly: position, clock, the best validation so
    far, and the optimizer, grad-scaler and random-number states."""

    step: int = 0
    epoch: int = 0
    elapsed: float = 0.0  # seconds of the run so far (training, validation and saving)
    best_miou: float = -1.0
    best_metrics: dict[str, Any] = field(default_factory=dict)
    optimizer: dict[str, Any] = field(default_factory=dict)
    scaler: dict[str, Any] = field(default_factory=dict)
    rng: dict[str, Any] = field(default_factory=dict)
    # With a weight average (ema), the checkpoint's weights are the average and these are the
    # weights being trained; ema_updates counts the steps averaged so far.
    trained_weights: dict[str, Any] = field(default_factory=dict)
    ema_updates: int = 0


@dataclass
class Checkpoint:
    spec: ModelSpec
    state_dict: dict[str, torch.Tensor]
    dataset: DatasetInfo
    config: TrainConfig
    metrics: dict[str, Any]  # the validation metrics of these weights ({} before any)
    epoch: int = 0
    step: int = 0
    # What the run resolved: weights file or random init, device, precision and why
    resolved: dict[str, Any] = field(default_factory=dict)
    training: TrainingState | None = None  # last.pt only

    def build_model(self, name: str = "checkpoint") -> UNet:
        """The model, with these weights, in eval mode; ``name`` (its path) names it in the
        one-line error raised when the weights do not fit the architecture it names."""
        model = UNet(self.spec)
        try:
            model.load_state_dict(self.state_dict)
        except RuntimeError as err:
            raise SeglabError(
                f"{name}: weights do not match its model ({first_line(err)})"
            ) from None
        return model.eval()

    def save(self, path: str | os.PathLike) -> None:
        """Write to a temporary file of this process and rename it over ``path``
        (seglab.outputs.write_atomic): a kill while saving never leaves a truncated checkpoint,
        the previous one stays intact until the new one is complete, and two processes never
        share a temporary file. The free space is checked against the checkpoint's size first;
        a full disk is one WriteError line, with the previous file kept and no partial one."""
        payload = {
            "format": FORMAT,
            "version": VERSION,
            "model": self.spec.to_dict(),
            "state_dict": self.state_dict,
            "dataset": self.dataset.to_dict(),
            "config": self.config.to_dict(),
            "metrics": self.metrics,
            "epoch": self.epoch,
            "step": self.step,
            "resolved": self.resolved,
            "training": None if self.training is None else vars(self.training),
        }
        write_atomic(path, lambda f: torch.save(payload, f), _tensor_bytes(payload))

    @classmethod
    def load(cls, path: str | os.PathLike) -> Checkpoint:
        """The checkpoint in ``path``; ``weights_only`` loading, so a file can hold no code to
        run, an older format migrated, and every field checked, so a damaged or foreign file is
        one clear error. Config options this seglab does not know are left out with a
        CheckpointWarning: they no longer change anything a loaded model does."""
        path = Path(path)
        return cls._from_payload(_read(path), path)

    @classmethod
    def load_if_checkpoint(cls, path: str | os.PathLike) -> Checkpoint | None:
        """The checkpoint in ``path`` as :meth:`load` gives it, or None when the file holds
        something else (a plain state dict): for a caller that takes either (``--weights``),
        one read both tells them apart and gives the checkpoint."""
        path = Path(path)
        payload = load_weights_only(path, "a seglab checkpoint or a PyTorch state dict")
        if not _is_checkpoint(payload):
            return None
        return cls._from_payload(_checked_version(payload, path), path)

    @classmethod
    def _from_payload(cls, payload: dict[str, Any], path: Path) -> Checkpoint:
        try:
            payload = _migrate(payload)
            training = payload.get("training")
            config, unknown = _known_options(_mapping(payload["config"], "config"))
            checkpoint = cls(
                spec=ModelSpec.from_dict(payload["model"]),
                state_dict=_state_dict(payload["state_dict"]),
                dataset=DatasetInfo.from_dict(payload["dataset"]),
                config=TrainConfig.from_dict(config, f"{path}: config"),
                metrics=_mapping(payload["metrics"], "metrics"),
                epoch=int(payload.get("epoch", 0)),
                step=int(payload.get("step", 0)),
                resolved=_mapping(payload.get("resolved") or {}, "resolved"),
                training=None if training is None else TrainingState(**training),
            )
        except SeglabError:
            raise
        except KeyError as err:
            raise SeglabError(
                f"{path}: seglab checkpoint without its {err.args[0]!r} field"
            ) from None
        except (TypeError, ValueError, AttributeError) as err:
            raise SeglabError(
                f"{path}: seglab checkpoint with an invalid field ({first_line(err)})"
            ) from None
        if unknown:  # only once the rest has loaded: a refused file is one error, no warning
            warnings.warn(
                f"{path}: config options unknown to this seglab left out: {', '.join(unknown)}",
                CheckpointWarning,
                stacklevel=3,
            )
        return checkpoint


def _tensor_bytes(value: Any) -> int:
    """The bytes of the tensors in ``value`` (nested in dicts, lists and tuples): about the
    size a checkpoint of them takes on disk."""
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, dict):
        return sum(_tensor_bytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_tensor_bytes(v) for v in value)
    return 0


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise SeglabError(f"checkpoint {path} does not exist")
    payload = load_weights_only(path, "a seglab checkpoint")  # no pickled code ever runs
    if not _is_checkpoint(payload):
        raise SeglabError(f"{path} is not a seglab checkpoint")
    return _checked_version(payload, path)


def _is_checkpoint(payload: Any) -> bool:
    return isinstance(payload, dict) and payload.get("format") == FORMAT


def _checked_version(payload: dict[str, Any], path: Path) -> dict[str, Any]:
    """``payload``, when this seglab can read its format version (itself or by migrations)."""
    version = payload.get("version")
    known = isinstance(version, int) and not isinstance(version, bool)
    if known and version > VERSION:
        raise SeglabError(f"checkpoint {path} needs a newer seglab (format {version!r})")
    if not known or (version != VERSION and version not in MIGRATIONS):  # seglab always set one
        raise SeglabError(f"{path}: seglab checkpoint of unknown format version {version!r}")
    return payload


def _migrate(payload: dict[str, Any]) -> dict[str, Any]:
    """``payload`` in today's format: each migration from its version on, in order, so each
    one only knows the format before it and the one after."""
    for old in range(payload["version"], VERSION):
        payload = {**MIGRATIONS[old](payload), "version": old + 1}
    return payload


def _known_options(values: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The config ``values`` of options TrainConfig declares, and the names of the others."""
    declared = {f.name for f in fields(TrainConfig)}
    unknown = sorted(str(k) for k in values if k not in declared)
    return {k: v for k, v in values.items() if k in declared}, unknown


def _mapping(value: Any, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"{name} is {type(value).__name__}, not a mapping")
    return value


def _state_dict(value: Any) -> dict[str, torch.Tensor]:
    if not isinstance(value, dict) or not all(isinstance(v, torch.Tensor) for v in value.values()):
        raise TypeError("state_dict is not a mapping of tensors")
    return value


def load_model(path: str | os.PathLike) -> tuple[UNet, Checkpoint]:
    """The model a checkpoint holds, in eval mode, and the checkpoint."""
    checkpoint = Checkpoint.load(path)
    return checkpoint.build_model(str(path)), checkpoint


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 of a whole file: how a card, or a run fine-tuned from it, names the checkpoint
    it came from."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
