"""Polygons and RLE to pixels: exact on integer-vertex polygons (pixel centres inside, ties as
pycocotools decides them), checked against masks computed by hand, a rational-arithmetic
reference, and pycocotools."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from matplotlib.path import Path as MplPath
from pycocotools import mask as coco_mask

from seglab.data.importing.raster import (
    box_polygon,
    coco_rle,
    cvat_rle,
    polygon_mask,
)
from tests.data.importing.scene import EXPECTED, SQUARE, TRIANGLE, picture

# pycocotools 2.0 under numpy 2
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def test_rectangle_covers_its_area_of_pixels():
    mask = polygon_mask([1, 1, 5, 1, 5, 4, 1, 4], 6, 7)
    expected = np.zeros((6, 7), dtype=bool)
    expected[1:4, 1:5] = True  # columns 1-4, rows 1-3: the 4 x 3 area of the rectangle
    assert (mask == expected).all()


def test_triangle_by_hand():
    # centres (i + .5, j + .5) with i + j < 5 are inside; i + j == 5 lie on the hypotenuse,
    # below which the triangle does not lie: left out, as pycocotools leaves them out
    expected = picture(
        """
        11111..
        1111...
        111....
        11.....
        1......
        .......
        .......
        """.replace(" ", "")
    ).astype(bool)
    assert (polygon_mask([0, 0, 6, 0, 0, 6], 7, 7) == expected).all()
    # the same triangle turned over: the polygon lies below its hypotenuse, whose centres count
    turned = polygon_mask([6, 0, 6, 6, 0, 6], 7, 7)
    assert turned.sum() == 21 and turned[5, 0] and turned[0, 5] and not turned[4, 0]


def _pycocotools(points, height, width):
    rle = coco_mask.frPyObjects([list(map(float, points))], height, width)
    return coco_mask.decode(coco_mask.merge(rle)).astype(bool)


@pytest.mark.parametrize(
    "points",
    [
        SQUARE,
        TRIANGLE,
        [0, 0, 6, 0, 0, 6],
        [6, 0, 6, 6, 0, 6],
        [0, 3, 3, 0, 6, 3, 3, 6],  # a diamond: every edge through pixel centres
        [2, 1, 13, 1, 13, 10, 2, 10],
    ],
)
def test_matches_pycocotools_on_squares_triangles_and_ties(points):
    assert (polygon_mask(points, 12, 16) == _pycocotools(points, 12, 16)).all()


def _exact(points, height, width):
    """The convention, in rational arithmetic: the centre, a tiny step lower, inside (even-odd)."""
    xy = [(Fraction(points[i]), Fraction(points[i + 1])) for i in range(0, len(points), 2)]
    mask = np.zeros((height, width), dtype=bool)
    for j in range(height):
        y = Fraction(2 * j + 1, 2) + Fraction(1, 10**9)
        for i in range(width):
            x, inside = Fraction(2 * i + 1, 2), False
            for (x1, y1), (x2, y2) in zip(xy, xy[1:] + xy[:1]):
                if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
                    inside = not inside
            mask[j, i] = inside
    return mask


def test_exact_on_random_integer_polygons():
    """Self-crossing, spiky, partly outside the image: Pillow's fill near the outline is tested
    again at the centres, so every pixel follows the convention."""
    rng = np.random.default_rng(0)
    for _ in range(60):
        points = rng.integers(-2, 13, size=2 * rng.integers(3, 8)).tolist()
        assert (polygon_mask(points, 9, 11) == _exact(points, 9, 11)).all(), points


def test_float_polygons_match_a_point_test_at_every_centre():
    rng = np.random.default_rng(1)
    rows, cols = np.mgrid[0:40, 0:50]
    centres = np.stack([cols.ravel() + 0.5, rows.ravel() + 0.5], axis=1)
    for _ in range(40):
        n = int(rng.integers(3, 25))
        angles = np.sort(rng.uniform(0, 2 * np.pi, n))
        radii = rng.uniform(1, 30, n)
        xy = np.stack([25 + radii * np.cos(angles), 20 + radii * np.sin(angles)], axis=1)
        path = MplPath(np.vstack([xy, xy[:1]]), closed=True)
        expected = path.contains_points(centres).reshape(40, 50)
        assert (polygon_mask(xy.ravel(), 40, 50) == expected).all()


def test_degenerate_polygons_are_empty():
    assert not polygon_mask([1, 1, 5, 5], 8, 8).any()
    assert not polygon_mask([20, 20, 30, 20, 30, 30], 8, 8).any()  # outside the image


def test_box_polygon_turned():
    assert box_polygon(4, 3, 1, 1) == [1, 1, 4, 1, 4, 3, 1, 3]
    turned = np.array(box_polygon(0, 0, 4, 2, rotation=90)).reshape(-1, 2)
    assert np.allclose(turned, [(3, -1), (3, 3), (1, 3), (1, -1)])


def test_coco_rle_uncompressed_and_compressed():
    expected = picture(EXPECTED) == 1
    # column-major runs, starting with 0s, written out by hand for the scene's building pixels
    counts, value, run = [], False, 0
    for pixel in expected.T.ravel():
        if pixel != value:
            counts.append(run)
            value, run = pixel, 0
        run += 1
    counts.append(run)
    assert (coco_rle({"size": [12, 16], "counts": counts}, 12, 16) == expected).all()
    compressed = coco_mask.encode(np.asfortranarray(expected.astype(np.uint8)))
    compressed["counts"] = compressed["counts"].decode("ascii")  # as JSON holds it
    assert (coco_rle(compressed, 12, 16) == expected).all()
    with pytest.raises(ValueError, match="RLE of size"):
        coco_rle({"size": [12, 15], "counts": [180]}, 12, 16)


def test_cvat_rle_is_row_major():
    assert (cvat_rle([1, 2, 3], 2, 3) == [[False, True, True], [False, False, False]]).all()
    assert (cvat_rle([0, 2, 4], 2, 3) == [[True, True, False], [False, False, False]]).all()
    with pytest.raises(ValueError, match="add up to 5"):
        cvat_rle([1, 4], 2, 3)
