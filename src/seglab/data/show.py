"""Pictures of a dataset for a person to look at: each image beside its mask drawn as a colour
overlay, with a legend of the classes that occur in it. The palette and the legend here are the
ones every picture of classes uses."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from torchvision.utils import draw_segmentation_masks, make_grid

from seglab.data.info import DatasetInfo

GAP = 8  # pixels between the image and its overlay


def palette(info: DatasetInfo) -> np.ndarray:
    """256 x 3 uint8: row c is class c's colour; every other value (ignored) is black."""
    table = np.zeros((256, 3), np.uint8)
    table[: info.num_classes] = np.array(info.colors, np.uint8)
    return table


def colorize(mask: np.ndarray, info: DatasetInfo) -> np.ndarray:
    """H x W x 3 uint8: each class in its colour, ignored pixels black."""
    return palette(info)[np.clip(mask, 0, 255)]


def overlay(
    image: torch.Tensor, mask: torch.Tensor, info: DatasetInfo, alpha: float = 0.5
) -> torch.Tensor:
    """3 x H x W uint8: the image with each class painted over it in its colour (ignored pixels
    left as they are)."""
    rgb = _rgb_uint8(image)
    classes = torch.arange(info.num_classes, device=mask.device)
    masks = mask[None] == classes[:, None, None]
    colors = [tuple(int(v) for v in c) for c in info.colors]
    return draw_segmentation_masks(rgb, masks, alpha=alpha, colors=colors)


def overlay_panel(
    image: torch.Tensor, mask: torch.Tensor, info: DatasetInfo, alpha: float = 0.5
) -> Image.Image:
    """A PIL image: the input, the input with its mask overlaid, and a legend."""
    pictures = [_rgb_uint8(image), overlay(image, mask, info, alpha)]
    # make_grid pads all round; the outer border is cut so only the gap between them stays
    grid = make_grid(pictures, nrow=2, padding=GAP, pad_value=255)[:, GAP:-GAP, GAP:-GAP]
    panel = Image.fromarray(grid.permute(1, 2, 0).numpy())
    present = [c for c in range(info.num_classes) if (mask == c).any()]
    font_size = max(11, mask.shape[-2] // 30)
    return with_legend(panel, info, present, font_size=font_size, columns=3)


def with_legend(
    picture: Image.Image,
    info: DatasetInfo,
    classes: Sequence[int] | None = None,
    font_size: int = 14,
    columns: int | None = None,
) -> Image.Image:
    """The picture with a strip below it: a colour swatch and the name of each class in
    ``classes`` (all by default), ``columns`` to a row (as many 150-pixel columns as fit)."""
    classes = range(info.num_classes) if classes is None else classes
    font = ImageFont.load_default(size=font_size)
    columns = columns or max(1, picture.width // 150)
    row = font_size + 8
    rows = -(-len(classes) // columns)
    canvas = Image.new("RGB", (picture.width, picture.height + rows * row + 8), "white")
    canvas.paste(picture, (0, 0))
    draw = ImageDraw.Draw(canvas)
    column = picture.width // columns
    for k, c in enumerate(classes):
        x, y = (k % columns) * column + 4, picture.height + 6 + (k // columns) * row
        swatch = [x, y, x + font_size, y + font_size]
        draw.rectangle(swatch, fill=tuple(info.colors[c]), outline="black")
        draw.text((x + font_size + 6, y), info.classes[c], fill="black", font=font)
    return canvas


def save_overlays(
    dataset, info: DatasetInfo, out: Path, count: int = 8, seed: int = 0
) -> list[Path]:
    """``count`` evenly spread items of ``dataset`` as PNG panels in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    indices = np.linspace(0, len(dataset) - 1, num=min(count, len(dataset))).round().astype(int)
    written = []
    for i in dict.fromkeys(indices.tolist()):
        image, mask = dataset[i]
        name = getattr(dataset, "pairs", None)
        stem = Path(name[i][0]).stem if name else f"{i:05d}"
        path = out / f"{stem}.png"
        overlay_panel(image, mask, info).save(path)
        written.append(path)
    return written


def _rgb_uint8(image: torch.Tensor) -> torch.Tensor:
    """3 x H x W uint8 from an image (uint8, or float in [0, 1]): grey repeated to RGB. An image
    of other than 1 or 3 bands shows its first three (its first alone where it has two), each
    stretched between its 2nd and 98th percentile, since such bands seldom span [0, 1]."""
    bands = image.shape[0]
    if bands in (1, 3):
        rgb = (image.float().clamp(0, 1) * 255).byte() if image.is_floating_point() else image
        return rgb.expand(3, -1, -1).contiguous() if bands == 1 else rgb.contiguous()
    shown = image[:3].float() if bands > 3 else image[:1].float().expand(3, -1, -1)
    flat = shown.flatten(1)
    flat = flat[:, :: max(1, flat.shape[1] // 1_000_000)]  # torch.quantile refuses huge inputs
    low, high = flat.quantile(0.02, dim=1), flat.quantile(0.98, dim=1)
    spread = (high - low).clamp_min(1e-12)[:, None, None]
    stretched = (shown - low[:, None, None]) / spread
    return (stretched.clamp(0, 1) * 255).byte().contiguous()
