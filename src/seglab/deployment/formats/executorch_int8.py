"""ExecuTorch with the XNNPACK backend, static INT8: the model exported by torch.export for one
input size, quantised by PT2E with ExecuTorch's XNNPACK quantizer (per-channel symmetric int8
weights, int8 activations) on training images and lowered to XNNPACK like the fp32 program, the
decoder's nearest upsampling as its exact equivalent (seglab.models.unet.CopyUpsample). A .pte
file like the fp32 one: the card is stored the same way."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from tqdm.auto import tqdm

from seglab.deployment.card import INT8_TOLERANCES, DeploymentCard
from seglab.deployment.formats import ArtifactInputs
from seglab.deployment.formats.executorch_xnnpack import (  # the same file: card and hash as fp32
    ExecuTorchSegmenter,
    content_sha256,
    example_input,
    lower,
    quiet_logger,
    read_card_text,
    write_card_text,
)
from seglab.engine.segmenter import FixedInputSegmenter
from seglab.errors import SeglabError, first_line
from seglab.models.unet import UNet, copy_upsampling

TOLERANCES = INT8_TOLERANCES
FIXED_SIZE = True
CALIBRATION_METHOD = (
    "PT2E static quantisation with ExecuTorch's XNNPACK quantizer: per-channel symmetric int8 "
    "weights, per-tensor affine int8 activations with histogram-observed ranges; images evenly "
    "spread through the training split, each fitted to the program's input size as the deployed "
    "program fits it (padded with its edge values, larger ones tiled)"
)
__all__ = ["content_sha256", "load", "read_card_text", "write", "write_card_text"]


def write(model: UNet, out: Path, inputs: ArtifactInputs) -> None:
    """``model`` quantised to static INT8 for 1 x C x ``inputs.size`` images, calibrated on
    ``inputs.calibration``, lowered to XNNPACK in ``out``."""
    if not inputs.calibration:
        raise SeglabError("INT8 quantisation needs calibration images")
    example = example_input(model, inputs)
    prepare_pt2e, convert_pt2e, quantizer = _quantiser()
    with warnings.catch_warnings(), torch.no_grad(), copy_upsampling(model.eval()):
        warnings.simplefilter("ignore")
        graph = torch.export.export(model, (example,)).module()
        prepared = prepare_pt2e(graph, quantizer)
        calibrate(prepared, inputs.size, inputs.calibration, inputs.progress)
        program = torch.export.export(convert_pt2e(prepared), (example,))
    out.write_bytes(lower(program))


def calibrate(
    prepared: torch.nn.Module,
    size: tuple[int, int],
    calibration: Sequence[torch.Tensor],
    progress: bool = False,
) -> None:
    """The observers of ``prepared`` (a graph of one input size) see the ``calibration`` images
    (each 1 x C x H x W, or C x H x W) fitted to ``size`` as the deployed program sees them."""
    fitted = FixedInputSegmenter(prepared, size)
    for image in tqdm(calibration, desc="calibrate INT8", unit="image", disable=not progress):
        fitted(image.reshape(1, *image.shape[-3:]).float())


def load(path: Path, card: DeploymentCard) -> ExecuTorchSegmenter:
    if not card.input.fixed or card.input.size is None:
        raise SeglabError(f"{path}: damaged seglab metadata (no fixed input size)")
    return ExecuTorchSegmenter(path, card.info, card.input.size, card=card, kind="executorch-int8")


def _quantiser():
    """PT2E's prepare and convert (torchao's, which this ExecuTorch's quantizer is written
    for) and the XNNPACK quantizer set for symmetric per-channel INT8; a one-line SeglabError
    without them."""
    try:
        with quiet_logger("torch.utils._pytree"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # its notes on experimental and deprecated APIs
            from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
                XNNPACKQuantizer,  # optional: seglab[executorch]
                get_symmetric_quantization_config,
            )
            from torchao.quantization.pt2e.quantize_pt2e import (
                convert_pt2e,  # ExecuTorch's own dependency
                prepare_pt2e,
            )
    except ImportError as err:
        raise SeglabError(
            f"ExecuTorch's quantizer is not installed here ({first_line(err)}); "
            "pip install 'seglab[executorch]' to export INT8 .pte models"
        ) from None
    config = get_symmetric_quantization_config(is_per_channel=True)
    return prepare_pt2e, convert_pt2e, XNNPACKQuantizer().set_global(config)
