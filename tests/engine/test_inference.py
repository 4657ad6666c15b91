import torch
from torch import nn

from seglab.engine.inference import predict_probabilities, sliding_window
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
