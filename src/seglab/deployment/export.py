"""Exporting a checkpoint to a file that runs without seglab's training code, in one of FORMATS
(seglab.deployment.backends): ONNX fp32 (dynamic batch, height and width), ONNX static INT8
(calibrated on training images) or ExecuTorch with the XNNPACK backend (a fixed input size).
Every file carries its deployment card (seglab.deployment.card): what it is, and how it compared
with the PyTorch model on real images and on this machine when it was exported."""

from __future__ import annotations

import copy
import json
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from seglab import __version__
from seglab.data.dataset import Data
from seglab.data.info import DatasetInfo
from seglab.deployment.backends import FORMATS
from seglab.deployment.card import (
    LATENCY_REPEATS,
    TOLERANCES,
    DeploymentCard,
    InputPolicy,
    file_sha256,
    measure,
    open_model_data,
)
from seglab.deployment.runtime import (
    PTE_CARD_CAPACITY,
    PTE_CARD_METHOD,
    PTE_CARD_PREFIX,
    artifact_segmenter,
    content_sha256,
    pytorch_reference,
    quiet_logger,
    read_card,
    write_card,
)
from seglab.engine.checkpoint import Checkpoint, load_model
from seglab.errors import SeglabError, first_line
from seglab.models.unet import UNet
from seglab.outputs import check_output_file

CALIBRATION_IMAGES = 32  # training images that calibrate INT8 by default
DYNAMIC_AXES = {
    "images": {0: "batch", 2: "height", 3: "width"},
    "logits": {0: "batch", 2: "height", 3: "width"},
}


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


# --- writing each format ------------------------------------------------------------------------


def bare_card(
    model: UNet, info: DatasetInfo, format: str, size: tuple[int, int] | None
) -> DeploymentCard:
    """The card of a file before anything is measured: what it is and how it takes images."""
    return DeploymentCard(
        format=format,
        info=info,
        spec=model.spec,
        input=InputPolicy(tuple(size) if size else None, fixed=format == "executorch"),
        normalisation={
            "mean": [round(float(v), 6) for v in model.mean.flatten()],
            "std": [round(float(v), 6) for v in model.std.flatten()],
            "where": "inside the model: it takes images in [0, 1]",
        },
        seglab_version=__version__,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )


def write_onnx(
    model: UNet,
    info: DatasetInfo,
    out: str | os.PathLike,
    opset: int = 17,
    size: tuple[int, int] | None = None,
) -> Path:
    """``model`` as an ONNX graph in ``out``: input "images" (N x C x H x W in [0, 1]), output
    "logits", every N, H and W dynamic, and its bare card (classes, colours, architecture;
    ``size`` is the size it is meant for). The one ONNX export of seglab."""
    out = Path(out)
    model = model.eval()
    trace_input = torch.rand(1, model.spec.in_channels, 64, 96)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about shape-dependent Python values
        # The TorchScript-based exporter: exact for this model and 10x faster than dynamo here.
        torch.onnx.export(
            model,
            (trace_input,),
            str(out),
            dynamo=False,
            opset_version=opset,
            input_names=["images"],
            output_names=["logits"],
            dynamic_axes=DYNAMIC_AXES,
        )
    write_card(out, bare_card(model, info, "onnx", size))
    return out


def quantize_int8(
    fp32_path: Path, calibration: Sequence[torch.Tensor], out: Path, progress: bool = False
) -> Path:
    """Static INT8 quantisation with ONNX Runtime (QDQ, per-channel int8 weights, uint8
    activations, MinMax ranges), calibrated on the ``calibration`` images (each 1 x C x H x W,
    or C x H x W); writes ``out``. The one INT8 quantisation of seglab."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process
    from tqdm.auto import tqdm

    bar = tqdm(desc="calibrate INT8", unit="image", total=len(calibration), disable=not progress)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter(
                {"images": image.reshape(1, *image.shape[-3:]).float().numpy()}
                for image in calibration
            )

        def get_next(self):
            item = next(self.items, None)
            bar.update(item is not None)
            return item

    with tempfile.TemporaryDirectory(prefix="seglab-int8-") as folder:
        prepared = Path(folder) / "prepared.onnx"
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(out),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )
    bar.close()
    return out


def write_int8(
    model: UNet,
    info: DatasetInfo,
    out: str | os.PathLike,
    calibration: Sequence[torch.Tensor],
    *,
    size: tuple[int, int] | None = None,
    fp32: Path | None = None,
    progress: bool = False,
) -> Path:
    """``model`` quantised to static INT8 in ``out`` (from the fp32 graph ``fp32`` when given,
    else from a fresh one), calibrated on ``calibration``, with its bare card."""
    out = Path(out)
    with tempfile.TemporaryDirectory(prefix="seglab-int8-") as folder:
        if fp32 is None:
            fp32 = write_onnx(model, info, Path(folder) / "model.onnx")
        quantize_int8(fp32, calibration, out, progress)
    write_card(out, bare_card(model, info, "onnx-int8", size))
    return out


def write_executorch(
    model: UNet, info: DatasetInfo, out: str | os.PathLike, size: tuple[int, int]
) -> Path:
    """``model`` as an ExecuTorch program in ``out``, lowered to XNNPACK for 1 x C x ``size``
    images, with its bare card in the constant method "seglab_card"."""
    try:
        with quiet_logger("torch.utils._pytree"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # its notes on experimental and deprecated APIs
            from executorch.backends.xnnpack.partition.xnnpack_partitioner import (
                XnnpackPartitioner,
            )
            from executorch.exir import to_edge_transform_and_lower
    except ImportError as err:
        raise SeglabError(
            f"ExecuTorch is not installed here ({first_line(err)}); "
            "pip install 'seglab[executorch]' to export .pte models"
        ) from None
    out = Path(out)
    example = torch.rand(1, model.spec.in_channels, *size)
    placeholder = PTE_CARD_PREFIX.decode().ljust(PTE_CARD_CAPACITY)  # the card goes here
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        program = torch.export.export(model.eval(), (example,))
        lowered = to_edge_transform_and_lower(
            program,
            partitioner=[XnnpackPartitioner()],
            constant_methods={PTE_CARD_METHOD: placeholder},
        ).to_executorch()
    out.write_bytes(lowered.buffer)
    write_card(out, bare_card(model, info, "executorch", size))
    return out


def write_artifact(
    model: UNet,
    info: DatasetInfo,
    format: str,
    out: str | os.PathLike,
    *,
    size: tuple[int, int],
    calibration: Sequence[torch.Tensor] = (),
    fp32: Path | None = None,
    progress: bool = False,
) -> Path:
    """``model`` written in ``format`` (one of FORMATS) to ``out``, with its bare card; INT8 is
    calibrated on ``calibration`` (from the fp32 graph ``fp32`` when given)."""
    # A copy in the default memory format: PyTorch backends set the module they share to
    # channels_last, which ExecuTorch's lowering rejects, and the caller's module stays as it is.
    model = copy.deepcopy(model).to(memory_format=torch.contiguous_format)
    if format == "onnx":
        return write_onnx(model, info, out, size=size)
    if format == "onnx-int8":
        return write_int8(model, info, out, calibration, size=size, fp32=fp32, progress=progress)
    if format == "executorch":
        return write_executorch(model, info, out, size)
    raise SeglabError(f"unknown format {format!r}; choose from {', '.join(FORMATS)}")


# --- choosing the input size and the calibration images -----------------------------------------


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


# --- export -------------------------------------------------------------------------------------


class Stages:
    """Progress as lines, each with the seconds since the start: '<what>: [  12.3 s] <text>'."""

    def __init__(self, what: str, report: Callable[[str], None]):
        self.what, self.report, self.start = what, report, time.perf_counter()

    def __call__(self, text: str) -> None:
        self.report(f"{self.what}: [{time.perf_counter() - self.start:7.1f} s] {text}")


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
    if format not in FORMATS:
        raise SeglabError(f"export: --format {format!r}: choose from {', '.join(FORMATS)}")
    out = check_output_file(out, "export: --out")
    suffix = FORMATS[format][0]
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
    stage = Stages("export", report)
    model, loaded = load_model(checkpoint)
    source = {
        "checkpoint": str(checkpoint),
        "path": str(Path(checkpoint).resolve()),
        "sha256": file_sha256(checkpoint),
        "step": loaded.step,
    }
    info = loaded.dataset
    stage(f"{checkpoint}: U-Net on {model.spec.encoder}, {info.num_classes} classes")
    data_name = data or loaded.config.data
    dataset = open_model_data(data_name, info, str(checkpoint), given=data is not None)
    size, why = (tuple(size), "--size") if size else model_input_size(loaded, dataset, split)
    stage(f"data {data_name}; input {size[0]}x{size[1]} ({why})")
    images, calibrated = (), None
    if format == "onnx-int8":
        images = calibration_images(dataset, calibration)
        calibrated = {
            "data": data_name,
            "split": "train",
            "images": len(images),
            "method": "ONNX Runtime static quantisation: MinMax ranges, QDQ, per-channel int8 "
            "weights, uint8 activations; images evenly spread through the training split",
        }
    tmp = out.with_name(f".{out.stem}.{os.getpid()}.partial{suffix}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        calibrating = f", calibrated on {len(images)} training images" if images else ""
        stage(f"writing {format} ({FORMATS[format][1]}){calibrating}")
        try:
            write_artifact(
                model, info, format, tmp, size=size, calibration=images, progress=progress
            )
        except SeglabError:
            raise
        except Exception as err:  # the exporter's or quantiser's own failure, in one line
            raise SeglabError(f"export: writing {format} failed: {first_line(err)}") from None
        card = replace(read_card(tmp), source=source, calibration=calibrated)
        stage(
            f"measuring {format} and PyTorch fp32 on {data_name} ({split}"
            f"{f', first {limit} images' if limit else ''}), then timing each at batch 1"
        )
        segmenter = artifact_segmenter(tmp, card)
        measured = measure(
            segmenter,
            pytorch_reference(model, info, card.input),
            dataset,
            data_name,
            size,
            split=split,
            limit=limit,
            repeats=repeats,
            progress=progress,
        )
        del segmenter
        tolerances = TOLERANCES[format]
        card = replace(
            card,
            content_sha256=content_sha256(tmp),
            tolerances=tolerances,
            measured=measured,
            failures=tolerances.failures(measured),
        )
        write_card(tmp, card)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    card_json, card_markdown = card_files(out)
    card_json.write_text(json.dumps(card.to_dict(), indent=2))
    card_markdown.write_text(card.to_markdown(out.name))
    stage(f"wrote {out}, {card_json.name} and {card_markdown.name}")
    return Exported(out, card, card_json, card_markdown)
