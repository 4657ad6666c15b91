"""YOLO segment format: normalised polygons, names from data.yaml or classes.txt, split folders."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from seglab.data.importing import import_dataset
from tests.data.importing.scene import (
    EXPECTED,
    HEIGHT,
    RING_HOLE,
    RING_OUTER,
    SQUARE,
    TRIANGLE,
    WIDTH,
    image,
    picture,
)


def _line(cls, points):
    scaled = [v / (WIDTH if i % 2 == 0 else HEIGHT) for i, v in enumerate(points)]
    return " ".join([str(cls), *(repr(v) for v in scaled)])


SCENE = "\n".join(
    [
        _line(1, SQUARE),
        _line(2, TRIANGLE),
        _line(1, RING_OUTER),
        _line(0, RING_HOLE),  # class 0 is named background: the ring's hole
        "2 0.5 0.5 0.2 0.2",  # a detection box
        _line(5, [12, 8, 15, 8, 15, 11]),  # a class without a name
    ]
)


@pytest.mark.parametrize("names", ["data.yaml", "classes.txt"])
def test_yolo_splits_pixel_for_pixel(tmp_path, names):
    src = tmp_path / "yolo"
    for split, stems in (("train", ["a", "b"]), ("val", ["c"])):
        for i, stem in enumerate(stems):
            image(src / "images" / split / f"{stem}.png", seed=i)
            (src / "labels" / split).mkdir(parents=True, exist_ok=True)
            (src / "labels" / split / f"{stem}.txt").write_text(SCENE + "\n")
    image(src / "images" / "train" / "nothing.png")  # no label file: no annotations
    if names == "data.yaml":
        (src / "data.yaml").write_text(
            "path: .\ntrain: images/train\nval: images/val\n"
            "names:\n  0: background\n  1: building\n  2: car\n"
        )
    else:
        (src / "classes.txt").write_text("background\nbuilding\ncar\n")
    report = import_dataset("yolo", src, tmp_path / "out")
    assert report.classes == ["background", "building", "car"]
    assert report.images == {"train": 2, "val": 1}
    assert report.empty == [str(src / "images" / "train" / "nothing.png")]
    assert report.other == {"box (detection format)": 3}
    assert report.unknown == {"class 5": 3}
    expected = picture(EXPECTED)
    # the unnamed class's triangle (12, 8), (15, 8), (15, 11): ignored, not background
    expected[8, 13:15] = expected[9, 14] = 255
    for split, stem in (("train", "a"), ("train", "b"), ("val", "c")):
        mask = np.asarray(Image.open(tmp_path / "out" / "masks" / split / f"{stem}.png"))
        assert (mask == expected).all(), (split, stem)
