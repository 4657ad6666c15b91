"""U-Net: an encoder's feature maps at successive strides feed a decoder through skips."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from seglab.errors import SeglabError
from seglab.models import INPUT_NORMS
from seglab.models.encoders import build_encoder, get_encoder_spec, normalisation_for
from seglab.models.weights import imagenet_state_dict, load_encoder_weights, read_state_dict

DEFAULT_DECODER_CHANNELS = (256, 128, 64, 32, 16)
INPUT_STEM = "input_stem"  # the feature name of the full-resolution skip


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild a model's architecture; saved in every checkpoint."""

    encoder: str
    num_classes: int
    in_channels: int = 3
    decoder_channels: tuple[int, ...] = DEFAULT_DECODER_CHANNELS
    # Channels of a stride-1 stem on the image, a skip for the decoder's last block where the
    # encoder has no full-resolution tap (0: none)
    full_res_skip: int = 0
    # How images are normalised before the encoder: "dataset" (the weights' fixed mean and std)
    # or "image" (each image by its own per-channel mean and std)
    input_norm: str = "dataset"

    def to_dict(self) -> dict:
        return {**asdict(self), "decoder_channels": list(self.decoder_channels)}

    @classmethod
    def from_dict(cls, d: dict) -> ModelSpec:
        return cls(**{**d, "decoder_channels": tuple(d["decoder_channels"])})


class NearestUpsample(nn.Module):
    """Nearest-neighbour upsampling to an exact ``size`` (F.interpolate): the decoder's x2,
    to the skip's size. No state, so it may be swapped for an equivalent (CopyUpsample)."""

    def forward(self, x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
        return F.interpolate(x, size=tuple(size), mode="nearest")


class CopyUpsample(nn.Module):
    """NearestUpsample's exact values as copies: each value times a 2x2 block of ones
    (broadcast, x * 1 is x to the bit), the blocks viewed as rows and columns twice as many.
    Nearest from n to 2n picks source i // 2, which is that copy; to 2n - 1 (an encoder that
    rounds up met an odd size) the same, its last row cut; to 2n + 1 (one that rounds down)
    source floor(i * n / (2n + 1)), which is the copy with its first row once more in front.
    The same by columns; any other size goes to F.interpolate. For backends with no nearest
    resize (ExecuTorch's XNNPACK takes views, multiplication, slices and concatenation), in
    graphs of one size: the branch on the size is fixed when the graph is exported. No state
    in state dicts (the ones are not saved)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("ones", torch.ones(1, 1, 1, 2, 1, 2), persistent=False)

    def forward(self, x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
        (batch, channels, height, width), (rows, columns) = x.shape, size
        if abs(rows - 2 * height) > 1 or abs(columns - 2 * width) > 1:
            return F.interpolate(x, size=(rows, columns), mode="nearest")
        blocks = x.view(batch, channels, height, 1, width, 1) * self.ones.to(x.dtype)
        x = blocks.view(batch, channels, 2 * height, 2 * width)
        if rows < 2 * height or columns < 2 * width:  # no no-op slices: they split XNNPACK's graph
            x = x[:, :, : min(rows, 2 * height), : min(columns, 2 * width)]
        if rows > 2 * height:
            x = torch.cat([x[:, :, :1], x], dim=2)
        if columns > 2 * width:
            x = torch.cat([x[..., :1], x], dim=3)
        return x


class DecoderBlock(nn.Module):
    """Upsample x2, concatenate the skip (if any), then 2 x (3x3 conv, BatchNorm, ReLU)."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int):
        super().__init__()
        self.upsample: nn.Module = NearestUpsample()
        self.convs = nn.Sequential(
            _conv_bn_relu(in_channels + skip_channels, out_channels),
            _conv_bn_relu(out_channels, out_channels),
        )

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None, size: Sequence[int]):
        # Upsampling to the skip's exact size (not a blind x2) lets any input size through:
        # encoders round odd sizes up or down, and the decoder follows them back.
        x = self.upsample(x, size)
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
        return self.convs(x)


def _conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class UNet(nn.Module):
    """Maps N x C x H x W images with values in [0, 1] to N x num_classes x H x W logits.

    The normalisation the encoder's weights expect is part of the model (``mean``/``std``
    buffers), so a checkpoint or an exported graph needs nothing else to be used correctly.
    """

    def __init__(self, spec: ModelSpec):
        super().__init__()
        enc = get_encoder_spec(spec.encoder)
        steps = enc.output_stride.bit_length() - 1  # number of x2 upsamplings back to stride 1
        if len(spec.decoder_channels) != steps:
            raise SeglabError(
                f"encoder {spec.encoder} has output stride {enc.output_stride}, so the decoder "
                f"needs {steps} channel widths, got {len(spec.decoder_channels)}"
            )
        self.spec = spec
        self.encoder = build_encoder(enc, spec.in_channels)
        self.taps = [t.node for t in enc.taps]
        skips = {t.stride: (t.node, t.channels) for t in enc.taps[:-1]}
        self.input_stem = None
        if spec.full_res_skip:
            if 1 in skips:
                raise SeglabError(
                    f"encoder {spec.encoder} already gives the decoder a full-resolution skip "
                    "(its first tap is at stride 1); leave full_res_skip at 0"
                )
            # Two 3x3 convolutions on the normalised image: edges of thin objects at full size
            self.input_stem = nn.Sequential(
                _conv_bn_relu(spec.in_channels, spec.full_res_skip),
                _conv_bn_relu(spec.full_res_skip, spec.full_res_skip),
            )
            skips[1] = (INPUT_STEM, spec.full_res_skip)
        # Decoder block i brings the features to stride 2**(steps-1-i) and takes the skip there.
        self.skip_nodes: list[str | None] = []
        self.block_strides: list[int] = []
        blocks = []
        cin = enc.taps[-1].channels
        for i, cout in enumerate(spec.decoder_channels):
            stride = 2 ** (steps - 1 - i)
            node, channels = skips.get(stride, (None, 0))
            self.skip_nodes.append(node)
            self.block_strides.append(stride)
            blocks.append(DecoderBlock(cin, channels, cout))
            cin = cout
        self.decoder = nn.ModuleList(blocks)
        self.classifier = nn.Conv2d(cin, spec.num_classes, kernel_size=1)
        mean, std = normalisation_for(enc, spec.in_channels)
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))
        self.encoder_frozen = False

    def set_normalisation(self, mean: Sequence[float], std: Sequence[float]) -> None:
        """Normalise inputs by this per-channel ``mean`` and ``std`` (e.g. a dataset's)."""
        if len(mean) != self.spec.in_channels or len(std) != self.spec.in_channels:
            raise SeglabError(
                f"normalisation needs {self.spec.in_channels} means and stds (one per input "
                f"channel), got {len(mean)} and {len(std)}"
            )
        self.mean.copy_(torch.tensor(mean, dtype=self.mean.dtype).view_as(self.mean))
        self.std.copy_(torch.tensor(std, dtype=self.std.dtype).view_as(self.std))

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        if self.spec.input_norm == "image":
            # Each image to zero mean and unit spread per channel: a darker hour or another
            # camera's exposure and white balance no longer move what the encoder sees.
            centred = images - images.mean(dim=(2, 3), keepdim=True)
            spread = centred.pow(2).mean(dim=(2, 3), keepdim=True).add(1e-4).sqrt()
            return centred / spread
        return (images - self.mean) / self.std

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.normalise(images)
        features = self.encoder(x)
        if self.input_stem is not None:
            features = {**features, INPUT_STEM: self.input_stem(x)}
        out = features[self.taps[-1]]
        height, width = images.shape[-2:]
        for block, node, stride in zip(
            self.decoder, self.skip_nodes, self.block_strides, strict=True
        ):
            skip = features[node] if node else None
            size = (
                skip.shape[-2:] if skip is not None else (-(-height // stride), -(-width // stride))
            )
            out = block(out, skip, size)
        return self.classifier(out)

    # Transfer learning: a frozen encoder keeps its weights and its BatchNorm statistics.
    def freeze_encoder(self) -> None:
        self.encoder.requires_grad_(False)
        self.encoder_frozen = True
        self.encoder.eval()

    def unfreeze_encoder(self) -> None:
        self.encoder.requires_grad_(True)
        self.encoder_frozen = False
        self.encoder.train(self.training)

    def train(self, mode: bool = True) -> UNet:
        super().train(mode)
        if self.encoder_frozen:
            self.encoder.eval()
        return self

    def encoder_parameters(self) -> Iterator[nn.Parameter]:
        return self.encoder.parameters()

    def decoder_parameters(self) -> Iterator[nn.Parameter]:
        """Everything not from the pretrained encoder (new layers, trained from scratch)."""
        if self.input_stem is not None:
            yield from self.input_stem.parameters()
        yield from self.decoder.parameters()
        yield from self.classifier.parameters()


@contextlib.contextmanager
def copy_upsampling(model: UNet) -> Iterator[UNet]:
    """``model`` upsampling with CopyUpsample while the block runs (the same outputs, in a form
    ExecuTorch's XNNPACK backend takes), then as before. The model itself, not a copy: a copy
    may round differently (oneDNN picks kernels by the weights' memory alignment)."""
    saved = [block.upsample for block in model.decoder]
    try:
        for block in model.decoder:
            block.upsample = CopyUpsample().to(model.mean.device)
        yield model
    finally:
        for block, upsample in zip(model.decoder, saved, strict=True):
            block.upsample = upsample


def build_model(
    encoder: str = "mobilenet_v2",
    num_classes: int = 12,
    in_channels: int = 3,
    encoder_weights: str | os.PathLike | None = "imagenet",
    decoder_channels: Sequence[int] = DEFAULT_DECODER_CHANNELS,
    full_res_skip: int = 0,
    input_norm: str = "dataset",
    input_stats: tuple[Sequence[float], Sequence[float]] | None = None,
) -> UNet:
    """A U-Net on a registered encoder.

    ``encoder_weights``: ``"imagenet"`` (torchvision's official weights via the torch.hub cache),
    ``None`` (random initialisation), or the path of a torchvision-format state dict.
    ``full_res_skip``: channels of a stride-1 stem whose features skip to the last decoder block.
    ``input_norm``: ``"dataset"`` (the weights' mean and std) or ``"image"`` (each image's own).
    ``input_stats``: (mean, std) per input channel to normalise by in place of the weights' own
    (with ``input_norm="dataset"``): the training data's, for bands the weights never saw. They
    are buffers of the model, so its checkpoints and exports normalise the same way.
    """
    if num_classes < 1 or in_channels < 1:
        raise SeglabError(
            f"num_classes and in_channels must be >= 1, got {num_classes}, {in_channels}"
        )
    if input_norm not in INPUT_NORMS:
        raise SeglabError(f"input_norm must be one of {', '.join(INPUT_NORMS)}, got {input_norm!r}")
    spec = ModelSpec(
        encoder, num_classes, in_channels, tuple(decoder_channels), full_res_skip, input_norm
    )
    model = UNet(spec)
    if input_stats is not None:
        model.set_normalisation(*input_stats)
    if encoder_weights is not None:
        enc = get_encoder_spec(encoder)
        if str(encoder_weights) == "imagenet":
            state, source = imagenet_state_dict(enc), enc.weights_file
        else:
            state, source = read_state_dict(encoder_weights), str(encoder_weights)
        load_encoder_weights(model.encoder, state, source, encoder)
    return model
