"""Each layout on a tiny dataset made here: pairs found per split, classes, decoded masks."""

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from seglab.data.classes import CITYSCAPES_IDS, voc_colors
from seglab.data.dataset import open_data
from seglab.data.layouts import detect_layout
from seglab.data.masks import IGNORE
from seglab.errors import SeglabError
from tests.data.helpers import class_mask, make_camvid, make_pairs, write_image, write_mask


def test_camvid_layout_ignores_void(tmp_path):
    make_camvid(tmp_path, {"train": 3, "val": 2, "test": 1})
    data = open_data(str(tmp_path), progress=False)
    assert data.report.source.layout == "camvid"
    assert [data.report.splits[s].pairs for s in ("train", "val", "test")] == [3, 2, 1]
    assert data.info.num_classes == 11 and data.info.classes[3] == "Road"
    raw = np.asarray(Image.open(tmp_path / "trainannot" / "f000.png"))
    image, mask = data.split("train").load(0)
    assert image.shape == (3, 36, 48) and image.dtype == torch.uint8
    assert torch.equal(mask == IGNORE, torch.from_numpy(raw == 11))
    assert torch.equal(mask[raw < 11], torch.from_numpy(raw[raw < 11]).long())


def test_pairs_with_split_folders(tmp_path):
    make_pairs(tmp_path, {"train": 3, "val": 2, "test": 1}, num_classes=4)
    data = open_data(str(tmp_path), progress=False)
    assert {s: v.pairs for s, v in data.report.splits.items()} == {"train": 3, "val": 2, "test": 1}
    assert data.info.classes == ("class0", "class1", "class2", "class3")
    assert data.problems == []


def test_pairs_without_split_folders_split_reproducibly(tmp_path):
    make_pairs(tmp_path, 10, images="image", masks="label")
    first = open_data(str(tmp_path), progress=False)
    again = open_data(str(tmp_path), progress=False)
    val = [p[0].name for p in first.split("val").pairs]
    assert len(val) == 2 and len(first.split("train")) == 8
    assert val == [p[0].name for p in again.split("val").pairs]
    assert not set(val) & {p[0].name for p in first.split("train").pairs}


def test_binary_masks_as_0_and_255_become_two_classes(tmp_path):
    for i in range(5):
        write_image(tmp_path / "image" / f"{i}.png", mode="L", seed=i)
        write_mask(tmp_path / "label" / f"{i}.png", class_mask(num_classes=2, seed=i) * 255)
    data = open_data(str(tmp_path), progress=False)
    assert data.info.num_classes == 2 and data.info.in_channels == 1
    image, mask = data.split("train")[0]
    assert image.shape[0] == 1 and set(mask.unique().tolist()) == {0, 1}


def test_colour_coded_masks_with_a_yaml_palette(tmp_path):
    colors = [(0, 0, 0), (255, 0, 0), (0, 255, 0)]
    for split in ("train", "val"):
        for i in range(2):
            write_image(tmp_path / "data" / "images" / split / f"{i}.png", seed=i)
            idx = class_mask(num_classes=3, seed=i)
            write_mask(tmp_path / "data" / "masks" / split / f"{i}.png", np.array(colors)[idx])
    spec = {
        "root": "data",
        "layout": "pairs",
        "mask_encoding": "rgb",
        "classes": [{"name": n, "color": list(c)} for n, c in zip("abc", colors)],
    }
    (tmp_path / "ds.yaml").write_text(yaml.safe_dump(spec))
    data = open_data(str(tmp_path / "ds.yaml"), progress=False)
    assert data.info.classes == ("a", "b", "c") and data.problems == []
    _, mask = data.split("val")[1]
    assert torch.equal(mask, torch.from_numpy(class_mask(num_classes=3, seed=1)))


def test_colour_masks_without_a_palette_ask_for_a_yaml(tmp_path):
    write_image(tmp_path / "images" / "a.png")
    write_mask(tmp_path / "masks" / "a.png", np.zeros((30, 40, 3)))
    with pytest.raises(
        SeglabError, match=r"colour-coded RGB \(.*a\.png is one\); write a dataset YAML"
    ):
        open_data(str(tmp_path), progress=False)


def test_split_folders_of_a_dataset_file(tmp_path):
    make_pairs(tmp_path / "data", {"a": 3, "b": 2}, images="pics", masks="labels")
    (tmp_path / "ds.yaml").write_text(
        "root: data\nsplits:\n  train: {images: pics/a, masks: labels/a}\n"
        "  val: {images: pics/b, masks: labels/b}\n"
    )
    data = open_data(str(tmp_path / "ds.yaml"), progress=False)
    assert data.report.source.layout == "pairs" and data.problems == []
    assert [len(data.split(s)) for s in ("train", "val")] == [3, 2]
    assert data.split("val").pairs[1][1] == tmp_path / "data" / "labels" / "b" / "img001.png"


def test_voc_layout(tmp_path):
    base = tmp_path / "VOCdevkit" / "VOC2012"
    palette = [v for c in voc_colors(256) for v in c]
    for split, ids in (("train", ["2007_000001", "2007_000002"]), ("val", ["2007_000003"])):
        (base / "ImageSets" / "Segmentation").mkdir(parents=True, exist_ok=True)
        (base / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(ids) + "\n")
        for k, i in enumerate(ids):
            write_image(base / "JPEGImages" / f"{i}.jpg", seed=k)
            values = class_mask(num_classes=21, seed=k)
            values[:2] = 255  # VOC's object borders
            write_mask(base / "SegmentationClass" / f"{i}.png", values, palette=palette)
    assert detect_layout(tmp_path) == "voc"
    data = open_data(str(tmp_path), progress=False)
    assert data.info.num_classes == 21 and data.info.classes[15] == "person"
    assert data.report.splits["train"].pairs == 2 and data.problems == []
    _, mask = data.split("train").load(1)
    assert (mask[:2] == IGNORE).all() and mask[2:].max() <= 20


def test_cityscapes_label_ids_map_to_the_19_train_ids(tmp_path):
    label_ids = np.array([[7, 8, 26, 0], [33, 4, 23, 24]] * 3)  # road, sidewalk, car, unlabelled...
    for split in ("train", "val"):
        stem = f"aachen_000000_00001{split == 'val'}"
        write_image(tmp_path / "leftImg8bit" / split / "aachen" / f"{stem}_leftImg8bit.png", (4, 6))
        write_mask(
            tmp_path / "gtFine" / split / "aachen" / f"{stem}_gtFine_labelIds.png", label_ids
        )
    data = open_data(str(tmp_path), progress=False)
    assert data.info.num_classes == 19 and data.info.classes[13] == "car"
    _, mask = data.split("val").load(0)
    expected = {7: 0, 8: 1, 26: 13, 0: IGNORE, 33: 18, 4: IGNORE, 23: 10, 24: 11}
    assert mask.tolist() == [[expected[v] for v in row] for row in label_ids.tolist()]
    assert len(CITYSCAPES_IDS) == 19


@pytest.mark.parametrize("suffix,mode", [(".tif", "I;16"), (".jpg", "L"), (".bmp", "RGB")])
def test_image_formats_and_bit_depths(tmp_path, suffix, mode):
    for i in range(3):
        write_image(tmp_path / "images" / f"{i}{suffix}", mode=mode, seed=i)
        write_mask(tmp_path / "masks" / f"{i}.png", class_mask(seed=i))
    data = open_data(str(tmp_path), progress=False)
    image, _ = data.split("train")[0]
    assert image.dtype == torch.float32 and image.min() >= 0 and image.max() <= 1
    assert image.shape[0] == (3 if mode == "RGB" else 1)
    if mode == "I;16":
        assert image.unique().numel() > 256  # 16-bit precision kept


def test_unrecognised_folder_and_bad_yaml_are_one_line_errors(tmp_path):
    (tmp_path / "stuff").mkdir()
    with pytest.raises(SeglabError, match="layout not recognised"):
        open_data(str(tmp_path / "stuff"))
    (tmp_path / "bad.yaml").write_text("root: [unclosed")
    with pytest.raises(SeglabError, match=r"bad\.yaml: not valid YAML"):
        open_data(str(tmp_path / "bad.yaml"))
    (tmp_path / "odd.yaml").write_text("root: .\nlayout: ade20k\n")
    with pytest.raises(SeglabError, match="layout must be one of"):
        open_data(str(tmp_path / "odd.yaml"))
