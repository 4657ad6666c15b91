"""Shapes to pixels: polygons, COCO RLE and CVAT RLE as boolean masks.

The convention (COCO's): coordinates are continuous image coordinates, pixel (column i, row j) is
the unit square [i, i+1) x [j, j+1), and a pixel belongs to a polygon when its centre
(i + 0.5, j + 0.5) lies inside it (even-odd rule). A centre exactly on an edge (on integer-vertex
polygons this happens on diagonal edges only) counts when the polygon lies below the edge, as
pycocotools decides it: the centre is tested a millionth of a pixel lower. A rectangle from
(1, 1) to (5, 4) is then the 4 x 3 pixels of columns 1-4 and rows 1-3, as its area says.

Pillow fills the polygon, but its scanline fill rounds each span's ends to the nearest pixel
(pixels whose centres lie up to half a pixel outside are filled); so the pixels near the outline
are decided again by matplotlib's exact point-in-polygon test at their centres. RLE is decoded
by pycocotools (COCO, column-major) and by :func:`cvat_rle` (CVAT, row-major).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
from matplotlib.path import Path as MplPath
from PIL import Image, ImageDraw

TIE_SHIFT = 1e-6  # a centre on an edge is tested this much lower (pixels): below-edge ties count
BAND = 7  # the outline widened to BAND pixels: where Pillow's rounded fill may be wrong
MARGIN = BAND  # pixels around a polygon's bounding box that the band may reach


def polygon_mask(points: Sequence[float] | np.ndarray, height: int, width: int) -> np.ndarray:
    """The (height, width) boolean mask of the polygon ``points`` (x0, y0, x1, y1, ... in pixel
    coordinates); pixels outside the image are cut off. Fewer than 3 vertices: an empty mask."""
    xy = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    mask = np.zeros((height, width), dtype=bool)
    if len(xy) < 3 or not np.isfinite(xy).all():
        return mask
    x0 = max(0, math.floor(xy[:, 0].min()) - MARGIN)
    y0 = max(0, math.floor(xy[:, 1].min()) - MARGIN)
    x1 = min(width, math.ceil(xy[:, 0].max()) + MARGIN)
    y1 = min(height, math.ceil(xy[:, 1].max()) + MARGIN)
    if x0 >= x1 or y0 >= y1:
        return mask
    mask[y0:y1, x0:x1] = _window(xy - (x0, y0), y1 - y0, x1 - x0)
    return mask


def _window(xy: np.ndarray, height: int, width: int) -> np.ndarray:
    """The polygon filled on a (height, width) canvas: Pillow's fill, with the pixels near the
    outline tested exactly at their centres."""
    # Pillow puts pixel centres at integer coordinates: shift by half a pixel
    corners = [(float(x) - 0.5, float(y) - 0.5) for x, y in xy]
    fill = Image.new("1", (width, height), 0)
    ImageDraw.Draw(fill).polygon(corners, fill=1)
    outline = Image.new("1", (width, height), 0)
    ImageDraw.Draw(outline).line([*corners, corners[0]], fill=1, width=1)
    near = np.zeros((height, width), dtype=bool)
    on_rows, on_cols = np.nonzero(np.asarray(outline))
    reach = np.arange(-(BAND // 2), BAND // 2 + 1)
    for dy in reach:  # the outline widened to a band BAND pixels wide
        for dx in reach:
            near[np.clip(on_rows + dy, 0, height - 1), np.clip(on_cols + dx, 0, width - 1)] = True
    mask = np.asarray(fill, dtype=bool).copy()
    rows, cols = np.nonzero(near)
    if len(rows):
        path = MplPath(np.vstack([xy, xy[:1]]), closed=True)
        centres = np.stack([cols + 0.5, rows + 0.5 + TIE_SHIFT], axis=1)
        mask[rows, cols] = path.contains_points(centres)
    return mask


def box_polygon(x0: float, y0: float, x1: float, y1: float, rotation: float = 0.0) -> list[float]:
    """The corners of a box (pixel coordinates of two opposite corners) as a polygon, turned by
    ``rotation`` degrees (clockwise on the image, as CVAT turns it) about its centre."""
    xa, xb, ya, yb = min(x0, x1), max(x0, x1), min(y0, y1), max(y0, y1)
    corners = np.array([(xa, ya), (xb, ya), (xb, yb), (xa, yb)], dtype=np.float64)
    if rotation:
        centre = corners.mean(axis=0)
        a = math.radians(rotation)
        turn = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
        corners = (corners - centre) @ turn.T + centre
    return corners.ravel().tolist()


def coco_rle(segmentation: dict, height: int, width: int) -> np.ndarray:
    """A COCO RLE segmentation (``counts`` a list: uncompressed; a string: compressed) decoded by
    pycocotools, as a (height, width) boolean mask."""
    from pycocotools import mask as coco_mask  # only COCO imports need it (start-up time)

    rle = segmentation
    if isinstance(rle.get("counts"), list):
        rle = coco_mask.frPyObjects(rle, *rle["size"])
    elif isinstance(rle.get("counts"), str):
        rle = {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
    with warnings.catch_warnings():  # pycocotools 2.0 under numpy 2: a DeprecationWarning
        warnings.simplefilter("ignore", DeprecationWarning)
        decoded = coco_mask.decode(rle).astype(bool)
    if decoded.shape != (height, width):
        raise ValueError(f"RLE of size {decoded.shape[0]}x{decoded.shape[1]}")
    return decoded


def cvat_rle(counts: Sequence[int], height: int, width: int) -> np.ndarray:
    """CVAT's ``<mask rle=...>``: run lengths over a height x width box in row-major order,
    starting with a run of 0s (possibly empty), alternating 0 and 1."""
    counts = np.asarray(counts, dtype=np.int64)
    if (counts < 0).any() or counts.sum() != height * width:
        raise ValueError(f"runs add up to {counts.sum()} pixels, the box has {height * width}")
    values = np.arange(len(counts)) % 2 == 1
    return np.repeat(values, counts).reshape(height, width)
