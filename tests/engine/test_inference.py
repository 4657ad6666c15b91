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
