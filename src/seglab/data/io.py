"""Decoding images and masks from disk with Pillow: PNG, JPEG, TIFF, BMP; 8 or 16 bit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")


def image_channels(mode: str) -> int:
    return 1 if mode in GREY_MODES else 3


def read_image(path: Path, channels: int) -> torch.Tensor:
    """C x H x W: uint8 for 8-bit files, float32 in [0, 1] for 16-bit and float ones. Grey files
    in a colour dataset are repeated to RGB; alpha is dropped."""
    with Image.open(path) as im:
        mode = im.mode
        if mode in ("I", "I;16", "I;16B", "I;16L", "F"):
            array = np.asarray(im, dtype=np.float32)
            array = array / (65535.0 if mode != "F" else max(float(array.max()), 1.0))
            tensor = torch.from_numpy(np.clip(array, 0, 1))[None]
        else:
            im = im.convert("L" if mode in GREY_MODES else "RGB")
            tensor = (
                torch.from_numpy(np.array(im)).reshape(im.height, im.width, -1).permute(2, 0, 1)
            )
    if tensor.shape[0] != channels:
        tensor = tensor.expand(channels, -1, -1).contiguous() if tensor.shape[0] == 1 else tensor
    return tensor


def read_raw_mask(path: Path) -> np.ndarray:
    """H x W int64 of the values the file stores: class indices or ids as they are (palette PNGs
    give their indices), and for colour masks the RGB colour packed as ``r << 16 | g << 8 | b``."""
    with Image.open(path) as im:
        return raw_mask_values(im)


def is_colour_mask(im: Image.Image) -> bool:
    return im.mode in ("RGB", "RGBA")


def raw_mask_values(im: Image.Image) -> np.ndarray:
    if is_colour_mask(im):
        rgb = np.asarray(im.convert("RGB"), dtype=np.int64)
        return rgb[..., 0] << 16 | rgb[..., 1] << 8 | rgb[..., 2]
    return np.asarray(im).astype(np.int64)


def pack_rgb(color: tuple[int, int, int] | list[int]) -> int:
    r, g, b = color
    return int(r) << 16 | int(g) << 8 | int(b)


def unpack_rgb(value: int) -> tuple[int, int, int]:
    return (value >> 16) & 255, (value >> 8) & 255, value & 255
