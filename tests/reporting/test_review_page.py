"""The review page's pictures (the page itself is checked in a browser in test_review.py)."""

from __future__ import annotations

import numpy as np

from seglab.reporting.review_page import outline


def test_a_regions_outline_is_its_border_two_pixels_wide():
    square = np.zeros((9, 9), bool)
    square[2:7, 2:7] = True  # 5x5: the ring two pixels wide leaves its centre pixel
    expected = square.copy()
    expected[4, 4] = False
    assert (outline(square) == expected).all()
    corner = np.ones((3, 3), bool)  # the image's edge counts as outside: all of it is border
    assert outline(corner).all()
