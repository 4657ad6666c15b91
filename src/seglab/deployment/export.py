"""``seglab export``: a checkpoint written to a file that runs without seglab's training code, in
one of seglab.deployment.formats.FORMATS: ONNX fp32 (dynamic batch, height and width), ONNX static
INT8 (calibrated on training images) or ExecuTorch with the XNNPACK backend (a fixed input size).
Every file carries its deployment card (seglab.deployment.card): what it is, and how it compared
with the PyTorch model on real images and on this machine when it was exported."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from seglab.data.dataset import Data
from seglab.data.info import DatasetInfo
from seglab.deployment.artifacts import (
    CALIBRATION_IMAGES,
    QUALITY_KEYS,
    artifact_segmenter,
    calibration_images,
    content_sha256,
    file_sha256,
    model_input_size,
    pytorch_reference,
    read_card,
    write_artifact,
    write_card,
)
from seglab.deployment.card import DeploymentCard
from seglab.deployment.formats import FORMATS, ArtifactInputs, Format
from seglab.deployment.measure import LATENCY_REPEATS, measure, open_model_data
from seglab.engine.checkpoint import load_model
from seglab.errors import SeglabError, first_line
from seglab.models.unet import UNet
from seglab.outputs import check_output_file, write_text_atomic


@dataclass
class Exported:
    """What :func:`export_artifact` wrote: the model file, its card, and the card's two copies
    beside it (JSON and Markdown)."""

    path: Path
    card: DeploymentCard
    card_json: Path
    card_markdown: Path


def card_files(out: str | os.PathLike) -> tuple[Path, Path]:
    """FILE.card.json and FILE.card.md beside the exported FILE."""
    out = Path(out)
    return out.with_name(f"{out.name}.card.json"), out.with_name(f"{out.name}.card.md")


class Stages:
    """Progress as lines, each with the seconds since the start: '<what>: [  12.3 s] <text>'."""

    def __init__(self, what: str, report: Callable[[str], None]):
        self.what, self.report, self.start = what, report, time.perf_counter()

    def __call__(self, text: str) -> None:
        self.report(f"{self.what}: [{time.perf_counter() - self.start:7.1f} s] {text}")


@dataclass
class ExportJob:
    """One export, resolved before any work: the model and its source, the data it is measured
    on, the input size and what is written where."""

    model: UNet
    info: DatasetInfo  # the checkpoint's: classes, colours, channels
    source: dict[str, Any]  # the checkpoint: path as given, resolved path, sha256, step
    format: Format
    out: Path
    data: Data
    data_name: str
    size: tuple[int, int]
    calibration: dict[str, Any] | None  # INT8: data, split, images, method
    inputs: ArtifactInputs


def export_artifact(
    checkpoint: str | os.PathLike,
    out: str | os.PathLike,
    format: str = "onnx",
    *,
    data: str | None = None,
    split: str = "val",
    limit: int | None = None,
    calibration: int = CALIBRATION_IMAGES,
    size: tuple[int, int] | None = None,
    repeats: int = LATENCY_REPEATS,
    overwrite: bool = False,
    report: Callable[[str], None] = print,
    progress: bool = True,
) -> Exported:
    """``seglab export``: ``checkpoint`` written to ``out`` in ``format`` (one of FORMATS), then
    measured against the PyTorch model on the first ``limit`` images of ``split`` of ``data``
    (default: the dataset it was trained on) and timed at batch 1 at the model's input size
    (``size``, else :func:`model_input_size`), on this machine; INT8 is calibrated on
    ``calibration`` training images. The card goes into the file and beside it. Nothing is
    replaced unless ``overwrite``; every location is checked before any work. Progress lines
    go to ``report``."""
    out = check_export_request(out, format, overwrite, limit, calibration, repeats)
    stage = Stages("export", report)
    job = prepare_export(
        checkpoint, out, FORMATS[format], data, split, size, calibration, stage, progress
    )
    tmp = out.with_name(f".{out.stem}.{os.getpid()}.partial{out.suffix}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        card = write_and_measure(job, tmp, split, limit, repeats, progress, stage)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    card_json, card_markdown = card_files(out)
    write_text_atomic(card_json, json.dumps(card.to_dict(), indent=2))
    write_text_atomic(card_markdown, card.to_markdown(out.name))
    stage(f"wrote {out}, {card_json.name} and {card_markdown.name}")
    return Exported(out, card, card_json, card_markdown)


def check_export_request(
    out: str | os.PathLike,
    format: str,
    overwrite: bool,
    limit: int | None,
    calibration: int,
    repeats: int,
) -> Path:
    """Every option and location checked before any work; ``out`` as a Path."""
    if format not in FORMATS:
        raise SeglabError(f"export: --format {format!r}: choose from {', '.join(FORMATS)}")
    out = check_output_file(out, "export: --out")
    suffix = FORMATS[format].suffix
    if out.suffix.lower() != suffix:
        raise SeglabError(f"export: --out {out}: a {format} model is a {suffix} file")
    for path in (out, *card_files(out)):
        if path.exists() and not overwrite:
            raise SeglabError(f"export: {path} exists; add --overwrite to replace it")
    for option, value in (
        ("--limit", limit),
        ("--calibration", calibration),
        ("--repeats", repeats),
    ):
        if value is not None and value < 1:
            raise SeglabError(f"export: {option} {value} must be at least 1")
    return out


def prepare_export(
    checkpoint: str | os.PathLike,
    out: Path,
    format: Format,
    data: str | None,
    split: str,
    size: tuple[int, int] | None,
    calibration: int,
    stage: Stages,
    progress: bool = True,
) -> ExportJob:
    """The checkpoint loaded, its data opened, the input size chosen and, for a calibrated
    format, the calibration images picked."""
    model, loaded = load_model(checkpoint)
    source = {
        "checkpoint": str(checkpoint),
        "path": str(Path(checkpoint).resolve()),
        "sha256": file_sha256(checkpoint),
        "step": loaded.step,
        # the checkpoint's own verdicts travel with the file, which may go where it cannot
        **{key: loaded.metrics.get(key) for key in QUALITY_KEYS},
    }
    info = loaded.dataset
    stage(f"{checkpoint}: U-Net on {model.spec.encoder}, {info.num_classes} classes")
    data_name = data or loaded.config.data
    dataset = open_model_data(data_name, info, str(checkpoint), given=data is not None)
    size, why = (tuple(size), "--size") if size else model_input_size(loaded, dataset, split)
    stage(f"data {data_name}; input {size[0]}x{size[1]} ({why})")
    method = format.implementation().CALIBRATION_METHOD
    images, calibrated = [], None
    if method:
        images = calibration_images(dataset, calibration)
        calibrated = {"data": data_name, "split": "train", "images": len(images), "method": method}
    inputs = ArtifactInputs(size=size, calibration=images, progress=progress)
    return ExportJob(model, info, source, format, out, dataset, data_name, size, calibrated, inputs)


def write_and_measure(
    job: ExportJob,
    tmp: Path,
    split: str,
    limit: int | None,
    repeats: int,
    progress: bool,
    stage: Stages,
) -> DeploymentCard:
    """The model written to ``tmp``, measured against PyTorch, and its full card stored in it."""
    name = job.format.name
    calibrating = f", calibrated on {len(job.inputs.calibration)} training images"
    stage(f"writing {name} ({job.format.description}){calibrating if job.calibration else ''}")
    try:
        write_artifact(job.model, job.info, name, tmp, job.inputs)
    except SeglabError:
        raise
    except Exception as err:  # the exporter's or quantiser's own failure, in one line
        raise SeglabError(f"export: writing {name} failed: {first_line(err)}") from None
    card = replace(read_card(tmp), source=job.source, calibration=job.calibration)
    stage(
        f"measuring {name} and PyTorch fp32 on {job.data_name} ({split}"
        f"{f', first {limit} images' if limit else ''}), then timing each at batch 1"
    )
    measured = measure(
        artifact_segmenter(tmp, card),
        pytorch_reference(job.model, card.info, card.input),
        job.data,
        job.data_name,
        job.size,
        split=split,
        limit=limit,
        repeats=repeats,
        progress=progress,
    )
    tolerances = job.format.implementation().TOLERANCES
    card = replace(
        card,
        content_sha256=content_sha256(tmp),
        tolerances=tolerances,
        measured=measured,
        failures=tolerances.failures(measured),
    )
    write_card(tmp, card)
    return card
