"""Tiny datasets written to temporary folders, one file at a time, as users' data would be."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile
from PIL import Image


def write_image(path: Path, size=(40, 30), mode="RGB", seed=0) -> Path:
    width, height = size
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode == "I;16":
        Image.fromarray(rng.integers(0, 65535, (height, width), dtype=np.uint16)).save(path)
    else:
        channels = 3 if mode == "RGB" else 1
        array = rng.integers(0, 256, (height, width, channels), dtype=np.uint8)
        Image.fromarray(array.squeeze(-1) if channels == 1 else array, mode).save(path)
    return path


def write_mask(path: Path, values: np.ndarray, palette: list[int] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if values.ndim == 3:
        Image.fromarray(values.astype(np.uint8), "RGB").save(path)
    else:
        im = Image.fromarray(values.astype(np.uint8), "L")
        if palette is not None:
            im = im.convert("P")
            im.putpalette(palette)
        im.save(path)
    return path


def class_mask(size=(40, 30), num_classes=3, seed=0) -> np.ndarray:
    width, height = size
    return np.random.default_rng(seed).integers(0, num_classes, (height, width))


def make_pairs(
    root: Path,
    split_counts: dict[str, int] | int,
    num_classes=3,
    size=(40, 30),
    images="images",
    masks="masks",
    mode="RGB",
) -> Path:
    """images/ + masks/ with index masks; split subfolders when given a dict."""
    splits = split_counts if isinstance(split_counts, dict) else {"": split_counts}
    for split, count in splits.items():
        for i in range(count):
            write_image(root / images / split / f"img{i:03d}.png", size, mode, seed=i)
            write_mask(root / masks / split / f"img{i:03d}.png", class_mask(size, num_classes, i))
    return root


def make_camvid(root: Path, counts=None, size=(48, 36)) -> Path:
    for split, count in (counts or {"train": 4, "val": 2}).items():
        for i in range(count):
            write_image(root / split / f"f{i:03d}.png", size, seed=i)
            write_mask(root / f"{split}annot" / f"f{i:03d}.png", class_mask(size, 12, i))
    return root


def band_scene(
    seed: int, bands: int = 5, size=(32, 32), num_classes: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    """A 16-bit multispectral scene (bands x H x W uint16, 12-bit values as many sensors give)
    and its mask: classes in 8x8 blocks, class c brightening one band of its own (the last bands
    for several bands, the only one for one), so the bands alone tell the classes apart."""
    height, width = size
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, num_classes, (height // 8, width // 8))
    mask = np.kron(blocks, np.ones((8, 8), dtype=np.int64))
    image = rng.normal(800, 60, (bands, height, width))
    for c in range(num_classes):
        image[(bands - num_classes + c) % bands][mask == c] += 1200 * (1 if bands > 1 else c)
    return np.clip(image, 0, 4095).astype(np.uint16), mask


def make_band_pairs(
    root: Path, counts=None, bands: int = 5, num_classes: int = 3, suffix: str = ".tif"
) -> Path:
    """images/ + masks/ with train/ and val/ (8 and 4 by default): 16-bit scenes of ``bands``
    bands (see band_scene) as TIFFs with the bands as samples of a pixel (or, with ``suffix``
    .png, single-band 16-bit PNGs), and 8-bit index masks."""
    for split, count in (counts or {"train": 8, "val": 4}).items():
        for i in range(count):
            image, mask = band_scene(
                i + (100 if split == "val" else 0), bands, num_classes=num_classes
            )
            path = root / "images" / split / f"scene{i:03d}{suffix}"
            path.parent.mkdir(parents=True, exist_ok=True)
            if suffix == ".png":
                Image.fromarray(image[0]).save(path)
            else:
                tifffile.imwrite(
                    path, image.transpose(1, 2, 0), photometric="minisblack", planarconfig="contig"
                )
            write_mask(root / "masks" / split / f"scene{i:03d}.png", mask)
    return root
