"""Pretrained encoder weights: torchvision's official ImageNet files through the encoder's weights
enum (``WeightsEnum.get_state_dict``, over torch.hub's cache), or a local state dict. Every way in
ends in ``load_encoder_weights``, so all encoders behave the same."""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from pathlib import Path
from typing import Any
from urllib.error import URLError

import torch
from torch import nn

from seglab.cache import torch_hub_checkpoints
from seglab.errors import SeglabError, first_line
from seglab.models.encoders import EncoderSpec, first_conv_from_rgb, first_conv_name

StateDict = dict[str, torch.Tensor]


def cached_weights_path(spec: EncoderSpec) -> Path:
    return torch_hub_checkpoints() / spec.weights_file


def is_cached(spec: EncoderSpec) -> bool:
    return cached_weights_path(spec).is_file()


def imagenet_state_dict(spec: EncoderSpec, progress: bool = True) -> StateDict:
    """torchvision's official ImageNet state dict for ``spec``, as torchvision's own builders get
    it: ``get_state_dict`` downloads the file once into the torch.hub cache (checksum checked) and
    reads it from there; seglab adds weights-only loading, so the file can run no code."""
    path = cached_weights_path(spec)
    try:
        # torch.hub says "Downloading: ..." on stdout; stderr, beside its progress bar, keeps
        # stdout for what seglab's commands print.
        with contextlib.redirect_stdout(sys.stderr):
            return spec.weights.get_state_dict(
                progress=progress, check_hash=True, weights_only=True, map_location="cpu"
            )
    except Exception as err:  # URLError, socket errors, a bad hash; or torch.load's many types
        if path.is_file():  # the download worked (or was not needed): the file is unreadable
            raise SeglabError(
                f"{_refusal(path)}; delete it and seglab downloads it again"
            ) from None
        why = _download_failure(err)
        raise SeglabError(
            f"ImageNet weights for {spec.name} are not on this machine and could not be "
            f"downloaded ({why}): put {spec.weights_file} from {spec.weights.url} into "
            f"{path.parent}/ (the torch.hub cache, set by $TORCH_HOME), or pass a local file "
            f"(--weights PATH), or train without pretrained weights (--weights none)"
        ) from None


def _download_failure(err: Exception) -> str:
    """The first line of why a download failed; for a URLError its reason, without the
    ``<urlopen error ...>`` wrapping."""
    reason = err.reason if isinstance(err, URLError) else err
    return first_line(reason) if isinstance(reason, BaseException) else str(reason)


def fetch_imagenet_weights(spec: EncoderSpec, progress: bool = True) -> Path:
    """The path of the official weights file in the torch.hub cache, downloaded (and read once,
    to prove it usable) when it is missing; an error says why it cannot be had."""
    if not is_cached(spec):
        imagenet_state_dict(spec, progress)
    return cached_weights_path(spec)


def read_state_dict(path: str | os.PathLike) -> StateDict:
    """A torchvision-format state dict from a file, loaded without running pickled code."""
    path = Path(path)
    if not path.is_file():
        raise SeglabError(f"weights file {path} does not exist")
    loaded = load_weights_only(path)
    # Accept the common wrappers around a plain state dict.
    for key in ("state_dict", "model"):
        if isinstance(loaded, dict) and isinstance(loaded.get(key), dict):
            loaded = loaded[key]
    if not isinstance(loaded, dict) or not all(
        isinstance(v, torch.Tensor) for v in loaded.values()
    ):
        raise SeglabError(f"weights file {path} does not hold a state dict of tensors")
    return loaded


def load_weights_only(path: str | os.PathLike, what: str = "a PyTorch state dict") -> Any:
    """``torch.load(path, weights_only=True)`` onto the CPU. A failure is one line that says what
    is wrong with the file, never torch's advice to retry with ``weights_only=False`` (which would
    run whatever code the file holds)."""
    path = Path(path)
    try:
        file = path.open("rb")
    except OSError as err:
        raise SeglabError(f"cannot read {path}: {first_line(err)}") from None
    with file, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns about the pickle of a file it then refuses
        try:
            return torch.load(file, map_location="cpu", weights_only=True)
        except Exception:  # torch raises many types for foreign, truncated or unsafe files
            raise SeglabError(_refusal(path, what)) from None


def _refusal(path: Path, what: str = "a PyTorch state dict") -> str:
    """Why weights-only loading refused ``path``: the functions and classes its pickle would
    import (found by torch's static scan of torch.save's format), or else a damaged file."""
    try:
        unsafe = sorted(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception:  # not torch.save's zip format, or too damaged to scan
        unsafe = []
    if unsafe:
        names = ", ".join(unsafe[:3]) + (", ..." if len(unsafe) > 3 else "")
        return f"{path}: holds pickled code ({names}), which seglab refuses to run"
    return f"{path}: not {what} (damaged, or not saved with torch.save)"


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
