"""CVAT for images 1.1: polygons, boxes and row-major RLE masks; z_order; subsets as splits."""

from __future__ import annotations

import numpy as np
from PIL import Image

from seglab.data.importing import import_dataset
from tests.data.importing.scene import EXPECTED, TRIANGLE, image, picture, ring_mask


def _points(points):
    return ";".join(f"{points[i]},{points[i + 1]}" for i in range(0, len(points), 2))


def _rle(mask):
    counts, value, run = [], False, 0
    for pixel in mask.ravel():  # row-major over the mask's box, starting with 0s
        if pixel != value:
            counts.append(run)
            value, run = pixel, 0
        run += 1
    return ", ".join(map(str, [*counts, run]))


def _scene(name, subset):
    box = ring_mask()[7:11, 1:5]
    return f"""
  <image id="0" name="{name}" subset="{subset}" width="16" height="12">
    <mask label="building" source="manual" occluded="0" rle="{_rle(box)}"
          left="1" top="7" width="4" height="4" z_order="0"/>
    <box label="building" source="manual" occluded="0" xtl="1" ytl="1" xbr="7" ybr="5"
         rotation="0" z_order="0"/>
    <polygon label="car" source="manual" occluded="0" points="{_points(TRIANGLE)}" z_order="1"/>
    <box label="car" source="manual" occluded="0" xtl="0" ytl="0" xbr="16" ybr="12"
         z_order="-1"/>
    <polyline label="car" source="manual" occluded="0" points="0,0;3,3" z_order="0"/>
    <points label="car" source="manual" occluded="0" points="5,5" z_order="0"/>
    <tag label="car" source="manual"/>
  </image>"""


def test_cvat_pixel_for_pixel(tmp_path):
    src = tmp_path / "task"
    image(src / "images" / "a.png")
    image(src / "images" / "b.png", seed=1)
    xml = f"""<?xml version="1.0" encoding="utf-8"?>
<annotations>
  <version>1.1</version>
  <meta><task><labels>
    <label><name>building</name><type>any</type></label>
    <label><name>car</name><type>any</type></label>
  </labels></task></meta>
  {_scene("a.png", "Train")}
  {_scene("b.png", "Validation")}
</annotations>"""
    (src / "annotations.xml").write_text(xml)
    report = import_dataset("cvat", src, tmp_path / "out")
    assert report.classes == ["background", "building", "car"]
    assert report.images == {"train": 1, "val": 1}
    assert report.other == {"polyline": 2, "points": 2, "tag": 2}
    expected = picture(EXPECTED)
    # the whole-image car box has the lowest z_order: drawn first, under everything else
    expected[expected == 0] = 2
    for split, name in (("train", "a"), ("val", "b")):
        mask = np.asarray(Image.open(tmp_path / "out" / "masks" / split / f"{name}.png"))
        assert (mask == expected).all()
    # the ring's hole is not drawn by its mask: the car box beneath shows through
    assert (expected[8:10, 2:4] == 2).all()
