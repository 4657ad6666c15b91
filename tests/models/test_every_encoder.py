"""One test base for every encoder: each entry of ``ENCODERS`` runs through the same checks, so a
newly registered backbone is covered by adding it to the registry and nothing else.

The models are tiny (random initialisation, decoder widths of 8, images of a few dozen pixels):
these checks are about plumbing (shapes, gradients, serialisation, export), not accuracy.
"""

from __future__ import annotations

import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F

from seglab.config import TrainConfig
from seglab.data.info import DatasetInfo
from seglab.deployment.formats import ArtifactInputs, onnx_fp32
from seglab.engine.checkpoint import Checkpoint
from seglab.models import ENCODERS, build_model
from seglab.models.encoders import first_conv_name

NUM_CLASSES = 3
ODD = (37, 53)  # odd, prime, and no multiple of any encoder's stride

every_encoder = pytest.mark.parametrize("name", list(ENCODERS))


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models gain nothing from intra-op threads, and on a busy 2-core machine (other test
    processes beside this one) waiting for a second thread made this module 5x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_model(name: str, in_channels: int = 3, settled: bool = False):
    """A U-Net on ``name`` with the narrowest decoder, in eval mode; ``settled``: its BatchNorm
    statistics first moved off their initial values by a training-mode pass, so that a lost or
    misapplied statistic changes the logits."""
    steps = ENCODERS[name].output_stride.bit_length() - 1
    model = build_model(
        name,
        NUM_CLASSES,
        in_channels=in_channels,
        encoder_weights=None,
        decoder_channels=(8,) * steps,
    )
    if settled:
        with torch.no_grad():
            model.train()(torch.rand(2, in_channels, *ODD))
    return model.eval()


def first_conv(model) -> torch.nn.Conv2d:
    return model.encoder.get_submodule(first_conv_name(model.encoder))


@every_encoder
def test_forward_and_backward_reach_every_parameter(name):
    """A training step's gradient flows from the loss through the decoder and the skips into
    every parameter, the image-facing first convolution and the classifier included."""
    model = tiny_model(name).train()
    logits = model(torch.rand(2, 3, *ODD))
    assert logits.shape == (2, NUM_CLASSES, *ODD)
    F.cross_entropy(logits, torch.randint(0, NUM_CLASSES, (2, *ODD))).backward()
    for layer in (first_conv(model), model.classifier):
        assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, pname


@every_encoder
def test_logits_have_the_input_size(name):
    """Any input size comes back whole: the decoder follows the encoder's rounding of odd sizes
    back up, down to one pixel more than the deepest stride."""
    model = tiny_model(name)
    stride = ENCODERS[name].output_stride
    for height, width in (ODD, (stride + 1, 2 * stride - 1)):
        assert height % stride and width % stride
        with torch.no_grad():
            logits = model(torch.rand(2, 3, height, width))
        assert logits.shape == (2, NUM_CLASSES, height, width)
        assert torch.isfinite(logits).all()


@every_encoder
@pytest.mark.parametrize("in_channels", [1, 4])
def test_other_channel_counts(name, in_channels):
    """Grey and multispectral images: the first convolution and the normalisation take
    ``in_channels``, and every input channel (the 4th included) reaches the logits."""
    model = tiny_model(name, in_channels)
    conv = first_conv(model)
    assert conv.in_channels == in_channels
    assert model.mean.shape == model.std.shape == (1, in_channels, 1, 1)
    images = torch.rand(2, in_channels, *ODD, requires_grad=True)
    logits = model(images)
    assert logits.shape == (2, NUM_CLASSES, *ODD)
    logits.square().sum().backward()
    per_channel = images.grad.abs().sum(dim=(0, 2, 3))
    assert (per_channel > 0).all(), per_channel
    assert (conv.weight.grad.abs().sum(dim=(0, 2, 3)) > 0).all()


@every_encoder
def test_checkpoint_round_trip(name, tmp_path):
    """A saved checkpoint rebuilds the same architecture with the same weights and BatchNorm
    statistics: identical logits, and the facts saved beside them unchanged."""
    model = tiny_model(name, settled=True)
    info = DatasetInfo("tiny", ("sky", "road", "car"), ((0, 0, 255), (128, 64, 128), (255, 0, 0)))
    config = TrainConfig(encoder=name, weights="none", crop_size=(64, 64))
    Checkpoint(model.spec, model.state_dict(), info, config, {"miou": 0.25}, step=5).save(
        tmp_path / "best.pt"
    )
    checkpoint = Checkpoint.load(tmp_path / "best.pt")
    assert checkpoint.spec == model.spec
    assert (checkpoint.dataset, checkpoint.config) == (info, config)
    assert (checkpoint.metrics, checkpoint.step) == ({"miou": 0.25}, 5)
    loaded = checkpoint.build_model()
    images = torch.rand(2, 3, *ODD)
    with torch.no_grad():
        assert torch.equal(loaded(images), model(images))


@every_encoder
def test_onnx_export_matches_pytorch_in_onnx_runtime(name, tmp_path):
    """seglab's ONNX export (the one `seglab export --format onnx` writes) has dynamic batch,
    height and width, and ONNX Runtime (an independent implementation) gives PyTorch's logits at
    a batch and size it was not traced at."""
    model = tiny_model(name, settled=True)
    path = tmp_path / "model.onnx"
    onnx_fp32.write(model, path, ArtifactInputs())
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    images = torch.rand(2, 3, *ODD)
    with torch.no_grad():
        expected = model(images)
    (got,) = session.run(["logits"], {"images": images.numpy()})
    assert got.shape == (2, NUM_CLASSES, *ODD)
    assert expected.abs().max() > 1e-2  # logits large enough for the tolerance to mean something
    assert (torch.from_numpy(got) - expected).abs().max() < 1e-4
