"""What a model costs: parameters and floating-point operations of one forward pass."""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from seglab.models.unet import build_model


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def forward_gflops(model: nn.Module, height: int, width: int, in_channels: int = 3) -> float:
    """GFLOPs (multiply and add counted apart, 2 per MAC) of one image's forward pass, counted by
    PyTorch's FlopCounterMode on meta tensors: nothing is computed, so it is instant at any size."""
    return _meta_gflops(copy.deepcopy(model).to("meta"), height, width, in_channels)


def model_costs(
    encoder: str, num_classes: int, height: int, width: int, in_channels: int = 3
) -> tuple[int, float]:
    """Parameters and forward GFLOPs at ``height`` x ``width`` of the U-Net that
    ``build_model(encoder, num_classes, in_channels)`` makes, the same numbers as
    ``count_parameters`` and ``forward_gflops`` give for it. The model is built on the meta
    device, so no weight is allocated, initialised or loaded: a registry's worth of encoders is
    costed in under a second where building them for real takes ten."""
    with torch.device("meta"):
        model = build_model(encoder, num_classes, in_channels, encoder_weights=None)
    params = count_parameters(model)
    # In eval mode a BatchNorm is a per-channel affine map (folded into its convolution for
    # inference) and FlopCounterMode counts none of it, yet on meta tensors it is decomposed
    # into a dozen small ops: more than half the counting time. Left out, the count is the same.
    for name, module in list(model.named_modules()):
        if isinstance(module, nn.BatchNorm2d):
            model.set_submodule(name, nn.Identity())
    return params, _meta_gflops(model, height, width, in_channels)


def _meta_gflops(meta_model: nn.Module, height: int, width: int, in_channels: int) -> float:
    meta_model.eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        meta_model(torch.empty(1, in_channels, height, width, device="meta"))
    return counter.get_total_flops() / 1e9
