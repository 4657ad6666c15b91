"""LabelMe folders: polygons and rectangles drawn, other shapes counted, empty images left out."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from seglab.data.importing import import_dataset
from tests.data.importing.scene import (
    EXPECTED,
    RING_HOLE,
    RING_OUTER,
    SQUARE,
    TRIANGLE,
    image,
    picture,
)


def _pairs(points):
    return [[points[i], points[i + 1]] for i in range(0, len(points), 2)]


def write_labelme(folder, name, shapes, seed=0):
    image(folder / f"{name}.png", seed)
    doc = {
        "version": "5.4.1",
        "shapes": [
            {"label": label, "points": _pairs(points), "shape_type": kind, "flags": {}}
            for label, kind, points in shapes
        ],
        "imagePath": f"{name}.png",
        "imageData": None,
        "imageHeight": 12,
        "imageWidth": 16,
    }
    (folder / f"{name}.json").write_text(json.dumps(doc))


SCENE = [
    ("building", "rectangle", [1, 1, 7, 5]),  # a rectangle is two corners
    ("car", "polygon", TRIANGLE),
    ("building", "polygon", RING_OUTER),
    ("_background_", "polygon", RING_HOLE),  # drawn later: the ring's hole
    ("car", "point", [3, 3]),
    ("car", "line", [0, 0, 4, 4]),
]


def test_labelme_scene_pixel_for_pixel(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        write_labelme(src, f"frame{i}", SCENE, seed=i)
    write_labelme(src, "unlabelled", [])
    report = import_dataset("labelme", src, tmp_path / "out")
    assert report.classes == ["background", "building", "car"]
    assert report.images == {"": 3}
    assert report.empty == [str(src / "unlabelled.png")]
    assert report.other == {"point": 3, "line": 3}
    # the hole: background drawn over building, 4 pixels an image, decided by the rule
    assert (report.overlap_pixels, report.overlap_images) == (12, 3)
    for i in range(3):
        mask = np.asarray(Image.open(tmp_path / "out" / "masks" / f"frame{i}.png"))
        assert (mask == picture(EXPECTED)).all()
        copied = (tmp_path / "out" / "images" / f"frame{i}.png").read_bytes()
        assert copied == (src / f"frame{i}.png").read_bytes()
    assert not (tmp_path / "out" / "images" / "unlabelled.png").exists()
    assert SQUARE  # the rectangle above is this square given by its corners


def test_labelme_keep_empty_and_split_folders(tmp_path):
    src = tmp_path / "src"
    (src / "train").mkdir(parents=True)
    (src / "val").mkdir()
    write_labelme(src / "train", "a", SCENE[:2])
    write_labelme(src / "train", "b", [])
    write_labelme(src / "val", "c", SCENE[:2])
    report = import_dataset("labelme", src, tmp_path / "out", keep_empty=True, link=True)
    assert report.images == {"train": 2, "val": 1}
    empty = np.asarray(Image.open(tmp_path / "out" / "masks" / "train" / "b.png"))
    assert empty.shape == (12, 16) and not empty.any()
    assert (tmp_path / "out" / "images" / "val" / "c.png").is_symlink()
