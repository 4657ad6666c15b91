"""Inputs read as the user sees them, or refused: EXIF orientation, stray mask values, a file
changed after the data check, and a file that breaks while training reads it."""

import os
from collections import Counter

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from seglab.cli import main
from seglab.data.dataset import open_data
from seglab.data.io import read_image, read_raw_mask
from seglab.data.source import mask_class_count
from seglab.deployment.predict import input_image
from seglab.errors import BadFileError, SeglabError, one_line
from tests.data.helpers import class_mask, make_pairs, write_image, write_mask

ORIENTATION = 0x0112


def tagged(path, array: np.ndarray, turn: int):
    """``array`` (H x W [x 3] uint8) saved as a PNG whose EXIF orientation is ``turn``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    exif = Image.Exif()
    exif[ORIENTATION] = turn
    Image.fromarray(array.astype(np.uint8)).save(path, exif=exif)
    return path


def check(capsys, root) -> tuple[int, str]:
    code = main(["data", "check", str(root)])
    return code, capsys.readouterr().out


def problem_lines(out: str) -> list[str]:
    return [line.strip() for line in out.splitlines() if line.startswith("  /")]


def warning_lines(out: str) -> list[str]:
    return [line.removeprefix("warning: ") for line in out.splitlines() if "warning: " in line]


# EXIF orientation


def test_images_and_masks_are_turned_as_their_exif_orientation_says(tmp_path):
    stored = np.arange(6, dtype=np.uint8).reshape(2, 3) * 40
    image = read_image(tagged(tmp_path / "photo.png", stored, 6))
    assert image.shape == (1, 3, 2)  # stored 3 wide, shown 2 wide: turned a quarter
    assert image[0].tolist() == np.rot90(stored, -1).tolist()  # 6: 90° clockwise
    assert read_raw_mask(tagged(tmp_path / "mask.png", stored, 3)).tolist() == (
        np.rot90(stored, 2).tolist()
    )
    # predict and serve read a file, or a Pillow image of it, the same way
    with Image.open(tmp_path / "photo.png") as im:
        assert input_image(im, 1).tolist() == image.tolist()


def exif_dataset(root, turn: int, size=(40, 30), mask_as_shown: bool = True):
    """train (2) and val (1) pairs of images stored at ``size`` (width, height) tagged with
    ``turn``; masks drawn on the image as shown, or on the pixels as stored."""
    for split, count in (("train", 2), ("val", 1)):
        for i in range(count):
            tagged(root / "images" / split / f"img_{i}.png", class_mask(size, 255, i), turn)
            shown = size[::-1] if turn >= 5 and mask_as_shown else size
            write_mask(root / "masks" / split / f"img_{i}.png", class_mask(shown, 2, i))
    return root


def test_masks_drawn_on_the_turned_photo_fit_it(tmp_path, capsys):
    code, out = check(capsys, exif_dataset(tmp_path, 6))
    assert code == 0 and "no problems found" in out
    assert "train: 2 pairs; image sizes 40x30 (2)" in out  # 30 high stored, 40 high shown


def test_a_mask_that_fits_only_the_unturned_pixels_is_a_problem(tmp_path, capsys):
    code, out = check(capsys, exif_dataset(tmp_path, 6, mask_as_shown=False))
    assert code == 1
    assert problem_lines(out)[0] == (
        f"{tmp_path / 'images' / 'train' / 'img_0.png'}: its EXIF orientation (6, rotated 90°) "
        "is applied; its mask fits the unrotated pixels: redraw the mask on the image as viewers "
        "show it, or strip the tag"
    )
    assert len(problem_lines(out)) == 3


def test_a_turn_that_keeps_the_size_is_a_warning_naming_an_image(tmp_path, capsys):
    code, out = check(capsys, exif_dataset(tmp_path, 3))
    assert code == 0
    assert warning_lines(out) == [
        f"3 image(s) are turned by their EXIF orientation as viewers turn them (e.g. "
        f"{tmp_path / 'images' / 'train' / 'img_0.png'}: 3, rotated 180°), and their masks fit "
        "them turned or not; see with 'seglab data show' that the masks were drawn on the images "
        "as viewers show them"
    ]


# Stray mask values


def binary_dataset(root, foreground: int, stray=None, size=(48, 32)):
    """train (3) and val (2) masks of 0 and ``foreground`` (the left half), each edited by
    ``stray(mask, split, i)``."""
    for split, count in (("train", 3), ("val", 2)):
        for i in range(count):
            write_image(root / "images" / split / f"m{i}.png", size, "L", seed=i)
            mask = np.zeros(size[::-1], np.uint8)
            mask[:, : size[0] // 2] = foreground
            if stray:
                stray(mask, split, i)
            write_mask(root / "masks" / split / f"m{i}.png", mask)
    return root


def test_anti_aliased_binary_masks_stay_two_classes_and_the_edge_is_a_problem(tmp_path, capsys):
    def edge(mask, split, i):
        mask[:, 24] = 128  # the anti-aliased column between foreground and background

    binary_dataset(tmp_path, 255, edge)
    data = open_data(str(tmp_path), progress=False)
    assert data.info.classes == ("background", "foreground")
    code, out = check(capsys, tmp_path)
    assert code == 1 and "2 classes" in out and "ignored 0.00%" in out
    lines = problem_lines(out)
    assert len(lines) == 5
    assert lines[0] == (
        f"{tmp_path / 'masks' / 'train' / 'm0.png'}: 32 pixels with value 128: neither 0 "
        "(background) nor 255 (foreground); stray values (anti-aliased edges?), never a class: "
        "classes are the values most mask pixels hold, unless a dataset YAML lists them"
    )


def test_one_stray_value_in_a_0_1_dataset_is_a_problem_not_201_classes(tmp_path, capsys):
    def one_pixel(mask, split, i):
        if (split, i) == ("val", 1):
            mask[3, 40] = 200

    binary_dataset(tmp_path, 1, one_pixel)
    assert open_data(str(tmp_path), progress=False).info.num_classes == 2
    code, out = check(capsys, tmp_path)
    assert code == 1
    [line] = problem_lines(out)
    assert line.startswith(
        f"{tmp_path / 'masks' / 'val' / 'm1.png'}: 1 pixels with value 200: neither a class (0-1 "
        "after decoding) nor the ignore value; stray values"
    )


def test_several_stray_values_are_named_with_their_pixels(tmp_path, capsys):
    def blur(mask, split, i):
        if split == "train" and i == 0:
            mask[:2, 24] = 64
            mask[2:5, 24] = 191

    binary_dataset(tmp_path, 255, blur)
    [line] = problem_lines(check(capsys, tmp_path)[1])
    assert "m0.png: 5 pixels with values 64 (2), 191 (3): neither 0" in line


@pytest.mark.parametrize(
    "pixels, count",
    [
        ({0: 500, 255: 500, 128: 40}, 1),  # 0/255 and an edge: 0 alone, so binary with 255
        ({0: 500, 1: 500, 200: 1}, 2),  # a stray value far off
        ({0: 500, 1: 500, 2: 1}, 2),  # a stray next value, too few pixels to be a class
        ({0: 400, 1: 300, 2: 1, 3: 300}, 4),  # a class with almost no pixels between others
        ({0: 400, 1: 300, 4: 300}, 5),  # absent classes in a run are classes
        ({0: 400, 1: 300, 9: 300}, 2),  # not so far off
        ({0: 400, 1: 300, 255: 300}, 2),  # 255 is ignored
    ],
)
def test_the_class_count_follows_what_the_masks_mostly_hold(pixels, count):
    assert mask_class_count(Counter(pixels)) == count


def test_a_class_with_almost_no_pixels_is_a_warning(tmp_path, capsys):
    def rare(mask, split, i):
        mask[:, 60:] = 2
        mask[:, 72:] = 3
        if (split, i) == ("train", 0):
            mask[0, 0] = 1  # class 1: one pixel of the dataset's 30720

    binary_dataset(tmp_path, 0, rare, size=(96, 64))
    code, out = check(capsys, tmp_path)
    assert code == 0 and "4 classes" in out
    assert warning_lines(out) == [
        "class class1 holds 1 pixels (0.0033% of the labelled pixels, 1 masks): too few to learn "
        "or to score; if its value is a stray one, not a class, relabel those pixels"
    ]


# A file changed after the data check


def corrupt_keeping_size_and_time(path):
    """``path`` overwritten by as many bytes of another, broken file, its times put back (as
    ``touch -r`` would)."""
    st = os.stat(path)
    data = path.read_bytes()
    middle = len(data) // 2
    path.write_bytes(data[:middle] + bytes(len(data) - middle))  # a PNG's data zeroed
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(path).st_size == st.st_size


def test_the_check_cache_sees_a_file_replaced_with_size_and_time_kept(tmp_path):
    make_pairs(tmp_path, {"train": 3, "val": 2})
    assert open_data(str(tmp_path), progress=False).problems == []
    bad = tmp_path / "images" / "train" / "img001.png"
    corrupt_keeping_size_and_time(bad)
    [problem] = open_data(str(tmp_path), progress=False).problems
    assert problem.startswith(f"{bad}: unreadable or truncated image (")


# A file broken when it is read


def broken_after_check(tmp_path):
    """A checked dataset whose train image img001.png then breaks."""
    make_pairs(tmp_path, {"train": 3, "val": 2})
    data = open_data(str(tmp_path), progress=False)
    bad = tmp_path / "images" / "train" / "img001.png"
    corrupt_keeping_size_and_time(bad)
    return data, bad


def test_a_broken_file_met_in_training_is_one_line_naming_split_and_file(tmp_path):
    data, bad = broken_after_check(tmp_path)
    train = data.split("train")
    assert train[0][0].shape == (3, 30, 40)
    with pytest.raises(BadFileError) as caught:
        train[1]
    message = str(caught.value)
    assert message.startswith(f"train image {bad} cannot be read: ") and "\n" not in message
    assert isinstance(caught.value, SeglabError)
    (tmp_path / "masks" / "val" / "img000.png").write_bytes(b"no png")
    with pytest.raises(BadFileError, match=r"^val mask .*img000\.png cannot be read: "):
        data.split("val")[0]


def test_one_line_recovers_the_message_a_dataloader_worker_wrapped(tmp_path):
    data, _ = broken_after_check(tmp_path)
    with pytest.raises(BadFileError) as direct:
        data.split("train")[1]
    loader = DataLoader(data.split("train"), batch_size=1, num_workers=1)
    with pytest.raises(BadFileError) as wrapped:
        for _ in loader:
            pass
    assert "Caught BadFileError in DataLoader worker process 0" in str(wrapped.value)
    assert one_line(wrapped.value) == str(direct.value) == one_line(direct.value)
    assert one_line(ValueError("first\nsecond")) == "first"


def test_predict_on_a_broken_image_says_one_line_naming_it(tmp_path):
    good = write_image(tmp_path / "photo.png")
    corrupt_keeping_size_and_time(good)
    with pytest.raises(SeglabError) as caught:
        input_image(good, 3)
    assert str(caught.value).startswith(f"predict: {good}: cannot read image (")
    assert "\n" not in str(caught.value)
    assert isinstance(input_image(write_image(tmp_path / "ok.png"), 3), torch.Tensor)
