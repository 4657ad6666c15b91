"""Exported models as files: writing one in any format (the model and its bare card), reading and
replacing the card inside it, and loading any model file to run. :func:`load_segmenter` is the one
loader of a runnable model: a checkpoint (.pt, PyTorch) or an exported file (.onnx, .pte; see
seglab.deployment.formats), each under the input policy its card states. What an artifact is made
from (its input size, the images that calibrate it) is chosen here too, and what is wrong with a
model (:func:`model_warnings`) is said here, so predict and serve say the same."""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seglab import __version__
from seglab.data.dataset import Data
from seglab.data.info import DatasetInfo
from seglab.deployment.card import DeploymentCard, InputPolicy
from seglab.deployment.formats import ArtifactInputs, container, get_format, is_artifact
from seglab.engine.checkpoint import Checkpoint, CheckpointWarning, file_sha256
from seglab.engine.segmenter import (
    FixedInputSegmenter,
    Segmenter,
    TorchSegmenter,
    checkpoint_segmenter,
)
from seglab.errors import SeglabError, first_line
from seglab.models.unet import UNet

CALIBRATION_IMAGES = 32  # training images that calibrate INT8 by default


# --- the card inside a file ---------------------------------------------------------------------


def read_card(path: str | os.PathLike) -> DeploymentCard:
    """The deployment card an exported file carries; one-line SeglabError for a missing,
    damaged or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise SeglabError(f"model {path} does not exist")
    return DeploymentCard.from_json(container(path).read_card_text(path), str(path))


def write_card(path: str | os.PathLike, card: DeploymentCard) -> None:
    """Store ``card`` in the exported file ``path`` (replacing the one it carries), atomically."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        container(path).write_card_text(path, card.to_json(), tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def content_sha256(path: str | os.PathLike) -> str:
    """The sha256 of the model's content in ``path`` without its card (so a changed model is
    detected, and replacing the card changes nothing)."""
    return container(path).content_sha256(Path(path))


# --- writing ------------------------------------------------------------------------------------


def bare_card(
    model: UNet, info: DatasetInfo, format: str, size: tuple[int, int] | None
) -> DeploymentCard:
    """The card of a file before anything is measured: what it is and how it takes images."""
    fixed = get_format(format).implementation().FIXED_SIZE
    return DeploymentCard(
        format=format,
        info=info,
        spec=model.spec,
        input=InputPolicy(tuple(size) if size else None, fixed=fixed),
        normalisation={
            "mean": [round(float(v), 6) for v in model.mean.flatten()],
            "std": [round(float(v), 6) for v in model.std.flatten()],
            "where": "inside the model: it takes images in [0, 1]",
        },
        seglab_version=__version__,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )


def write_artifact(
    model: UNet,
    info: DatasetInfo,
    format: str,
    out: str | os.PathLike,
    inputs: ArtifactInputs,
) -> Path:
    """``model`` written in ``format`` (one of FORMATS) to ``out``, with its bare card, from
    what ``inputs`` give (the size it is meant for, calibration images)."""
    implementation = get_format(format).implementation()
    # A copy in the default memory format: PyTorch backends set the module they share to
    # channels_last, which ExecuTorch's lowering rejects, and the caller's module stays as it is.
    model = copy.deepcopy(model).to(memory_format=torch.contiguous_format).eval()
    out = Path(out)
    implementation.write(model, out, inputs)
    write_card(out, bare_card(model, info, format, inputs.size))
    return out


# --- loading ------------------------------------------------------------------------------------


def fit_input(segmenter: Segmenter, policy: InputPolicy) -> Segmenter:
    """``segmenter`` run under ``policy``: as it is for any size, fitted for a fixed size."""
    return FixedInputSegmenter(segmenter, policy.size) if policy.fixed else segmenter


def artifact_segmenter(path: str | os.PathLike, card: DeploymentCard | None = None) -> Segmenter:
    """The exported model in ``path`` (its ``card``, read from it when not given) as a CPU
    segmenter under its input policy, with ``card`` as an attribute."""
    path = Path(path)
    card = card or read_card(path)
    try:
        segmenter = get_format(card.format).implementation().load(path, card)
    except SeglabError:
        raise
    except Exception as err:  # the runtime's own failures (invalid graph or program, ...)
        raise SeglabError(f"cannot load model {path}: {first_line(err)}") from None
    return fit_input(segmenter, card.input)


def load_segmenter(
    path: str | os.PathLike, device: str = "cpu", *, precision: str = "fp32"
) -> Segmenter:
    """The model in ``path``: a seglab checkpoint (PyTorch on ``device``: "auto", "cpu",
    "cuda", "cuda:N"; fp32 unless ``precision`` says "auto", "bf16" or "fp16") or a file
    exported by seglab (on the CPU, under the input policy its card states; the card is the
    segmenter's ``card``). One-line SeglabError for anything else."""
    path = Path(path)
    if not is_artifact(path):
        return checkpoint_segmenter(path, device, precision=precision)
    if device.startswith("cuda"):
        raise SeglabError(
            f"device {device!r}: an exported {path.suffix} model runs on the CPU here; use cpu"
        )
    return artifact_segmenter(path)


def pytorch_reference(model: torch.nn.Module, info: DatasetInfo, policy: InputPolicy) -> Segmenter:
    """The PyTorch fp32 model an artifact is held against, on the CPU in the default memory
    format (the benchmark's "eager"), run under the artifact's input policy."""
    return fit_input(TorchSegmenter(model, info, name="pytorch fp32", device="cpu"), policy)


# --- what an artifact is made from --------------------------------------------------------------


def model_input_size(
    checkpoint: Checkpoint, data: Data | None, split: str = "val"
) -> tuple[tuple[int, int], str]:
    """The size a model is deployed at, and why: its dataset's commonest ``split`` image size
    (whole images, as it is evaluated), else its training crop size."""
    if data is not None:
        if data.report is not None and split in data.report.splits:
            sizes = data.report.splits[split].image_sizes
            if sizes:
                return sizes.most_common(1)[0][0], f"the commonest {split} image size"
        elif len(data.split(split)):
            return tuple(data.split(split)[0][0].shape[-2:]), f"the {split} images' size"
    if checkpoint.config.crop_size:
        return tuple(checkpoint.config.crop_size), "the training crop size"
    raise SeglabError("no input size: the model's dataset is not here; give --size HxW")


def calibration_images(data: Data, count: int = CALIBRATION_IMAGES) -> list[torch.Tensor]:
    """``count`` training images, evenly spread through the split (consecutive video frames
    would calibrate on one scene)."""
    train = data.split("train")
    if not len(train):
        raise SeglabError("INT8 calibration needs training images; the data has none")
    picks = np.linspace(0, len(train) - 1, num=min(count, len(train))).round().astype(int)
    return [train[int(i)][0] for i in dict.fromkeys(picks.tolist())]


# --- what is wrong with a model -----------------------------------------------------------------

REMEDY = (
    "Train longer (a larger --time-budget or --iterations) or check the labels (seglab data check)"
)
# The keys of a metrics record that say a model is not to be trusted (None: nothing to say).
QUALITY_KEYS = ("degenerate", "undertrained")


def model_warnings(path: str | os.PathLike) -> list[str]:
    """What a person must know before trusting the predictions of the model in ``path``, one
    line each: useless (its metrics record says it is degenerate) or undertrained (the record's
    reason). A checkpoint says it in its metrics record; an exported file's card copied its
    source checkpoint's verdicts at export, and that checkpoint's record speaks for it when it
    is here unchanged (same sha256). Records of an older seglab lack the keys: nothing is
    said."""
    return record_warnings(str(path), metrics_record(Path(path)))


def record_warnings(name: str, metrics: Mapping[str, Any]) -> list[str]:
    """The warnings about model ``name`` that its ``metrics`` record gives (see
    :func:`model_warnings`)."""
    found = []
    reason = metrics.get("degenerate")
    if reason:  # "predicts sky on 99.7% ..." or "mIoU 15.00% is no better than ..."
        subject = "its" if str(reason).startswith("mIoU") else "it"
        found.append(
            f"{name} is a useless model: on its validation images {subject} {reason}; its "
            f"predictions say nothing. {REMEDY}"
        )
    undertrained = metrics.get("undertrained")
    if undertrained:
        found.append(f"{name} is undertrained: {undertrained}")
    return found


def source_checkpoint(card: DeploymentCard) -> Path | None:
    """The checkpoint ``card``'s model was exported from, when it is at the path the card
    records (as given or resolved) and unchanged since (same sha256); else None."""
    if not card.source:
        return None
    recorded = (card.source.get("checkpoint"), card.source.get("path"))
    found = next((Path(p) for p in recorded if p and Path(p).is_file()), None)
    if found is None or file_sha256(found) != card.source.get("sha256"):
        return None
    return found


def metrics_record(path: Path) -> dict[str, Any]:
    """The metrics record that speaks for the model in ``path`` ({} when none does)."""
    if is_artifact(path):
        card = read_card(path)
        source = source_checkpoint(card)
        if source is None:  # the verdicts its card copied at export (none in older files)
            return {key: (card.source or {}).get(key) for key in QUALITY_KEYS}
        path = source
    with warnings.catch_warnings():  # loading the model to run it has said these already
        warnings.simplefilter("ignore", CheckpointWarning)
        return Checkpoint.load(path).metrics
