import numpy as np
import pytest
import torch
from torch import nn

from seglab.engine.inference import (
    MARGIN,
    clear_argmax,
    first_argmax,
    predict_probabilities,
    sliding_window,
)
from seglab.models import build_model


def test_sliding_window_equals_the_whole_image_for_a_pointwise_model():
    model = nn.Conv2d(3, 5, kernel_size=1)
    images = torch.rand(2, 3, 50, 70)
    with torch.no_grad():
        assert torch.allclose(sliding_window(model, images, (32, 32)), model(images), atol=1e-6)


def test_sliding_window_covers_any_size_with_a_real_model():
    model = build_model("mobilenet_v2", 4, encoder_weights=None).eval()
    with torch.no_grad():
        logits = sliding_window(model, torch.rand(1, 3, 100, 150), (64, 64))
    assert logits.shape == (1, 4, 100, 150) and torch.isfinite(logits).all()


def test_flip_and_scale_augmentation_give_probabilities_of_the_input_size():
    model = build_model("mobilenet_v2", 4, encoder_weights=None).eval()
    images = torch.rand(1, 3, 72, 96)
    plain = predict_probabilities(model, images)
    with torch.no_grad():
        assert torch.allclose(plain, model(images).softmax(1), atol=1e-6)
    tta = predict_probabilities(model, images, flip=True, scales=(0.75, 1.0, 1.25))
    assert tta.shape == plain.shape
    assert torch.allclose(tta.sum(1), torch.ones(1, 72, 96), atol=1e-5)
    assert not torch.allclose(tta, plain)


def test_flip_averaging_is_mirror_symmetric():
    model = build_model("mobilenet_v2", 3, encoder_weights=None).eval()
    images = torch.rand(1, 3, 64, 64)
    a = predict_probabilities(model, images, flip=True)
    b = predict_probabilities(model, images.flip(-1), flip=True).flip(-1)
    assert torch.allclose(a, b, atol=1e-5)


def test_a_torch_segmenter_gives_float32_logits_in_eval_mode_whatever_its_options():
    from seglab.data.synthetic import INFO
    from seglab.engine.segmenter import Segmenter, TorchSegmenter

    model = build_model("mobilenet_v2", INFO.num_classes, encoder_weights=None)
    images = torch.rand(2, 3, 48, 64)
    model.eval()
    with torch.no_grad():
        expected = model(images)
    model.train()  # a model shared with a training loop: the segmenter evaluates in eval mode
    plain = TorchSegmenter(model, INFO)
    assert isinstance(plain, Segmenter) and plain.device == torch.device("cpu")
    logits = plain(images)
    assert not model.training and logits.dtype == torch.float32
    assert torch.allclose(logits, expected, atol=1e-5)
    fast = TorchSegmenter(model, INFO, channels_last=True)
    conv = model.decoder[0].convs[0][0].weight  # 3x3: its two layouts differ
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    assert torch.allclose(fast(images), expected, atol=1e-4)
    half = TorchSegmenter(model, INFO, autocast_dtype=torch.bfloat16)(images)
    assert half.dtype == torch.float32 and half.shape == expected.shape
    assert (half.argmax(1) == expected.argmax(1)).float().mean() > 0.9
    # back to the default memory format when asked for none
    TorchSegmenter(model, INFO)
    assert model.decoder[0].convs[0][0].weight.is_contiguous()


@pytest.mark.parametrize("shape", [(11, 37, 53), (12, 64, 80), (2, 1, 1), (3, 5, 7)])
def test_first_argmax_is_torchs_argmax_with_ties_and_nans(shape):
    g = torch.Generator().manual_seed(1)
    scores = torch.randint(-2, 3, shape, generator=g).float()  # many exact ties
    assert np.array_equal(first_argmax(scores), scores.argmax(0).to(torch.uint8).numpy())
    scores.view(scores.shape[0], -1)[-1, 0] = float("nan")  # NaN: the largest, to torch
    assert np.array_equal(first_argmax(scores), scores.argmax(0).to(torch.uint8).numpy())


def softmax_argmax(logits: torch.Tensor) -> np.ndarray:
    return logits[None].softmax(1)[0].argmax(0).to(torch.uint8).numpy()


@pytest.mark.parametrize("scale", [1e-3, 0.4, 1.0, 7.0, 90.0])
def test_clear_argmax_is_the_softmax_argmax_or_refuses(scale):
    """Near ties at several magnitudes: a gap of MARGIN or more before the winner gives the
    softmax's answer; a smaller one (which may round to a tie in the softmax) gives None."""
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(11, 40, 60, generator=g) * scale
    logits[3] = logits.max(0).values + scale  # class 3 wins
    logits[7] = logits[3]  # a later exact tie: class 3 still wins
    logits[1] = logits[3] - MARGIN  # class 1, before it, just behind it: as far as allowed
    while (short := logits[3] - logits[1] < MARGIN).any():  # float32 rounding of the gap
        logits[1] = torch.where(short, torch.nextafter(logits[1], logits[1] - 1), logits[1])
    found = clear_argmax(logits)
    assert found is not None and (found == 3).all()
    assert np.array_equal(found, softmax_argmax(logits))
    behind = torch.nextafter(logits[3, 5, 5], logits[3, 5, 5] - 1)  # one float32 step
    logits[1, 5, 5] = behind
    if logits[3, 5, 5] - behind < MARGIN:  # too close: refused
        assert clear_argmax(logits) is None
    else:  # large logits: one float32 step is MARGIN or more
        assert np.array_equal(clear_argmax(logits), softmax_argmax(logits))
    logits[1, 5, 5] = float("nan")
    assert clear_argmax(logits) is None
    logits[1, 5, 5], logits[0, 0, 0] = 0, float("inf")
    assert clear_argmax(logits) is None
