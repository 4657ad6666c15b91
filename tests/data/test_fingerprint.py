"""The dataset fingerprint: sizes, class shares, widths of structures and groups, on datasets
built to have known answers (tiny and huge images, thin stripes, 30 classes, groups), on the
generated dataset, and on the real membrane dataset where it is present."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seglab.data.dataset import open_data
from seglab.data.fingerprint import fingerprint, format_fingerprint, structure_widths
from tests.conftest import SHARED_DATASETS, needs_membrane
from tests.data.helpers import class_mask, make_pairs, write_image, write_mask


def write_plain_pair(root: Path, split: str, name: str, mask: np.ndarray) -> None:
    """camvid-style pair with a constant grey RGB image: cheap to write and read at any size."""
    height, width = mask.shape
    (root / split).mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height), (90, 90, 90)).save(root / split / f"{name}.png")
    write_mask(root / f"{split}annot" / f"{name}.png", mask)


def dataset_yaml(root: Path, classes: list[str], extra: str = "") -> str:
    (root / "ds.yaml").write_text(f"layout: camvid\nclasses: [{', '.join(classes)}]\n{extra}")
    return str(root / "ds.yaml")


# --- widths, measured on arrays -----------------------------------------------------------------


def test_a_stripe_across_the_image_measures_its_width_exactly():
    for width in (1, 2, 5, 12):
        mask = np.zeros((40, 60), np.int64)
        mask[10 : 10 + width, :] = 1  # from border to border: its ends are no boundary
        assert structure_widths(mask, 3, 255)[1] == pytest.approx(2 if width == 1 else width)
    widths = structure_widths(mask, 3, 255)
    assert np.isnan(widths[2])  # absent


def test_ignored_neighbours_are_a_boundary_and_a_full_mask_has_no_width():
    mask = np.full((30, 50), 255, np.int64)
    mask[8:12, :] = 1  # 4 rows between ignored pixels
    assert structure_widths(mask, 2, 255)[1] == pytest.approx(4)
    assert np.isnan(structure_widths(np.ones((9, 9), np.int64), 2, 255)).all()


# --- datasets on disk ---------------------------------------------------------------------------


def test_tiny_images(tmp_path):
    make_pairs(tmp_path, {"train": 3, "val": 2}, num_classes=3, size=(32, 24))
    fp = fingerprint(open_data(str(tmp_path), progress=False))
    assert (fp.train_images, fp.val_images, fp.channels) == (3, 2, 3)
    assert fp.image_size == fp.smallest_size == fp.largest_size == (24, 32)
    assert fp.measured_masks == 3 and fp.groups is None and fp.ignored_share == 0
    assert format_fingerprint(fp)[0] == (
        "fingerprint: 3 train / 2 val images, 24x32 (all the same size), 3 channels, 3 classes"
    )
    assert format_fingerprint(fp)[3] == "groups: none declared"


def test_huge_and_tiny_images_together(tmp_path):
    huge = np.zeros((2000, 3000), np.uint8)
    huge[500:1500, 1000:2000] = 1
    write_plain_pair(tmp_path, "train", "huge", huge)
    small = [class_mask((w, h), 2, k) for k, (h, w) in enumerate([(24, 32), (24, 32), (100, 150)])]
    small.append(class_mask((150, 100), 2, 3))
    for k, mask in enumerate(small):
        write_plain_pair(tmp_path, "train", f"small{k}", mask)
    write_plain_pair(tmp_path, "val", "v", class_mask((32, 24), 2, 9))
    fp = fingerprint(open_data(dataset_yaml(tmp_path, ["a", "b"]), progress=False))
    assert fp.image_size == (100, 150)  # the middle one of 5, each side on its own
    assert (fp.smallest_size, fp.largest_size) == ((24, 32), (2000, 3000))
    assert format_fingerprint(fp)[0] == (
        "fingerprint: 5 train / 1 val images, median 100x150 (from 24x32 to 2000x3000), "
        "3 channels, 2 classes"
    )
    ones = 10**6 + sum(int(m.sum()) for m in small)
    assert fp.class_shares[1] == pytest.approx(ones / (6 * 10**6 + sum(m.size for m in small)))


def stripes(width: int, count: int = 6) -> list[np.ndarray]:
    """Masks 120 x 40*width, each with one stripe ``width`` px wide and 100 long (vertical or
    horizontal, moving from mask to mask), about 2% of the pixels, and the top row ignored."""
    masks = []
    for k in range(count):
        mask = np.zeros((120, 40 * width), np.uint8)
        if k % 2:
            mask[10 + 5 * k : 10 + 5 * k + width, 10:110] = 1
        else:
            mask[10:110, 4 + 3 * k : 4 + 3 * k + width] = 1
        mask[0] = 255
        masks.append(mask)
    return masks


@pytest.mark.parametrize("width", [3, 8])
def test_thin_rare_stripes_measure_their_drawn_width(tmp_path, width):
    for k, mask in enumerate(stripes(width)):
        write_plain_pair(tmp_path, "train", f"t{k}", mask)
    write_plain_pair(tmp_path, "val", "v", stripes(width, 1)[0])
    fp = fingerprint(
        open_data(dataset_yaml(tmp_path, ["background", "foreground"]), progress=False)
    )
    labelled = 119 * 40 * width
    assert fp.class_shares == pytest.approx((1 - 100 * width / labelled, 100 * width / labelled))
    assert fp.ignored_share == pytest.approx(1 / 120)
    assert fp.rarest[0] == "foreground" and fp.commonest[0] == "background"
    name, measured = fp.thinnest
    assert name == "foreground" and abs(measured - width) <= 1
    assert fp.widths[0] > 5 * width  # the background between the stripes is wide
    lines = format_fingerprint(fp)
    assert lines[1].startswith("class shares: background 9") and "(rarest: foreground)" in lines[1]
    assert lines[2] == (
        f"thinnest structures: foreground, about {measured:.0f} px wide "
        "(median over 6 training masks)"
    )


def test_thirty_classes_one_rare_one_absent(tmp_path):
    masks = []
    for k in range(4):
        mask = class_mask((32, 24), 30, k)
        mask[(mask == 7) | (mask == 29)] = 0  # 7 rare, 29 absent
        masks.append(mask)
    masks[2][5, 5] = 7
    for k, mask in enumerate(masks):
        write_plain_pair(tmp_path, "train" if k < 3 else "val", f"m{k}", mask)
    names = [f"c{i}" for i in range(30)]
    fp = fingerprint(open_data(dataset_yaml(tmp_path, names), progress=False))
    counts = np.bincount(np.concatenate([m.ravel() for m in masks[:3]]), minlength=30)
    assert fp.class_shares == pytest.approx(tuple(counts / counts.sum()))
    assert sum(fp.class_shares) == pytest.approx(1)
    assert fp.rarest == ("c7", pytest.approx(1 / (3 * 24 * 32)))
    assert fp.commonest[0] == "c0"
    assert fp.widths[29] is None and fp.class_shares[29] == 0
    assert all(w is not None and w > 0 for w in fp.widths[:29])
    assert "c29 0.0%" in format_fingerprint(fp)[1] and "c7 0.043%" in format_fingerprint(fp)[1]


def test_groups_over_train_and_val(tmp_path):
    for k, name in enumerate(["p1_a", "p1_b", "p2_a", "p3_a"]):
        write_image(tmp_path / "train" / f"{name}.png", (20, 16), seed=k)
        write_mask(tmp_path / "trainannot" / f"{name}.png", class_mask((20, 16), 2, k))
    for k, name in enumerate(["p3_b", "p4_a"]):
        write_image(tmp_path / "val" / f"{name}.png", (20, 16), seed=k)
        write_mask(tmp_path / "valannot" / f"{name}.png", class_mask((20, 16), 2, k))
    path = dataset_yaml(tmp_path, ["a", "b"], "groups: '^(p\\d+)_'\n")
    fp = fingerprint(open_data(path, progress=False))
    assert fp.groups == 4 and format_fingerprint(fp)[3] == "groups: 4 over train+val"
    assert fingerprint(open_data(path, progress=False, fold=(1, 2))).groups == 4
    assert fp.to_dict()["groups"] == 4


def test_to_dict_is_json_ready(tmp_path):
    make_pairs(tmp_path, {"train": 2, "val": 1}, num_classes=2, size=(20, 16))
    fp = fingerprint(open_data(str(tmp_path), progress=False))
    d = json.loads(json.dumps(fp.to_dict()))
    assert d["image_size"] == [16, 20] and d["classes"] == list(fp.classes)
    assert d["class_shares"] == list(fp.class_shares) and d["measured_masks"] == 2
    assert d["rarest"] == {"class": fp.rarest[0], "share": fp.rarest[1]}


# --- the generated dataset, and a real one ------------------------------------------------------


def test_the_generated_dataset_is_measured(tmp_path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text("layout: synthetic\nsize: [32, 40]\ntrain: 6\nval: 2\n")
    data = open_data(str(spec))
    fp = fingerprint(data)
    assert (fp.train_images, fp.val_images, fp.measured_masks) == (6, 2, 6)
    assert fp.image_size == fp.largest_size == (32, 40) and fp.channels == 3
    pixels = data.train_statistics()[0]  # Data's own count, over the same 6 items
    assert fp.class_shares == pytest.approx(tuple(pixels / pixels.sum()))
    assert fp.commonest[0] in ("sky", "ground") and fp.groups is None
    assert fingerprint(data, samples=3).measured_masks == 3


@needs_membrane
def test_the_membrane_dataset():
    fp = fingerprint(open_data(str(SHARED_DATASETS / "isbi2012-membrane"), progress=False))
    print("\n".join(format_fingerprint(fp)))
    assert fp.train_images + fp.val_images == 30 and fp.measured_masks == fp.train_images
    assert fp.image_size == fp.smallest_size == fp.largest_size == (512, 512)
    assert fp.channels == 1 and len(fp.classes) == 2 and fp.groups is None
    assert sum(fp.class_shares) == pytest.approx(1) and 0.05 < fp.rarest[1] < 0.5
    assert fp.thinnest is not None and 2 < fp.thinnest[1] < 30  # membranes: a few px wide
