"""The encoder registry: one entry per backbone, each a torchvision model tapped at several strides.

An entry says which torchvision builder makes the backbone, which of its layers feed the U-Net's
skip connections (with their channels and strides), and which official ImageNet weights go with it.
Adding a backbone is adding one entry to ``ENCODERS``; the decoder asks the entry what it gives.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torchvision.models as tvm
from torch import nn
from torchvision.models import WeightsEnum
from torchvision.models.feature_extraction import create_feature_extractor

from seglab.errors import SeglabError


@dataclass(frozen=True)
class Tap:
    """A layer feeding the decoder: its node name in the torchvision model, channels, stride."""

    node: str
    channels: int
    stride: int


@dataclass(frozen=True)
class EncoderSpec:
    name: str
    builder: Callable[..., nn.Module]
    weights: WeightsEnum
    taps: tuple[Tap, ...]  # shallow to deep; the deepest is the U-Net's bottleneck

    @property
    def mean(self) -> tuple[float, ...]:
        return tuple(self.weights.transforms().mean)

    @property
    def std(self) -> tuple[float, ...]:
        return tuple(self.weights.transforms().std)

    @property
    def imagenet_top1(self) -> float:
        return float(self.weights.meta["_metrics"]["ImageNet-1K"]["acc@1"])

    @property
    def weights_file(self) -> str:
        return self.weights.url.rsplit("/", 1)[-1]

    @property
    def output_stride(self) -> int:
        return self.taps[-1].stride


def _taps(*taps: tuple[str, int, int]) -> tuple[Tap, ...]:
    return tuple(Tap(*t) for t in taps)


ENCODERS: dict[str, EncoderSpec] = {
    spec.name: spec
    for spec in [
        # VGG: the full-resolution block-1 features are the first skip, as in the original U-Net.
        EncoderSpec(
            "vgg19",
            tvm.vgg19,
            tvm.VGG19_Weights.IMAGENET1K_V1,
            _taps(
                ("features.3", 64, 1),
                ("features.8", 128, 2),
                ("features.17", 256, 4),
                ("features.26", 512, 8),
                ("features.35", 512, 16),
                ("features.36", 512, 32),
            ),
        ),
        EncoderSpec(
            "vgg19_bn",
            tvm.vgg19_bn,
            tvm.VGG19_BN_Weights.IMAGENET1K_V1,
            _taps(
                ("features.5", 64, 1),
                ("features.12", 128, 2),
                ("features.25", 256, 4),
                ("features.38", 512, 8),
                ("features.51", 512, 16),
                ("features.52", 512, 32),
            ),
        ),
        EncoderSpec(
            "mobilenet_v2",
            tvm.mobilenet_v2,
            tvm.MobileNet_V2_Weights.IMAGENET1K_V2,
            _taps(
                ("features.1", 16, 2),
                ("features.3", 24, 4),
                ("features.6", 32, 8),
                ("features.13", 96, 16),
                ("features.18", 1280, 32),
            ),
        ),
        EncoderSpec(
            "mobilenet_v3_large",
            tvm.mobilenet_v3_large,
            tvm.MobileNet_V3_Large_Weights.IMAGENET1K_V2,
            _taps(
                ("features.1", 16, 2),
                ("features.3", 24, 4),
                ("features.6", 40, 8),
                ("features.12", 112, 16),
                ("features.16", 960, 32),
            ),
        ),
        EncoderSpec(
            "efficientnet_b0",
            tvm.efficientnet_b0,
            tvm.EfficientNet_B0_Weights.IMAGENET1K_V1,
            _taps(
                ("features.1", 16, 2),
                ("features.2", 24, 4),
                ("features.3", 40, 8),
                ("features.5", 112, 16),
                ("features.8", 1280, 32),
            ),
        ),
        EncoderSpec(
            "resnet34",
            tvm.resnet34,
            tvm.ResNet34_Weights.IMAGENET1K_V1,
            _taps(
                ("relu", 64, 2),
                ("layer1", 64, 4),
                ("layer2", 128, 8),
                ("layer3", 256, 16),
                ("layer4", 512, 32),
            ),
        ),
        EncoderSpec(
            "resnet50",
            tvm.resnet50,
            tvm.ResNet50_Weights.IMAGENET1K_V2,
            _taps(
                ("relu", 64, 2),
                ("layer1", 256, 4),
                ("layer2", 512, 8),
                ("layer3", 1024, 16),
                ("layer4", 2048, 32),
            ),
        ),
    ]
}


def get_encoder_spec(name: str) -> EncoderSpec:
    """The registry entry for ``name``; an unknown name is an error that suggests close matches."""
    if name in ENCODERS:
        return ENCODERS[name]
    close = difflib.get_close_matches(name, ENCODERS, n=3, cutoff=0.5)
    hint = f"did you mean {' or '.join(close)}?" if close else f"choose from {', '.join(ENCODERS)}"
    raise SeglabError(f"unknown encoder {name!r}; {hint}")


def build_encoder(spec: EncoderSpec, in_channels: int = 3) -> nn.Module:
    """A randomly initialised feature extractor returning ``{tap.node: tensor}``, shallow to deep.

    The torchvision model is built on the meta device and cut after its deepest tap, so the
    parts a U-Net never runs (VGG19's 400 MB classifier) are never allocated. The encoder then
    lives on the default device: the CPU, or under ``with torch.device("meta")`` shapes only
    (what counting costs needs), with nothing allocated or initialised.
    """
    device = torch.get_default_device()
    with torch.device("meta"):
        backbone = spec.builder(weights=None)
        if in_channels != 3:
            _replace_first_conv(backbone, in_channels)
        encoder = create_feature_extractor(backbone, return_nodes=[t.node for t in spec.taps])
    if device.type != "meta":
        encoder = encoder.to_empty(device=device)
        _init_like_torchvision(encoder)
    return encoder


def first_conv_name(module: nn.Module) -> str:
    """The qualified name of the first convolution: the one that sees the image's channels."""
    return next(name for name, m in module.named_modules() if isinstance(m, nn.Conv2d))


def _replace_first_conv(backbone: nn.Module, in_channels: int) -> None:
    name = first_conv_name(backbone)
    old = backbone.get_submodule(name)
    assert isinstance(old, nn.Conv2d)
    new = nn.Conv2d(
        in_channels,
        old.out_channels,
        old.kernel_size,
        old.stride,
        old.padding,
        old.dilation,
        old.groups,
        bias=old.bias is not None,
    )
    backbone.set_submodule(name, new)


def _init_like_torchvision(module: nn.Module) -> None:
    """The initialisation torchvision's VGG, ResNet, MobileNet and EfficientNet all use."""
    for name, m in module.named_modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
            if isinstance(m, nn.BatchNorm2d):
                m.reset_running_stats()
        elif any(True for _ in m.parameters(recurse=False)):
            raise TypeError(f"no initialisation rule for {name} ({type(m).__name__})")


def first_conv_from_rgb(rgb_kernel: torch.Tensor, in_channels: int) -> torch.Tensor:
    """A first-layer kernel for ``in_channels`` inputs derived from pretrained RGB kernels.

    One channel: the sum over RGB (a grey image seen as R=G=B gives the same response).
    More channels: RGB repeated cyclically and rescaled so the response keeps its magnitude.
    """
    if in_channels == 1:
        return rgb_kernel.sum(dim=1, keepdim=True)
    repeats = math.ceil(in_channels / 3)
    return rgb_kernel.repeat(1, repeats, 1, 1)[:, :in_channels] * (3 / in_channels)


def normalisation_for(spec: EncoderSpec, in_channels: int) -> tuple[list[float], list[float]]:
    """The mean and std the weights expect, carried over to ``in_channels`` like the kernels."""
    mean, std = list(spec.mean), list(spec.std)
    if in_channels == 1:
        return [sum(mean) / 3], [sum(std) / 3]
    return [mean[i % 3] for i in range(in_channels)], [std[i % 3] for i in range(in_channels)]
