"""The ImageNet weights path, proven with files the tests make: a state dict with torchvision's
official key names saved under the official file name in a temporary torch.hub cache (conftest
gives every test an empty $TORCH_HOME and refuses downloads)."""

import os
from pathlib import Path

import pytest
import torch

from seglab.errors import SeglabError
from seglab.models import ENCODERS, build_model
from seglab.models.encoders import build_encoder, first_conv_name
from seglab.models.weights import cached_weights_path, fetch_imagenet_weights, is_cached


def official_state_dict(name: str) -> dict[str, torch.Tensor]:
    """A state dict with the key names of torchvision's file: random encoder tensors of the real
    shapes; the classifier's keys hold placeholders (never loaded, and VGG19's are 400 MB)."""
    spec = ENCODERS[name]
    with torch.device("meta"):
        full = spec.builder(weights=None).state_dict()
        encoder_keys = set(build_encoder(spec).state_dict())
    torch.manual_seed(123)
    return {
        key: _random_like(t) if key in encoder_keys else torch.zeros(1) for key, t in full.items()
    }


def _random_like(t: torch.Tensor) -> torch.Tensor:
    return torch.randn(t.shape) if t.is_floating_point() else torch.zeros(t.shape, dtype=t.dtype)


def put_in_cache(name: str) -> tuple[dict[str, torch.Tensor], Path]:
    state = official_state_dict(name)
    path = cached_weights_path(ENCODERS[name])
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return state, path


def assert_encoder_equals(model, state):
    for key, tensor in model.encoder.state_dict().items():
        assert torch.equal(tensor, state[key]), key


class RemovesAFile:
    """Pickled as a call to os.remove: loading it with pickled code allowed deletes the canary."""

    def __init__(self, canary: Path):
        self.canary = canary

    def __reduce__(self):
        return (os.remove, (str(self.canary),))


def unsafe_file(path: Path, canary: Path) -> Path:
    canary.write_text("still here")
    torch.save({"features.0.0.weight": torch.zeros(1), "hook": RemovesAFile(canary)}, path)
    return path


def assert_one_safe_line(message: str) -> None:
    assert "\n" not in message
    assert "weights_only" not in message  # torch's advice to load unsafely is never passed on


@pytest.mark.parametrize("name", list(ENCODERS))
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


@pytest.mark.parametrize("name", list(ENCODERS))
def test_grey_input_derives_its_first_convolution_from_the_rgb_kernels(name):
    state, _ = put_in_cache(name)
    model = build_model(name, num_classes=2, in_channels=1, encoder_weights="imagenet")
    first = first_conv_name(model.encoder) + ".weight"
    for key, tensor in model.encoder.state_dict().items():
        if key == first:
            assert tensor.shape[1] == 1
            assert torch.allclose(tensor, state[key].sum(1, keepdim=True))
        else:
            assert torch.equal(tensor, state[key]), key


def test_offline_without_a_cached_file_is_one_clear_error(torch_home, capsys):
    with pytest.raises(SeglabError) as err:
        build_model("vgg19", num_classes=2, encoder_weights="imagenet")
    message = str(err.value)
    assert "for vgg19 " in message
    assert "vgg19-dcbb9e9d.pth" in message
    assert "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth" in message
    assert str(torch_home / "hub" / "checkpoints") in message
    assert "--weights none" in message
    assert "\n" not in message
    assert not list((torch_home / "hub" / "checkpoints").glob("*"))
    assert capsys.readouterr().out == ""  # torch.hub's "Downloading: ..." goes to stderr
    with pytest.raises(SeglabError, match="could not be downloaded"):
        fetch_imagenet_weights(ENCODERS["vgg19"])


def test_a_machine_with_internet_downloads_once_into_the_cache(monkeypatch, torch_home):
    state = official_state_dict("mobilenet_v2")
    calls = []

    def fake_download(url, dst, hash_prefix=None, progress=True):
        calls.append((url, hash_prefix))
        torch.save(state, dst)

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    spec = ENCODERS["mobilenet_v2"]
    assert fetch_imagenet_weights(spec) == cached_weights_path(spec)
    for _ in range(2):
        model = build_model("mobilenet_v2", num_classes=2, encoder_weights="imagenet")
        assert_encoder_equals(model, state)
    # One download, its checksum checked against the hash in the file name, as torchvision does.
    assert calls == [("https://download.pytorch.org/models/mobilenet_v2-7ebf99e0.pth", "7ebf99e0")]


def test_weights_of_another_architecture_are_refused(tmp_path):
    path = tmp_path / "resnet.pth"
    torch.save(official_state_dict("resnet34"), path)
    with pytest.raises(SeglabError, match=r"resnet\.pth have no tensor .*not a mobilenet_v2"):
        build_model("mobilenet_v2", num_classes=2, encoder_weights=str(path))


def test_a_missing_weights_file_is_named(tmp_path):
    with pytest.raises(SeglabError, match=r"nothere\.pth does not exist"):
        build_model("mobilenet_v2", num_classes=2, encoder_weights=str(tmp_path / "nothere.pth"))


def _truncated(path: Path) -> None:
    torch.save(official_state_dict("mobilenet_v2"), path)
    path.write_bytes(path.read_bytes()[:5000])


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda p: p.write_bytes(os.urandom(4096)), id="random-bytes"),
        pytest.param(_truncated, id="truncated-zip"),
        pytest.param(lambda p: p.write_bytes(b""), id="empty"),
        pytest.param(lambda p: p.write_text("not weights\n"), id="text"),
    ],
)
def test_a_file_that_is_not_a_state_dict_is_said_so(make, tmp_path):
    path = tmp_path / "weights.pt"
    make(path)
    with pytest.raises(SeglabError) as err:
        build_model("mobilenet_v2", num_classes=2, encoder_weights=str(path))
    message = str(err.value)
    assert message == f"{path}: not a PyTorch state dict (damaged, or not saved with torch.save)"
    assert_one_safe_line(message)


def test_a_file_with_pickled_code_is_refused_without_running_it(tmp_path):
    canary = tmp_path / "canary.txt"
    path = unsafe_file(tmp_path / "weights.pt", canary)
    with pytest.raises(SeglabError) as err:
        build_model("mobilenet_v2", num_classes=2, encoder_weights=str(path))
    message = str(err.value)
    assert message.startswith(f"{path}: holds pickled code (")
    assert message.endswith("), which seglab refuses to run")
    assert "remove" in message  # the function it would have called
    assert_one_safe_line(message)
    assert canary.exists()


def test_an_unusable_file_in_the_hub_cache_is_named_with_the_cure(tmp_path):
    spec = ENCODERS["mobilenet_v2"]
    path = cached_weights_path(spec)
    path.parent.mkdir(parents=True)
    path.write_bytes(os.urandom(4096))
    with pytest.raises(SeglabError) as err:
        build_model("mobilenet_v2", num_classes=2, encoder_weights="imagenet")
    message = str(err.value)
    assert message == (
        f"{path}: not a PyTorch state dict (damaged, or not saved with torch.save); "
        "delete it and seglab downloads it again"
    )

    canary = tmp_path / "canary.txt"
    unsafe_file(path, canary)
    with pytest.raises(SeglabError, match="holds pickled code") as err:
        build_model("mobilenet_v2", num_classes=2, encoder_weights="imagenet")
    assert_one_safe_line(str(err.value))
    assert canary.exists()
