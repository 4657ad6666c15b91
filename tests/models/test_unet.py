import pytest
import torch

from seglab.errors import SeglabError
from seglab.models import ENCODERS, build_model
from seglab.models.unet import CopyUpsample, NearestUpsample, copy_upsampling


def _training_step(model, lr=0.1):
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=lr)
    logits = model(torch.rand(2, 3, 64, 64))
    loss = torch.nn.functional.cross_entropy(logits, torch.randint(0, 4, (2, 64, 64)))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def _snapshot(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def _changed(before, module):
    return [k for k, v in module.state_dict().items() if not torch.equal(before[k], v)]


@pytest.mark.parametrize("name", list(ENCODERS))
def test_frozen_encoder_keeps_weights_and_batchnorm_statistics(name):
    model = build_model(name, num_classes=4, encoder_weights=None)
    model.freeze_encoder()
    model.train()  # a frozen encoder stays in eval mode, so its BatchNorm statistics hold still
    assert not model.encoder.training and model.decoder.training
    encoder_before, decoder_before = _snapshot(model.encoder), _snapshot(model.decoder)
    _training_step(model)
    assert _changed(encoder_before, model.encoder) == []
    assert len(_changed(decoder_before, model.decoder)) > 0

    model.unfreeze_encoder()
    assert model.encoder.training
    _training_step(model)
    changed = _changed(encoder_before, model.encoder)
    assert any(k.endswith("weight") for k in changed)
    has_batchnorm = any(k.endswith("running_mean") for k in encoder_before)  # not VGG19
    assert any(k.endswith("running_mean") for k in changed) == has_batchnorm


def test_normalisation_travels_with_the_model():
    model = build_model("mobilenet_v2", num_classes=2, encoder_weights=None)
    assert model.mean.flatten().tolist() == pytest.approx([0.485, 0.456, 0.406])
    assert "mean" in model.state_dict() and "std" in model.state_dict()
    grey = build_model("mobilenet_v2", num_classes=2, in_channels=1, encoder_weights=None)
    assert grey.mean.shape == (1, 1, 1, 1)


def test_decoder_width_count_must_match_the_encoder_depth():
    with pytest.raises(SeglabError, match="needs 5 channel widths, got 3"):
        build_model("resnet34", 2, encoder_weights=None, decoder_channels=(64, 32, 16))


def test_unknown_encoder_from_the_api():
    with pytest.raises(SeglabError, match="did you mean mobilenet_v2"):
        build_model("mobilenet_v22", 2, encoder_weights=None)


def test_a_full_resolution_skip_feeds_the_last_decoder_block():
    plain = build_model("mobilenet_v2", 5, encoder_weights=None)
    model = build_model("mobilenet_v2", 5, encoder_weights=None, full_res_skip=8).eval()
    assert model.spec.full_res_skip == 8
    assert plain.skip_nodes[-1] is None and model.skip_nodes[-1] == "input_stem"
    first_conv = model.decoder[-1].convs[0][0]
    assert first_conv.in_channels == plain.decoder[-1].convs[0][0].in_channels + 8
    stem = {id(p) for p in model.input_stem.parameters()}
    assert stem <= {id(p) for p in model.decoder_parameters()}  # trained as a new layer
    with torch.no_grad():
        assert model(torch.rand(1, 3, 97, 131)).shape == (1, 5, 97, 131)
    rebuilt = type(model)(type(model.spec).from_dict(model.spec.to_dict()))
    rebuilt.load_state_dict(model.state_dict())  # a checkpoint rebuilds it from its spec


def test_per_image_normalisation_makes_the_model_blind_to_exposure():
    torch.manual_seed(0)
    images = torch.rand(2, 3, 64, 96) * 0.5
    # a brighter, higher-contrast, warmer take of the same scenes (per-channel gain and offset)
    brighter = images * torch.tensor([1.6, 1.5, 1.3]).view(1, 3, 1, 1) + 0.2
    per_image = build_model("mobilenet_v2", 4, encoder_weights=None, input_norm="image").eval()
    fixed = build_model("mobilenet_v2", 4, encoder_weights=None).eval()
    fixed.load_state_dict(per_image.state_dict())
    with torch.no_grad():
        moved = (per_image(images) - per_image(brighter)).abs().max()
        moved_fixed = (fixed(images) - fixed(brighter)).abs().max()
    assert moved < 1e-3
    assert moved_fixed > 100 * moved  # the fixed normalisation passes the exposure on
    assert per_image.spec.input_norm == "image" and fixed.spec.input_norm == "dataset"
    rebuilt = type(per_image)(type(per_image.spec).from_dict(per_image.spec.to_dict()))
    assert rebuilt.spec.input_norm == "image"
    older = {k: v for k, v in fixed.spec.to_dict().items() if k != "input_norm"}
    assert type(fixed.spec).from_dict(older).input_norm == "dataset"  # checkpoints from before
    with pytest.raises(SeglabError, match="input_norm must be one of dataset, image, got 'imag'"):
        build_model("mobilenet_v2", 4, encoder_weights=None, input_norm="imag")


def test_an_encoder_with_a_full_resolution_tap_refuses_a_second_one():
    with pytest.raises(SeglabError, match="vgg19 already gives the decoder a full-resolution"):
        build_model("vgg19", 5, encoder_weights=None, full_res_skip=8)


def test_a_models_normalisation_can_be_a_datasets_own_per_band_statistics():
    mean, std = [0.01, 0.02, 0.03, 0.04, 0.05], [0.1, 0.2, 0.3, 0.4, 0.5]
    model = build_model(
        "mobilenet_v2", 2, in_channels=5, encoder_weights=None, input_stats=(mean, std)
    )
    assert model.mean.flatten().tolist() == pytest.approx(mean)
    assert model.state_dict()["std"].flatten().tolist() == pytest.approx(std)  # saved with it
    images = torch.rand(1, 5, 8, 8)
    expected = (images - torch.tensor(mean).view(1, 5, 1, 1)) / torch.tensor(std).view(1, 5, 1, 1)
    assert torch.allclose(model.normalise(images), expected)
    with pytest.raises(SeglabError, match=r"needs 5 means and stds .* got 3 and 3"):
        model.set_normalisation([0.5] * 3, [0.2] * 3)


@pytest.mark.parametrize(
    ("shape", "size"),
    [
        ((2, 5, 6, 7), (12, 14)),  # twice the size
        ((1, 8, 12, 15), (23, 30)),  # an odd skip: one row fewer than twice
        ((1, 3, 23, 30), (45, 59)),  # both odd
        ((1, 4, 22, 30), (45, 61)),  # one more than twice: an encoder that rounds down
        ((1, 4, 22, 30), (43, 61)),
        ((1, 4, 1, 1), (1, 2)),  # one pixel
        ((1, 4, 1, 1), (3, 3)),
        ((1, 4, 5, 6), (8, 12)),  # not about twice: interpolate itself
        ((1, 4, 5, 6), (20, 24)),
    ],
)
def test_copy_upsampling_equals_nearest_interpolation(shape, size):
    x = torch.randn(*shape)
    nearest = NearestUpsample()(x, size)
    copied = CopyUpsample()(x, size)
    assert copied.shape == nearest.shape == (*shape[:2], *size)
    assert torch.equal(copied, nearest)


@pytest.mark.parametrize("name", ["mobilenet_v2", "vgg19"])
def test_a_model_with_copy_upsampling_gives_the_same_logits(name):
    model = build_model(name, num_classes=3, encoder_weights=None).eval()
    with torch.no_grad():
        for size in ((64, 80), (45, 61)):  # odd sizes: encoders round, the skips are odd
            x = torch.rand(1, 3, *size)
            before = model(x)
            with copy_upsampling(model) as swapped:
                assert all(isinstance(b.upsample, CopyUpsample) for b in swapped.decoder)
                after = model(x)
            assert torch.equal(after, before)
    assert all(isinstance(b.upsample, NearestUpsample) for b in model.decoder)
    assert not any("kernel" in key for key in model.state_dict())  # checkpoints unchanged
