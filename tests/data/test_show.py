"""Pictures of classes: the palette, the overlay panel and its legend."""

import numpy as np
import torch

from seglab.data.info import DatasetInfo
from seglab.data.show import colorize, overlay_panel, palette, with_legend

INFO = DatasetInfo("t", ("sky", "road", "car"), ((0, 0, 255), (128, 64, 128), (255, 0, 0)))


def test_colorize_paints_each_class_and_leaves_ignored_black():
    mask = np.array([[0, 1], [2, 255]])
    assert colorize(mask, INFO).tolist() == [[[0, 0, 255], [128, 64, 128]], [[255, 0, 0], [0] * 3]]
    assert palette(INFO).shape == (256, 3) and not palette(INFO)[3:].any()


def test_the_panel_shows_the_image_and_its_blended_overlay():
    image = torch.full((3, 6, 10), 0.5)
    mask = torch.full((6, 10), 255)
    mask[:3] = 2  # car on top, ignored below
    panel = np.asarray(overlay_panel(image, mask, INFO, alpha=0.5))
    assert panel.shape[1] == 2 * 10 + 8 and panel.shape[0] > 6  # a legend below
    left, gap, right = panel[:6, :10], panel[:6, 10:18], panel[:6, 18:]
    assert (left == 127).all() and (gap == 255).all()
    assert np.abs(right[:3].astype(int) - [191, 63, 63]).max() <= 1  # half grey, half red
    assert (right[3:] == 127).all()  # ignored pixels are left as they are


def test_grey_images_are_drawn_in_colour():
    panel = overlay_panel(torch.zeros(1, 4, 4), torch.ones(4, 4, dtype=torch.long), INFO)
    assert panel.mode == "RGB" and panel.getpixel((4 + 8 + 1, 1)) == (64, 32, 64)


def test_the_legend_has_a_row_for_every_columns_classes():
    from PIL import Image

    picture = Image.new("RGB", (300, 20))
    two_rows = with_legend(picture, INFO, font_size=14)  # two 150-pixel columns, three classes
    assert two_rows.size == (300, 20 + 2 * 22 + 8)
    assert with_legend(picture, INFO, [2], font_size=14).size == (300, 20 + 22 + 8)
    assert with_legend(picture, INFO, font_size=14).getpixel((6, 28)) == (0, 0, 255)
