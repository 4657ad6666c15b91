"""Pretrained encoder weights: torchvision's official ImageNet files through torch.hub's cache, or a
local state dict. Every way in ends in ``load_encoder_weights``, so all encoders behave the same."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from seglab.errors import SeglabError
from seglab.models.encoders import EncoderSpec, first_conv_from_rgb, first_conv_name

StateDict = dict[str, torch.Tensor]


def hub_checkpoint_dir() -> Path:
    """Where torch.hub keeps downloaded weights: ``$TORCH_HOME/hub/checkpoints``."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def cached_weights_path(spec: EncoderSpec) -> Path:
    return hub_checkpoint_dir() / spec.weights_file


def is_cached(spec: EncoderSpec) -> bool:
    return cached_weights_path(spec).is_file()


def fetch_imagenet_weights(spec: EncoderSpec, progress: bool = True) -> Path:
    """The path of the official weights file in the torch.hub cache, downloaded there once (with
    torch.hub's checksum check) when it is missing."""
    path = cached_weights_path(spec)
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    match = torch.hub.HASH_REGEX.search(spec.weights_file)
    try:
        torch.hub.download_url_to_file(
            spec.weights.url,
            str(path),
            hash_prefix=match.group(1) if match else None,
            progress=progress,
        )
    except (OSError, RuntimeError) as err:  # URLError and socket failures; RuntimeError: bad hash
        raise SeglabError(
            f"ImageNet weights for {spec.name} are not on this machine and could not be "
            f"downloaded ({_reason(err)}): put {spec.weights_file} from {spec.weights.url} into "
            f"{path.parent}/ (the torch.hub cache, set by $TORCH_HOME), or pass a local file "
            f"(--weights PATH), or train without pretrained weights (--weights none)"
        ) from None
    return path


def imagenet_state_dict(spec: EncoderSpec, progress: bool = True) -> StateDict:
    """The official ImageNet state dict, from the torch.hub cache."""
    return read_state_dict(fetch_imagenet_weights(spec, progress))


def read_state_dict(path: str | os.PathLike) -> StateDict:
    """A torchvision-format state dict from a file, loaded without running pickled code."""
    path = Path(path)
    if not path.is_file():
        raise SeglabError(f"weights file {path} does not exist")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for truncated or foreign files
        raise SeglabError(f"cannot read weights file {path}: {_reason(err)}") from None
    # Accept the common wrappers around a plain state dict.
    for key in ("state_dict", "model"):
        if isinstance(loaded, dict) and isinstance(loaded.get(key), dict):
            loaded = loaded[key]
    if not isinstance(loaded, dict) or not all(
        isinstance(v, torch.Tensor) for v in loaded.values()
    ):
        raise SeglabError(f"weights file {path} does not hold a state dict of tensors")
    return loaded


def load_encoder_weights(
    encoder: nn.Module, state_dict: StateDict, source: str, encoder_name: str
) -> None:
    """Copy every encoder tensor from ``state_dict`` (extra keys, e.g. the classifier, are unused).

    A first convolution with other than 3 input channels is derived from the RGB kernels.
    """
    first_conv_key = first_conv_name(encoder) + ".weight"
    new_state = {}
    for key, current in encoder.state_dict().items():
        if key not in state_dict:
            if key.endswith("num_batches_tracked"):  # absent from files saved before PyTorch 0.4.1
                new_state[key] = current
                continue
            raise SeglabError(
                f"weights {source} have no tensor {key!r}: not a {encoder_name} state dict"
            )
        tensor = state_dict[key]
        if key == first_conv_key and tensor.shape[1] == 3 and current.shape[1] != 3:
            tensor = first_conv_from_rgb(tensor, current.shape[1])
        if tensor.shape != current.shape:
            raise SeglabError(
                f"weights {source}: {key!r} has shape {tuple(tensor.shape)}, "
                f"the encoder needs {tuple(current.shape)}"
            )
        new_state[key] = tensor
    encoder.load_state_dict(new_state, strict=True)


def _reason(err: BaseException) -> str:
    text = str(getattr(err, "reason", None) or err).strip().splitlines()
    return text[0] if text else type(err).__name__
