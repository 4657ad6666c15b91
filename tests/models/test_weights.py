"""The ImageNet weights path, proven with files the tests make: a state dict with torchvision's
official key names saved under the official file name in a temporary torch.hub cache."""

from pathlib import Path

import pytest
import torch

from seglab.errors import SeglabError
from seglab.models import ENCODERS, build_model
from seglab.models.weights import cached_weights_path, is_cached


def official_state_dict(name: str) -> dict[str, torch.Tensor]:
    """A state dict shaped and named like torchvision's file (random values, full classifier)."""
    torch.manual_seed(123)
    return ENCODERS[name].builder(weights=None).state_dict()


def put_in_cache(name: str) -> tuple[dict[str, torch.Tensor], Path]:
    state = official_state_dict(name)
    path = cached_weights_path(ENCODERS[name])
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return state, path


def assert_encoder_equals(model, state):
    for key, tensor in model.encoder.state_dict().items():
        assert torch.equal(tensor, state[key]), key


@pytest.mark.parametrize("name", ["mobilenet_v2", "resnet34", "vgg19_bn"])
def test_imagenet_weights_load_from_the_hub_cache(name, torch_home):
    state, path = put_in_cache(name)
    assert path == torch_home / "hub" / "checkpoints" / ENCODERS[name].weights_file
    assert is_cached(ENCODERS[name])

    torch.manual_seed(7)
    model = build_model(name, num_classes=5, encoder_weights="imagenet")
    torch.manual_seed(7)
    scratch = build_model(name, num_classes=5, encoder_weights=None)

    assert_encoder_equals(model, state)
    for (key, tensor), expected in zip(
        model.decoder.state_dict().items(), scratch.decoder.state_dict().values(), strict=True
    ):
        assert torch.equal(tensor, expected), f"decoder {key} was touched"
    assert torch.equal(model.classifier.weight, scratch.classifier.weight)


def test_official_file_name_is_the_one_the_issue_names():
    assert ENCODERS["vgg19"].weights.url.endswith("/vgg19-dcbb9e9d.pth")
    assert ENCODERS["mobilenet_v2"].weights.url.endswith("/mobilenet_v2-7ebf99e0.pth")


def test_a_local_state_dict_file_works_wrapped_or_not(tmp_path):
    state = official_state_dict("mobilenet_v2")
    plain, wrapped = tmp_path / "plain.pth", tmp_path / "wrapped.pth"
    torch.save(state, plain)
    torch.save({"state_dict": state, "epoch": 3}, wrapped)
    for path in (plain, wrapped):
        model = build_model("mobilenet_v2", num_classes=2, encoder_weights=str(path))
        assert_encoder_equals(model, state)


def test_grey_input_derives_its_first_convolution_from_the_rgb_kernels():
    state, _ = put_in_cache("mobilenet_v2")
    model = build_model("mobilenet_v2", num_classes=2, in_channels=1, encoder_weights="imagenet")
    first = model.encoder.state_dict()["features.0.0.weight"]
    assert first.shape[1] == 1
    assert torch.allclose(first, state["features.0.0.weight"].sum(1, keepdim=True))
    assert torch.equal(
        model.encoder.state_dict()["features.1.conv.0.0.weight"],
        state["features.1.conv.0.0.weight"],
    )


def test_offline_without_a_cached_file_is_one_clear_error(torch_home):
    with pytest.raises(SeglabError) as err:
        build_model("vgg19", num_classes=2, encoder_weights="imagenet")
    message = str(err.value)
    assert "vgg19-dcbb9e9d.pth" in message
    assert "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth" in message
    assert str(torch_home / "hub" / "checkpoints") in message
    assert "--weights none" in message
    assert "\n" not in message
    assert not list((torch_home / "hub" / "checkpoints").glob("*"))


def test_a_machine_with_internet_downloads_once_into_the_cache(monkeypatch, torch_home):
    state = official_state_dict("mobilenet_v2")
    calls = []

    def fake_download(url, dst, hash_prefix=None, progress=True):
        calls.append((url, hash_prefix))
        torch.save(state, dst)

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    for _ in range(2):
        model = build_model("mobilenet_v2", num_classes=2, encoder_weights="imagenet")
        assert_encoder_equals(model, state)
    assert calls == [("https://download.pytorch.org/models/mobilenet_v2-7ebf99e0.pth", "7ebf99e0")]


def test_weights_of_another_architecture_are_refused(tmp_path):
    path = tmp_path / "resnet.pth"
    torch.save(official_state_dict("resnet34"), path)
    with pytest.raises(SeglabError, match=r"resnet\.pth have no tensor .*not a mobilenet_v2"):
        build_model("mobilenet_v2", num_classes=2, encoder_weights=str(path))


def test_damaged_or_missing_weights_files_are_named(tmp_path):
    damaged = tmp_path / "damaged.pth"
    torch.save(official_state_dict("mobilenet_v2"), damaged)
    damaged.write_bytes(damaged.read_bytes()[:5000])
    with pytest.raises(SeglabError, match=r"cannot read weights file .*damaged\.pth"):
        build_model("mobilenet_v2", num_classes=2, encoder_weights=str(damaged))
    with pytest.raises(SeglabError, match=r"nothere\.pth does not exist"):
        build_model("mobilenet_v2", num_classes=2, encoder_weights=str(tmp_path / "nothere.pth"))
