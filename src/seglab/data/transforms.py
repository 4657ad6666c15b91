"""Joint augmentations of image and mask on torchvision.transforms.v2: the mask is a
``tv_tensors.Mask``, so every geometric step resamples it by nearest neighbour (no invented class
values) and pads it with the ignore index."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from seglab.data.masks import IGNORE

Pair = tuple[torch.Tensor, torch.Tensor]


class RandomScale(v2.Transform):
    """Resize by a factor drawn uniformly from ``scale`` (image bilinear, mask nearest)."""

    def __init__(self, scale: tuple[float, float]):
        super().__init__()
        self.scale = scale

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        height, width = v2.query_size(flat_inputs)
        factor = float(torch.empty(1).uniform_(*self.scale))
        return {"size": [max(1, round(height * factor)), max(1, round(width * factor))]}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        return TF.resize(inpt, params["size"], antialias=True)


class ClassAwareCrop(v2.Transform):
    """A crop of ``size`` that, with probability ``share``, holds a pixel of a class drawn
    uniformly from those in the mask, so a pole or a sign is in the crop as often as the road;
    otherwise anywhere. Inputs smaller than ``size`` are padded at the bottom and right first
    (image with 0, mask with the ignore index)."""

    def __init__(self, size: tuple[int, int], share: float):
        super().__init__()
        self.size, self.share = size, share

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        height, width = v2.query_size(flat_inputs)
        crop_h, crop_w = self.size
        padded_h, padded_w = max(height, crop_h), max(width, crop_w)
        top, left = _draw(0, padded_h - crop_h), _draw(0, padded_w - crop_w)
        mask = next(x for x in flat_inputs if isinstance(x, tv_tensors.Mask))
        classes = mask.unique()
        classes = classes[classes != IGNORE]
        if len(classes) and float(torch.rand(1)) < self.share:
            ys, xs = (mask == classes[_draw(0, len(classes) - 1)]).nonzero(as_tuple=True)
            pixel = _draw(0, len(ys) - 1)
            y, x = int(ys[pixel]), int(xs[pixel])
            top = _draw(max(0, y - crop_h + 1), min(y, padded_h - crop_h))
            left = _draw(max(0, x - crop_w + 1), min(x, padded_w - crop_w))
        return {"padding": [0, 0, padded_w - width, padded_h - height], "top": top, "left": left}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if any(params["padding"]):
            fill = IGNORE if isinstance(inpt, tv_tensors.Mask) else 0
            inpt = TF.pad(inpt, params["padding"], fill=fill)
        return TF.crop(inpt, params["top"], params["left"], *self.size)


class BandJitter(v2.Transform):
    """Colour jitter for images of any number of bands: torchvision's ColorJitter (brightness,
    contrast, saturation, hue) for grey and RGB in [0, 1] (8-bit and 16-bit files); for other
    band counts, where saturation and hue mean nothing, and for float values beyond [0, 1],
    which ColorJitter would clip, brightness (all bands scaled by one factor) and contrast (each
    band pulled towards or away from its own mean). Masks pass unchanged."""

    def __init__(self, strength: float):
        super().__init__()
        self.strength = strength
        self.colour = v2.ColorJitter(strength, strength, strength)

    def forward(self, *inputs: Any) -> Any:
        image = next(x for x in inputs if isinstance(x, tv_tensors.Image))
        unit_range = image.dtype == torch.uint8 or bool(image.min() >= 0 and image.max() <= 1)
        if image.shape[-3] in (1, 3) and unit_range:
            return self.colour(*inputs)
        return super().forward(*inputs)

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        low, high = max(0.0, 1 - self.strength), 1 + self.strength
        return {
            "brightness": float(torch.empty(1).uniform_(low, high)),
            "contrast": float(torch.empty(1).uniform_(low, high)),
        }

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if not isinstance(inpt, tv_tensors.Image):
            return inpt
        values = inpt.as_subclass(torch.Tensor).float() * params["brightness"]
        mean = values.mean(dim=(-2, -1), keepdim=True)
        values = mean + (values - mean) * params["contrast"]
        if inpt.dtype == torch.uint8:  # 8-bit values stay 8-bit; others have no fixed range
            values = values.round().clamp(0, 255).to(torch.uint8)
        return tv_tensors.wrap(values, like=inpt)


def _draw(low: int, high: int) -> int:
    """A uniform integer in [low, high], from torch's random state (seeded per item)."""
    return int(torch.randint(low, high + 1, (1,)))


def train_transform(
    crop_size: tuple[int, int] | None = None,
    scale: tuple[float, float] = (0.75, 1.25),
    hflip: bool = True,
    color_jitter: float = 0.2,
    class_crop: float = 0.0,
) -> Callable[[torch.Tensor, torch.Tensor], Pair]:
    """Random scale, random crop (padded where the image is smaller: image with 0, mask with the
    ignore index), horizontal flip and colour jitter. ``crop_size=None`` crops back to the
    image's own size. ``class_crop``: the share of crops placed to hold a class drawn uniformly
    from those in the image (see ClassAwareCrop)."""
    steps: list[v2.Transform] = []
    if scale != (1.0, 1.0):
        steps.append(RandomScale(scale))
    if hflip:
        steps.append(v2.RandomHorizontalFlip())
    if color_jitter > 0:
        steps.append(BandJitter(color_jitter))
    augment = v2.Compose(steps or [v2.Identity()])
    fill = {tv_tensors.Image: 0, tv_tensors.Mask: IGNORE}

    def apply(image: torch.Tensor, mask: torch.Tensor) -> Pair:
        size = crop_size or tuple(image.shape[-2:])
        if class_crop > 0:
            crop = ClassAwareCrop(size, class_crop)
        else:
            crop = v2.RandomCrop(size, pad_if_needed=True, fill=fill)
        out_image, out_mask = crop(*augment(tv_tensors.Image(image), tv_tensors.Mask(mask)))
        return to_float(out_image), out_mask.as_subclass(torch.Tensor)

    return apply


def eval_transform(image: torch.Tensor, mask: torch.Tensor) -> Pair:
    """Evaluation sees the original resolution: only the conversion to float."""
    return to_float(image), mask


def to_float(image: torch.Tensor) -> torch.Tensor:
    return TF.to_dtype(image.as_subclass(torch.Tensor), torch.float32, scale=True)
