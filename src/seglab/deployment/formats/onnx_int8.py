"""ONNX, static INT8: the fp32 graph quantised by ONNX Runtime (QDQ, per-channel int8 weights,
uint8 activations, MinMax ranges) on training images, run by ONNX Runtime on the CPU at any batch
and size. An .onnx file like the fp32 one: the card is stored the same way."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process
from tqdm.auto import tqdm

from seglab.deployment.card import INT8_TOLERANCES, DeploymentCard
from seglab.deployment.formats import ArtifactInputs, onnx_fp32
from seglab.deployment.formats.onnx_fp32 import (  # the same file: card and hash as fp32
    OnnxSegmenter,
    content_sha256,
    read_card_text,
    write_card_text,
)
from seglab.errors import SeglabError
from seglab.models.unet import UNet

TOLERANCES = INT8_TOLERANCES
FIXED_SIZE = False
CALIBRATION_METHOD = (
    "ONNX Runtime static quantisation: MinMax ranges, QDQ, per-channel int8 weights, uint8 "
    "activations; images evenly spread through the training split"
)
__all__ = ["content_sha256", "load", "read_card_text", "write", "write_card_text"]


def write(model: UNet, out: Path, inputs: ArtifactInputs) -> None:
    """``model`` quantised to static INT8 in ``out``, calibrated on ``inputs.calibration``, from
    the fp32 graph ``inputs.onnx_fp32`` when given, else from a fresh one."""
    if not inputs.calibration:
        raise SeglabError("INT8 quantisation needs calibration images")
    with tempfile.TemporaryDirectory(prefix="seglab-int8-") as folder:
        fp32 = inputs.onnx_fp32
        if fp32 is None:
            fp32 = Path(folder) / "model.onnx"
            onnx_fp32.write(model, fp32, inputs)
        quantize(fp32, inputs.calibration, out, inputs.progress)


def quantize(
    fp32_path: Path, calibration: Sequence[torch.Tensor], out: Path, progress: bool = False
) -> None:
    """Static INT8 quantisation of the graph ``fp32_path`` into ``out``, calibrated on the
    ``calibration`` images (each 1 x C x H x W, or C x H x W). The one INT8 quantisation of
    seglab."""
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


def load(path: Path, card: DeploymentCard) -> OnnxSegmenter:
    return OnnxSegmenter(path, card.info, kind="int8", card=card)
