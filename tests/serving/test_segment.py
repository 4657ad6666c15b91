"""The server's inference path gives the very masks ``seglab predict`` computes: the faster
per-image post-processing (one image's probabilities at a time, a plane-by-plane argmax) is
checked byte for byte against the batch's ``predict_probabilities(...).argmax(1)``, on the
PyTorch models and on their INT8 ONNX form, on real CamVid frames where they are here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from seglab.deployment.formats import ArtifactInputs
from seglab.deployment.formats import onnx_int8 as int8_format
from seglab.deployment.formats.onnx_fp32 import OnnxSegmenter
from seglab.engine.checkpoint import load_model
from seglab.engine.inference import predict_probabilities
from seglab.serving.models import segment
from seglab.serving.upload import decode_image

CAMVID_VAL = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "camvid" / "val"


def reference(segmenter, images) -> np.ndarray:
    """The masks as the server computed them before: the batch's probabilities, torch's argmax."""
    batch = torch.stack(list(images))
    batch = batch.float().div_(255) if batch.dtype == torch.uint8 else batch.float()
    return predict_probabilities(segmenter, batch).argmax(1).to(torch.uint8).cpu().numpy()


def uint8_images(count: int, height: int, width: int, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [
        torch.randint(0, 256, (3, height, width), dtype=torch.uint8, generator=g)
        for _ in range(count)
    ]


class NearTies:
    """Logits whose two leading classes differ by less than MARGIN at some pixels, with a
    random field elsewhere, so segment must take the softmax path for some images."""

    kind, name, device = "stand-in", "near-ties", torch.device("cpu")

    def __init__(self, info):
        self.info = info

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        g = torch.Generator().manual_seed(images.shape[0])
        logits = torch.randn(images.shape[0], 5, *images.shape[-2:], generator=g)
        logits[0, 2] = logits[0, 1] + 1e-7  # image 0: ties the softmax may round away
        return logits


def test_segment_takes_the_softmax_path_where_the_logits_nearly_tie(served):
    segmenter = NearTies(served[0].segmenter.info)
    images = uint8_images(3, 24, 32)
    assert segment(segmenter, images).tobytes() == reference(segmenter, images).tobytes()


@pytest.mark.parametrize("encoder", ["mobilenet_v2", "vgg19"])
def test_segment_gives_the_masks_of_the_whole_batch_path(served, encoder):
    segmenter = served[0 if encoder == "mobilenet_v2" else 1].segmenter
    for count, (height, width) in ((1, (64, 80)), (3, (48, 40)), (4, (37, 51))):
        images = uint8_images(count, height, width, seed=count)
        assert segment(segmenter, images).tobytes() == reference(segmenter, images).tobytes()
        floats = [image.float() / 255 for image in images]  # 16-bit images arrive as floats
        assert segment(segmenter, floats).tobytes() == reference(segmenter, floats).tobytes()


@pytest.fixture(scope="module")
def int8_segmenter(tiny_runs, tmp_path_factory) -> OnnxSegmenter:
    """The MobileNetV2 run as static INT8 ONNX (calibrated on four random images), no card."""
    model, checkpoint = load_model(tiny_runs["mobilenet_v2"] / "best.pt")
    out = tmp_path_factory.mktemp("int8") / "model.int8.onnx"
    g = torch.Generator().manual_seed(0)
    calibration = [torch.rand(1, 3, 64, 80, generator=g) for _ in range(4)]
    int8_format.write(model, out, ArtifactInputs(calibration=calibration))
    return OnnxSegmenter(out, checkpoint.dataset, kind="int8")


def test_segment_on_int8_onnx_gives_the_masks_of_the_whole_batch_path(int8_segmenter):
    if CAMVID_VAL.is_dir():  # real frames: their logits have near ties a random image lacks
        files = sorted(CAMVID_VAL.glob("*.png"))[:3]
        images = [decode_image(f.read_bytes(), 3, 16_000_000) for f in files]
    else:
        images = uint8_images(3, 90, 120)
    for start, count in ((0, 1), (0, 3), (1, 2)):
        batch = images[start : start + count]
        masks = segment(int8_segmenter, batch)
        assert masks.tobytes() == reference(int8_segmenter, batch).tobytes()
