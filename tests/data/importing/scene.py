"""One small scene for every format, and its mask drawn by hand, pixel by pixel.

On a 16 x 12 image: building, the square (1, 1)-(7, 5); car, the right triangle (9, 1), (15, 1),
(9, 7), whose hypotenuse passes through pixel centres (those count only where the polygon lies
below the edge, as pycocotools decides: not here); and a building ring (1, 7)-(5, 11) with a
hole (2, 8)-(4, 10): an RLE mask where the format has them, a later background polygon where it
has only polygons.
"""

from __future__ import annotations

import numpy as np

from tests.data.helpers import write_image

WIDTH, HEIGHT = 16, 12
SQUARE = [1, 1, 7, 1, 7, 5, 1, 5]
TRIANGLE = [9, 1, 15, 1, 9, 7]
RING_OUTER = [1, 7, 5, 7, 5, 11, 1, 11]
RING_HOLE = [2, 8, 4, 8, 4, 10, 2, 10]

# building 1, car 2 (alphabetical and declared orders agree)
EXPECTED = """
................
.111111..22222..
.111111..2222...
.111111..222....
.111111..22.....
.........2......
................
.1111...........
.1..1...........
.1..1...........
.1111...........
................
"""


def picture(text: str) -> np.ndarray:
    """A mask from rows of characters: '.' is 0, a digit its class, 'x' the ignore value."""
    rows = text.strip().splitlines()
    values = {".": 0, "x": 255} | {str(d): d for d in range(10)}
    return np.array([[values[c] for c in row] for row in rows], dtype=np.uint8)


def ring_mask() -> np.ndarray:
    mask = np.zeros((HEIGHT, WIDTH), dtype=bool)
    mask[7:11, 1:5] = True
    mask[8:10, 2:4] = False
    return mask


def image(path, seed=0):
    return write_image(path, size=(WIDTH, HEIGHT), seed=seed)
