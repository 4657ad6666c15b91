import pytest
import torch
import torch.nn.functional as F

from seglab.errors import SeglabError
from seglab.models.complexity import forward_gflops
from seglab.models.encoders import (
    ENCODERS,
    build_encoder,
    first_conv_from_rgb,
    get_encoder_spec,
    normalisation_for,
)


def test_registry_holds_the_founding_and_extra_encoders():
    required = {"vgg19", "vgg19_bn", "mobilenet_v2"}
    extra = {"resnet34", "resnet50", "mobilenet_v3_large", "efficientnet_b0"}
    assert required | extra <= set(ENCODERS)


@pytest.mark.parametrize("name", list(ENCODERS))
def test_declared_taps_match_the_real_feature_maps(name):
    spec = ENCODERS[name]
    encoder = build_encoder(spec).eval()
    with torch.no_grad():
        features = encoder(torch.randn(1, 3, 64, 96))
    assert list(features) == [t.node for t in spec.taps]
    for tap in spec.taps:
        assert features[tap.node].shape[1:] == (tap.channels, 64 // tap.stride, 96 // tap.stride)
    strides = [t.stride for t in spec.taps]
    assert strides == sorted(strides) and len(set(strides)) == len(strides)


def test_vgg_first_skip_is_the_full_resolution_block1():
    for name in ("vgg19", "vgg19_bn"):
        assert ENCODERS[name].taps[0].stride == 1
        assert ENCODERS[name].taps[0].channels == 64


def test_unknown_encoder_suggests_close_matches():
    with pytest.raises(
        SeglabError, match=r"unknown encoder 'vgg91'; did you mean vgg19 or vgg19_bn\?"
    ):
        get_encoder_spec("vgg91")
    with pytest.raises(SeglabError, match="choose from"):
        get_encoder_spec("transformer")


def test_weights_metadata_comes_from_torchvision():
    spec = ENCODERS["vgg19"]
    assert spec.weights_file == "vgg19-dcbb9e9d.pth"
    assert ENCODERS["mobilenet_v2"].weights_file == "mobilenet_v2-7ebf99e0.pth"
    assert spec.mean == pytest.approx((0.485, 0.456, 0.406))
    assert 70 < spec.imagenet_top1 < 75


def test_grey_kernel_gives_the_response_of_a_grey_rgb_image():
    rgb = torch.randn(8, 3, 3, 3)
    grey = torch.rand(1, 1, 16, 16)
    expected = F.conv2d(grey.repeat(1, 3, 1, 1), rgb)
    assert torch.allclose(F.conv2d(grey, first_conv_from_rgb(rgb, 1)), expected, atol=1e-5)


def test_multispectral_kernel_keeps_the_response_magnitude():
    rgb = torch.randn(8, 3, 3, 3)
    image = torch.rand(1, 3, 16, 16)
    six = F.conv2d(image.repeat(1, 2, 1, 1), first_conv_from_rgb(rgb, 6))
    assert torch.allclose(six, F.conv2d(image, rgb), atol=1e-5)
    assert first_conv_from_rgb(rgb, 4).shape == (8, 4, 3, 3)


def test_normalisation_follows_the_channels():
    spec = ENCODERS["mobilenet_v2"]
    mean, std = normalisation_for(spec, 1)
    assert mean == pytest.approx([sum(spec.mean) / 3]) and len(std) == 1
    mean, _ = normalisation_for(spec, 4)
    assert mean == pytest.approx([*spec.mean, spec.mean[0]])


def test_vgg19_encoder_flops_match_torchvision_metadata():
    # torchvision's GFLOPS metadata counts multiply-adds of the whole classifier network at 224x224;
    # the encoder is everything but the three fully connected layers.
    spec = ENCODERS["vgg19"]
    classifier_gmacs = (25088 * 4096 + 4096 * 4096 + 4096 * 1000) / 1e9
    expected = spec.weights.meta["_ops"] - classifier_gmacs
    encoder = build_encoder(spec)
    assert forward_gflops(encoder, 224, 224) / 2 == pytest.approx(expected, rel=0.01)


def test_an_encoder_built_on_the_meta_device_allocates_nothing():
    with torch.device("meta"):
        encoder = build_encoder(ENCODERS["vgg19"])
    assert all(t.is_meta for t in encoder.state_dict().values())
