"""Measuring a model file on the machine at hand, the same way for every form: its mIoU on a
dataset (``seglab evaluate``, for checkpoints and exported files alike), an artifact's parity with
the PyTorch model it came from and its batch-1 latency (what export writes on the card and verify
re-measures), and the memory of a fresh process that runs it (the comparison's forms)."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seglab.data.dataset import Data, open_data
from seglab.data.info import DatasetInfo
from seglab.deployment.artifacts import file_sha256, load_segmenter
from seglab.deployment.card import DeploymentCard, Measurement
from seglab.deployment.formats import is_artifact
from seglab.engine.checkpoint import Checkpoint, load_model
from seglab.engine.data_record import recorded_data
from seglab.engine.evaluate import EvalOptions, Evaluation, evaluate_split
from seglab.engine.machine import machine_description
from seglab.engine.performance import PeakMemory, latency_ms, rss_mb, time_inference
from seglab.engine.segmenter import Segmenter, checkpoint_segmenter
from seglab.errors import SeglabError

PARITY_IMAGES = 4  # images whose logits are compared element by element
LATENCY_REPEATS = 10


def open_model_data(data: str, info: DatasetInfo, model: str, *, given: bool = True) -> Data:
    """The dataset ``data`` for ``model`` (its name for messages), checked clean and holding its
    classes. When ``data`` was not ``given`` by the user but recorded by the model, a dataset
    that is not here says so and asks for --data."""
    try:
        opened = open_data(data, progress=False).require_clean(data)
        opened.require_classes(list(info.classes), model, data)
        return opened.with_bands(info.in_channels, model, data)
    except SeglabError as err:
        if given:
            raise
        raise SeglabError(
            f"{model} was trained on {data}, which cannot be opened here ({err}); give --data"
        ) from None


# --- mIoU: seglab evaluate ----------------------------------------------------------------------


def evaluate_model(
    path: str | os.PathLike,
    data: str | None = None,
    split: str = "val",
    options: EvalOptions = EvalOptions(),
    *,
    device: str = "auto",
    progress: bool = True,
) -> dict[str, Any]:
    """``seglab evaluate``: the model file ``path`` (a checkpoint, or a file exported by seglab)
    scored on ``split`` of ``data`` (default: the dataset it records), at the original
    resolution, with the test-time augmentation of ``options``. A checkpoint runs as its
    training validated it (fp32, the run's memory format, its batch size unless ``options`` say
    otherwise), so on the machine that trained it, it gives the metrics stored in it; an
    exported file runs on the CPU in batches of 1 unless told otherwise. Returns the metrics
    with an ``evaluation`` entry saying what was done."""
    if options.batch_size is not None and options.batch_size < 1:
        raise SeglabError(f"evaluate: --batch-size {options.batch_size} must be at least 1")
    artifact = is_artifact(path)
    if artifact:
        segmenter = load_segmenter(path, "cpu" if device == "auto" else device)
        card: DeploymentCard = segmenter.card
        recorded, batch_size = (card.measured.data if card.measured else None), 1
    else:  # the record too: the dataset it names and the batch size it validated with
        checkpoint = Checkpoint.load(path)
        segmenter = checkpoint_segmenter(checkpoint, device, name=str(path))
        recorded, batch_size = checkpoint.config.data, checkpoint.config.batch_size
        if data is None:  # the data it was trained on: still there, and the same files
            recorded = recorded_data(checkpoint.config.data, checkpoint.resolved, str(path))
    data_name = data or recorded
    if not data_name:
        raise SeglabError(f"evaluate: {path} does not record its dataset; give --data")
    dataset = open_model_data(data_name, segmenter.info, str(path), given=bool(data))
    if options.batch_size is None:
        options = replace(options, batch_size=batch_size)
    result = evaluate_split(segmenter, dataset, split, options, progress=progress)
    what = {"checkpoint": str(path), "data": data_name, "split": split, **options.to_dict()}
    what["device"] = str(segmenter.device)
    if result.threads is not None:  # the numbers used, "auto" resolved, and why
        what.update(result.threads.to_dict())
    if artifact:
        what["format"] = card.format
    return {**result.metrics, "evaluation": what}


# --- parity and latency: export and verify ------------------------------------------------------


def time_segmenter(
    segmenter: Segmenter, images: torch.Tensor, repeats: int, warmup: int = 2
) -> list[float]:
    """Seconds of each of ``repeats`` runs of ``segmenter`` on ``images``."""
    return time_inference(segmenter, images.to(segmenter.device), repeats, warmup)


def source_model(card: DeploymentCard) -> tuple[torch.nn.Module | None, str]:
    """The PyTorch model an artifact was exported from, when its checkpoint is at the path the
    card records and unchanged (same sha256); else None and why not."""
    if not card.source:
        return None, "the card names no source checkpoint"
    recorded = card.source["checkpoint"]
    found = next(
        (Path(p) for p in (recorded, card.source.get("path")) if p and Path(p).is_file()), None
    )
    if found is None:
        return None, f"its source checkpoint {recorded} is not here"
    if file_sha256(found) != card.source["sha256"]:
        return None, f"its source checkpoint {found} has changed since the export (sha256)"
    return load_model(found)[0], ""


def measure(
    artifact: Segmenter,
    reference: Segmenter | None,
    data: Data,
    data_name: str,
    size: tuple[int, int],
    *,
    split: str = "val",
    limit: int | None = None,
    repeats: int = LATENCY_REPEATS,
    progress: bool = True,
) -> Measurement:
    """``artifact`` measured on the first ``limit`` images of ``split`` of ``data`` (named
    ``data_name``) and timed at batch 1 on random images of ``size``; with ``reference`` (PyTorch
    fp32, run under the same input policy) its figures and the parity of the two beside. The
    one measurement of export and verify."""

    def evaluate(segmenter: Segmenter) -> Evaluation:
        per_image = reference is not None
        return evaluate_split(
            segmenter, data, split, limit=limit, progress=progress, per_image=per_image
        )

    scored = evaluate(artifact)
    images = min(limit or len(data.split(split)), len(data.split(split)))
    sample = torch.rand(1, artifact.info.in_channels, *size)
    median, p90 = latency_ms(time_segmenter(artifact, sample, repeats))
    result = Measurement(
        data=data_name,
        split=split,
        images=images,
        size=tuple(size),
        miou=scored.metrics["miou"],
        latency_ms=median,
        latency_p90_ms=p90,
        repeats=repeats,
        machine=machine_description(),
    )
    if reference is None:
        return result
    expected = evaluate(reference)
    result.miou_pytorch = expected.metrics["miou"]
    result.changed_pixels_percent = changed_pixels_percent(scored, expected, artifact.info)
    result.parity_images = min(PARITY_IMAGES, images)
    result.max_logit_diff = largest_logit_difference(
        artifact, reference, data, split, result.parity_images
    )
    result.pytorch_latency_ms = latency_ms(time_segmenter(reference, sample, repeats))[0]
    return result


def changed_pixels_percent(got: Evaluation, want: Evaluation, info: DatasetInfo) -> float:
    """Percent of the scored pixels whose class differs between two per-image evaluations."""
    changed = total = 0
    for a, b in zip(got.predictions, want.predictions):
        counted = b != info.ignore_index  # the scored pixels (the same in both)
        changed += int(np.count_nonzero((a != b) & counted))
        total += int(np.count_nonzero(counted))
    return 100 * changed / max(total, 1)


def largest_logit_difference(
    artifact: Segmenter, reference: Segmenter, data: Data, split: str, images: int
) -> float:
    """The largest absolute difference of the two models' logits on the first ``images``."""
    dataset, largest = data.split(split), 0.0
    for i in range(images):
        image = dataset[i][0][None]
        difference = (artifact(image).cpu() - reference(image).cpu()).abs().max()
        largest = max(largest, float(difference))
    return largest


# --- memory: the comparison's forms -------------------------------------------------------------


def peak_inference_memory(
    path: str | os.PathLike, size: tuple[int, int], batch: int = 1, precision: str = "auto"
) -> tuple[float, float]:
    """(peak, baseline) resident memory in MB of a fresh process that loads the model file
    ``path`` on the CPU (``precision``) and runs it twice on ``batch`` images of ``size``; the
    baseline is the same process after its imports (PyTorch alone), so peak - baseline is what
    the model and its activations take."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_load_and_infer, (str(path), tuple(size), batch, precision))


def peak_inference_memories(
    paths: Sequence[str | os.PathLike],
    size: tuple[int, int],
    batch: int = 1,
    precision: str = "auto",
    at_once: int = 2,
) -> list[tuple[float, float]]:
    """:func:`peak_inference_memory` of each model file in ``paths``, in order, ``at_once``
    fresh processes side by side: a process's resident memory is its own, so the figures are
    those of one process at a time, and most of the wait (their imports) is shared."""

    def one(path: str | os.PathLike) -> tuple[float, float]:
        return peak_inference_memory(path, size, batch, precision)

    with ThreadPoolExecutor(at_once) as threads:
        return list(threads.map(one, paths))


def _load_and_infer(
    path: str, size: tuple[int, int], batch: int, precision: str
) -> tuple[float, float]:
    baseline = rss_mb()
    with PeakMemory() as memory:
        segmenter = load_segmenter(path, "cpu", precision=precision)
        images = torch.rand(batch, segmenter.info.in_channels, *size)
        for _ in range(2):
            segmenter(images)
    return memory.peak, baseline
