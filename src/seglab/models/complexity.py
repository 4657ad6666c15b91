"""What a model costs: parameters and floating-point operations of one forward pass."""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def forward_gflops(model: nn.Module, height: int, width: int, in_channels: int = 3) -> float:
    """GFLOPs (multiply and add counted apart, 2 per MAC) of one image's forward pass, counted by
    PyTorch's FlopCounterMode on meta tensors: nothing is computed, so it is instant at any size."""
    meta_model = copy.deepcopy(model).to("meta").eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        meta_model(torch.empty(1, in_channels, height, width, device="meta"))
    return counter.get_total_flops() / 1e9
