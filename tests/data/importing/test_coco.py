"""COCO instances: polygons, compressed and uncompressed (crowd) RLE, one JSON per split."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as coco_mask

from seglab.data.importing import import_dataset
from tests.data.importing.scene import EXPECTED, SQUARE, TRIANGLE, image, picture, ring_mask

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def _compressed(mask):
    rle = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": rle["size"], "counts": rle["counts"].decode("ascii")}


def _uncompressed(mask):
    counts, value, run = [], False, 0
    for pixel in mask.T.ravel():  # column-major, starting with a run of 0s
        if pixel != value:
            counts.append(run)
            value, run = pixel, 0
        run += 1
    return {"size": list(mask.shape), "counts": [*counts, run]}


def scene_json(names, first_id=1, crowd=False):
    images = [
        {"id": first_id + i, "file_name": name, "height": 12, "width": 16}
        for i, name in enumerate(names)
    ]
    annotations = []
    for im in images:
        ring = _uncompressed(ring_mask()) if crowd else _compressed(ring_mask())
        annotations += [
            {"image_id": im["id"], "category_id": 3, "segmentation": [SQUARE], "iscrowd": 0},
            {"image_id": im["id"], "category_id": 7, "segmentation": [TRIANGLE], "iscrowd": 0},
            {"image_id": im["id"], "category_id": 3, "segmentation": ring, "iscrowd": int(crowd)},
            {"image_id": im["id"], "category_id": 7, "bbox": [0, 0, 2, 2], "segmentation": []},
        ]
    for n, ann in enumerate(annotations):
        ann["id"] = n + 1
    # categories by id: building (3) before car (7), whatever the order in the file
    categories = [{"id": 7, "name": "car"}, {"id": 3, "name": "building"}]
    return {"images": images, "annotations": annotations, "categories": categories}


def test_coco_splits_pixel_for_pixel(tmp_path):
    src = tmp_path / "coco"
    (src / "annotations").mkdir(parents=True)
    for split, names, crowd in (("train", ["a.png", "b.png"], False), ("val", ["c.png"], True)):
        for i, name in enumerate(names):
            image(src / f"{split}2017" / name, seed=i)
        doc = scene_json(names, first_id=10 if split == "val" else 1, crowd=crowd)
        (src / "annotations" / f"instances_{split}2017.json").write_text(json.dumps(doc))
    report = import_dataset("coco", src, tmp_path / "out")
    assert report.classes == ["background", "building", "car"]
    assert report.images == {"train": 2, "val": 1}
    assert report.other == {"bbox only (no segmentation)": 3}
    for split, name in (("train", "a"), ("train", "b"), ("val", "c")):
        mask = np.asarray(Image.open(tmp_path / "out" / "masks" / split / f"{name}.png"))
        assert (mask == picture(EXPECTED)).all(), (split, name)


def test_coco_single_file_and_unknown_category(tmp_path):
    src = tmp_path / "export"
    image(src / "images" / "a.png")
    doc = scene_json(["a.png"])
    doc["annotations"].append(
        {
            "id": 99,
            "image_id": 1,
            "category_id": 42,
            "segmentation": [[12, 8, 15, 8, 15, 11, 12, 11]],
        }
    )
    (src / "instances_default.json").write_text(json.dumps(doc))
    report = import_dataset("coco", src / "instances_default.json", tmp_path / "out")
    assert report.unknown == {"category 42": 1}
    mask = np.asarray(Image.open(tmp_path / "out" / "masks" / "a.png"))
    expected = picture(EXPECTED)
    expected[8:11, 12:15] = 255  # an undeclared category: ignored, not background
    assert (mask == expected).all()
