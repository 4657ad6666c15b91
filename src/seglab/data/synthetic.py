"""The built-in synthetic dataset: procedural street-like scenes, generated on the fly from a seed.

Seven classes with very different pixel shares (sky and ground cover most of an image, poles and
signs a few percent), class-typical textures rather than class-typical colours (cars come in any
colour, poles and buildings share greys), global lighting changes and sensor noise: an untrained
model scores low, a trained one clearly higher, and nothing needs downloading.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from seglab.data.info import DatasetInfo
from seglab.data.segmentation_dataset import SegmentationDataset, Transform
from seglab.errors import SeglabError

INFO = DatasetInfo(
    name="synthetic",
    classes=("sky", "ground", "building", "tree", "car", "pole", "sign"),
    colors=(
        (70, 130, 180),
        (128, 64, 128),
        (70, 70, 70),
        (107, 142, 35),
        (0, 0, 142),
        (153, 153, 153),
        (220, 220, 0),
    ),
)
SKY, GROUND, BUILDING, TREE, CAR, POLE, SIGN = range(7)
SPLITS = {"train": (0, 512), "val": (1, 96), "test": (2, 96)}  # split id (seed stream), length


class SyntheticScenes(SegmentationDataset):
    info = INFO

    def __init__(
        self,
        split: str = "train",
        size: tuple[int, int] = (128, 160),
        seed: int = 0,
        length: int | None = None,
        transform: Transform | None = None,
    ):
        if split not in SPLITS:
            raise SeglabError(f"synthetic dataset has splits {', '.join(SPLITS)}, not {split!r}")
        self.split_id, default_length = SPLITS[split]
        self.length = default_length if length is None else length
        self.size = size
        self.seed = seed
        self.transform = transform

    def __len__(self) -> int:
        return self.length

    def load(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= index < self.length:
            raise IndexError(index)
        rng = np.random.default_rng([self.seed, self.split_id, index])
        image, mask = render_scene(rng, *self.size)
        return torch.from_numpy(image).permute(2, 0, 1), torch.from_numpy(mask).long()


def render_scene(
    rng: np.random.Generator, height: int, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """One scene: float32 H x W x 3 image in [0, 1] and uint8 H x W class mask."""
    canvas = _Canvas.blank(height, width)
    horizon = _paint_sky_and_ground(canvas, rng)
    # Back to front, each layer over the last; the order also fixes which draw of ``rng`` feeds
    # what, so the scenes of a seed never change.
    level = horizon.mean()
    _paint_buildings(canvas, rng, level)
    _paint_trees(canvas, rng, level)
    _paint_cars(canvas, rng, level)
    _paint_poles_and_signs(canvas, rng, level)
    return _light_and_sensor_noise(canvas.image, rng), canvas.mask


@dataclass
class _Canvas:
    """A scene being painted: image (H x W x 3), class mask and each pixel's row and column."""

    image: np.ndarray
    mask: np.ndarray
    yy: np.ndarray
    xx: np.ndarray

    @classmethod
    def blank(cls, height: int, width: int) -> _Canvas:
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        image = np.zeros((height, width, 3), np.float32)
        return cls(image, np.zeros((height, width), np.uint8), yy, xx)

    @property
    def height(self) -> int:
        return self.mask.shape[0]

    @property
    def width(self) -> int:
        return self.mask.shape[1]

    def noise(self, rng: np.random.Generator, cell: int) -> np.ndarray:
        return _noise(rng, self.height, self.width, cell)

    def paint(self, region: np.ndarray, cls: int, texture: np.ndarray) -> None:
        self.image[region] = texture[region]
        self.mask[region] = cls


def _paint_sky_and_ground(canvas: _Canvas, rng: np.random.Generator) -> np.ndarray:
    """Sky above a wavy horizon, ground below it; returns the horizon's row in each column."""
    height, width, yy, xx = canvas.height, canvas.width, canvas.yy, canvas.xx
    horizon = height * rng.uniform(0.35, 0.6) + rng.uniform(2, 6) * np.sin(
        xx / width * rng.uniform(2, 8) + rng.uniform(0, 6.3)
    )
    sky_top, sky_bottom = rng.uniform(0.3, 0.9, 3), rng.uniform(0.5, 1.0, 3)
    t = (yy / height)[..., None]
    canvas.paint(yy >= 0, SKY, sky_top * (1 - t) + sky_bottom * t + 0.05 * canvas.noise(rng, 16))
    ground = rng.uniform(0.2, 0.6) + rng.uniform(-0.08, 0.08, 3)
    grain = 0.12 * canvas.noise(rng, 2)
    stripes = 0.08 * (np.sin((xx - width / 2) / (yy - horizon + 8).clip(1) * 40) > 0.7)[..., None]
    canvas.paint(yy > horizon, GROUND, ground + grain + stripes)
    return horizon


def _paint_buildings(canvas: _Canvas, rng: np.random.Generator, level: float) -> None:
    """Buildings standing on the horizon (mean row ``level``): flat walls with a grid of
    windows."""
    height, width, yy, xx = canvas.height, canvas.width, canvas.yy, canvas.xx
    for _ in range(rng.integers(1, 5)):
        w, h = rng.uniform(0.12, 0.4) * width, rng.uniform(0.2, 0.5) * height
        x0, base = rng.uniform(-0.1, 0.95) * width, level + rng.uniform(0, 6)
        wall = rng.uniform(0.25, 0.75) + rng.uniform(-0.06, 0.06, 3)
        period = rng.integers(5, 10)
        windows = ((xx - x0) % period < period / 2) & ((yy - base) % period < period / 2)
        texture = wall - 0.25 * windows[..., None] + 0.03 * canvas.noise(rng, 4)
        canvas.paint((xx >= x0) & (xx < x0 + w) & (yy > base - h) & (yy < base), BUILDING, texture)


def _paint_trees(canvas: _Canvas, rng: np.random.Generator, level: float) -> None:
    """Trees: blotchy ellipses up to a quarter of the image above the horizon."""
    height, width, yy, xx = canvas.height, canvas.width, canvas.yy, canvas.xx
    for _ in range(rng.integers(0, 4)):
        cx, cy = rng.uniform(0, width), level - rng.uniform(0, 0.25) * height
        rx, ry = rng.uniform(0.06, 0.18) * width, rng.uniform(0.1, 0.3) * height
        leaf = np.array([rng.uniform(0.1, 0.4), rng.uniform(0.3, 0.7), rng.uniform(0.05, 0.3)])
        texture = leaf + 0.3 * canvas.noise(rng, 3)
        canvas.paint(((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 < 1, TREE, texture)


def _paint_cars(canvas: _Canvas, rng: np.random.Generator, level: float) -> None:
    """Cars on the ground, larger nearer the bottom, any colour, with dark wheels and a window
    band."""
    height, width, yy, xx = canvas.height, canvas.width, canvas.yy, canvas.xx
    for _ in range(rng.integers(0, 4)):
        y1 = rng.uniform(level + 4, height)
        scale = (y1 - level) / height + 0.1
        w, h = scale * width * rng.uniform(0.35, 0.6), scale * height * rng.uniform(0.2, 0.35)
        x0 = rng.uniform(-0.1, 0.9) * width
        body = (xx >= x0) & (xx < x0 + w) & (yy > y1 - h) & (yy < y1)
        paint_color = rng.uniform(0, 1, 3)
        wheel = (yy > y1 - h * 0.25) & (((xx - x0) % max(w / 2, 1)) < w * 0.2)
        glass = (yy > y1 - h * 0.9) & (yy < y1 - h * 0.6)
        texture = np.where((wheel | glass)[..., None], 0.1, paint_color) + 0.03 * canvas.noise(
            rng, 4
        )
        canvas.paint(body, CAR, texture)


def _paint_poles_and_signs(canvas: _Canvas, rng: np.random.Generator, level: float) -> None:
    """Poles (1-3 px wide) standing below the horizon, most carrying a small sign on top."""
    height, width, yy, xx = canvas.height, canvas.width, canvas.yy, canvas.xx
    for _ in range(rng.integers(0, 4)):
        x0, thick = rng.uniform(0, width), rng.integers(1, 4)
        bottom = rng.uniform(level, height)
        top = bottom - rng.uniform(0.3, 0.6) * height
        grey = rng.uniform(0.3, 0.8)
        pole = (xx >= x0) & (xx < x0 + thick) & (yy > top) & (yy < bottom)
        canvas.paint(pole, POLE, np.full_like(canvas.image, grey))
        if rng.random() < 0.7:
            _paint_sign(canvas, rng, x0, top)


def _paint_sign(canvas: _Canvas, rng: np.random.Generator, x0: float, top: float) -> None:
    """A red, blue or yellow disc or triangle centred on the top of a pole."""
    yy, xx = canvas.yy, canvas.xx
    r = rng.uniform(3, 7)
    color = np.array([(1, 0.1, 0.1), (0.1, 0.3, 1), (1, 0.9, 0.1)][rng.integers(0, 3)])
    shape = (
        ((xx - x0) ** 2 + (yy - top) ** 2 < r * r)
        if rng.random() < 0.5
        else ((np.abs(xx - x0) < (yy - top + r)) & (yy < top + r))
    )
    canvas.paint(shape, SIGN, color + 0.1 * canvas.noise(rng, 2))


def _light_and_sensor_noise(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The scene under a random global lighting, with sensor noise, clipped to [0, 1]."""
    image = image * rng.uniform(0.6, 1.3) + rng.uniform(-0.1, 0.1)
    image += rng.normal(0, rng.uniform(0.02, 0.08), image.shape)
    return np.clip(image, 0, 1).astype(np.float32)


def _noise(rng: np.random.Generator, height: int, width: int, cell: int) -> np.ndarray:
    """Smooth value noise in [-1, 1] with features about ``cell`` pixels across, H x W x 1."""
    coarse = rng.uniform(-1, 1, (height // cell + 2, width // cell + 2)).astype(np.float32)
    big = Image.fromarray(coarse, mode="F").resize(
        (width + 2 * cell, height + 2 * cell), Image.BILINEAR
    )
    return np.asarray(big)[cell : cell + height, cell : cell + width, None]
