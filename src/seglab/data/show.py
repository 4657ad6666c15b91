"""Pictures of a dataset for a person to look at: each image beside its mask drawn as a colour
overlay, with a legend of the classes that occur in it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from seglab.data.info import DatasetInfo


def colorize(mask: np.ndarray, info: DatasetInfo) -> np.ndarray:
    """H x W x 3 uint8: each class in its colour, ignored pixels black."""
    palette = np.zeros((256, 3), np.uint8)
    palette[: info.num_classes] = np.array(info.colors, np.uint8)
    return palette[np.clip(mask, 0, 255)]


def overlay_panel(image: torch.Tensor, mask: torch.Tensor, info: DatasetInfo, alpha: float = 0.5):
    """A PIL image: the input, the input with its mask overlaid, and a legend."""
    rgb = (image.float().clamp(0, 1) * 255).byte()
    rgb = rgb.expand(3, -1, -1) if rgb.shape[0] == 1 else rgb[:3]
    rgb = rgb.permute(1, 2, 0).numpy()
    mask_np = mask.numpy()
    colors = colorize(mask_np, info)
    labelled = (mask_np != info.ignore_index)[..., None]
    blended = np.where(labelled, (1 - alpha) * rgb + alpha * colors, rgb).astype(np.uint8)
    height, width = mask_np.shape
    present = [c for c in range(info.num_classes) if (mask_np == c).any()]
    font = ImageFont.load_default(size=max(11, height // 30))
    row = font.size + 6
    legend_height = row * ((len(present) + 2) // 3) + 8
    canvas = Image.new("RGB", (2 * width + 8, height + legend_height), "white")
    canvas.paste(Image.fromarray(rgb), (0, 0))
    canvas.paste(Image.fromarray(blended), (width + 8, 0))
    draw = ImageDraw.Draw(canvas)
    column = (2 * width + 8) // 3
    for k, c in enumerate(present):
        x, y = (k % 3) * column + 4, height + 4 + (k // 3) * row
        draw.rectangle(
            [x, y, x + font.size, y + font.size], fill=tuple(info.colors[c]), outline="black"
        )
        draw.text((x + font.size + 6, y), info.classes[c], fill="black", font=font)
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
