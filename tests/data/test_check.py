"""Broken datasets, one per problem: the check names the file and exits non-zero, and training
refuses to start on them."""

import numpy as np
import pytest
import tifffile

from seglab.cli import main
from seglab.data import scan
from seglab.data.dataset import open_data
from tests.data.helpers import (
    band_scene,
    class_mask,
    make_band_pairs,
    make_camvid,
    make_pairs,
    write_image,
    write_mask,
)


def check(capsys, root) -> tuple[int, str]:
    code = main(["data", "check", str(root)])
    return code, capsys.readouterr().out


def problem_lines(out: str) -> list[str]:
    return [line.strip() for line in out.splitlines() if line.startswith("  /")]


def test_a_clean_dataset_passes(tmp_path, capsys):
    make_pairs(tmp_path, {"train": 3, "val": 2})
    code, out = check(capsys, tmp_path)
    assert code == 0 and "no problems found" in out
    assert "train: 3 pairs; image sizes 30x40 (3)" in out
    assert "val: 2 pairs" in out


def test_the_check_says_which_mask_value_each_name_it_made_up_stands_for(tmp_path, capsys):
    make_pairs(tmp_path / "index", {"train": 3, "val": 2})
    _, out = check(capsys, tmp_path / "index")
    assert "classes named by their mask values: class0 = 0, class1 = 1, class2 = 2;" in out
    binary = tmp_path / "binary"
    for split in ("train", "val"):
        write_image(binary / "images" / split / "a.png")
        write_mask(
            binary / "masks" / split / "a.png", (255 * class_mask(num_classes=2)).astype(np.uint8)
        )
    _, out = check(capsys, binary)
    assert "background = 0 (black), foreground = 255 (white)" in out  # whatever the 0s show
    (tmp_path / "named.yaml").write_text("root: index\nclasses: [road, car, sky]\n")
    _, out = check(capsys, tmp_path / "named.yaml")
    assert "classes named by their mask values" not in out  # the file names them


def test_truncated_image(tmp_path, capsys):
    make_pairs(tmp_path, {"train": 3, "val": 2})
    bad = tmp_path / "images" / "train" / "img001.png"
    bad.write_bytes(bad.read_bytes()[:200])
    code, out = check(capsys, tmp_path)
    assert code == 1
    assert problem_lines(out) == [
        f"{bad}: unreadable or truncated image (" + problem_lines(out)[0].split("(", 1)[1]
    ]


def test_unreadable_mask(tmp_path, capsys):
    make_pairs(tmp_path, {"train": 3, "val": 2})
    bad = tmp_path / "masks" / "val" / "img000.png"
    bad.write_bytes(b"not a png at all")
    code, out = check(capsys, tmp_path)
    assert code == 1 and problem_lines(out)[0].startswith(f"{bad}: unreadable or truncated mask")


def test_image_without_mask_and_mask_without_image(tmp_path, capsys):
    make_pairs(tmp_path, {"train": 3, "val": 2})
    lonely_image = write_image(tmp_path / "images" / "train" / "extra.png")
    lonely_mask = write_mask(tmp_path / "masks" / "val" / "ghost.png", class_mask())
    code, out = check(capsys, tmp_path)
    assert code == 1
    assert f"{lonely_image}: image without a mask" in problem_lines(out)
    assert f"{lonely_mask}: mask without an image" in problem_lines(out)


def test_size_mismatch(tmp_path, capsys):
    make_pairs(tmp_path, {"train": 3, "val": 2})
    bad = write_mask(tmp_path / "masks" / "train" / "img002.png", class_mask(size=(41, 30)))
    code, out = check(capsys, tmp_path)
    assert code == 1
    assert problem_lines(out) == [f"{bad}: mask is 30x41 but its image img002.png is 30x40"]


def test_mask_values_that_are_no_class(tmp_path, capsys):
    make_camvid(tmp_path)
    values = class_mask(size=(48, 36), num_classes=11)
    values[0, :5] = 17
    bad = write_mask(tmp_path / "valannot" / "f001.png", values)
    code, out = check(capsys, tmp_path)
    assert code == 1
    [line] = problem_lines(out)
    assert line.startswith(f"{bad}: 5 pixels with value 17: neither a class")


def test_colours_not_in_the_palette(tmp_path, capsys):
    colors = np.array([(0, 0, 0), (255, 0, 0)])
    for split in ("train", "val"):
        write_image(tmp_path / "images" / split / "a.png")
        write_mask(tmp_path / "masks" / split / "a.png", colors[class_mask(num_classes=2)])
    bad_values = colors[class_mask(num_classes=2)]
    bad_values[3, 3] = (1, 2, 3)
    bad = write_mask(tmp_path / "masks" / "val" / "a.png", bad_values)
    (tmp_path / "ds.yaml").write_text(
        "root: .\nmask_encoding: rgb\nclasses: [bg, thing]\ncolors: [[0, 0, 0], [255, 0, 0]]\n"
    )
    code, out = check(capsys, tmp_path / "ds.yaml")
    assert code == 1
    assert problem_lines(out) == [
        f"{bad}: 1 pixels of colours not in the palette: colour (1, 2, 3)"
    ]


def test_empty_split(tmp_path, capsys):
    make_pairs(tmp_path, {"train": 3})
    (tmp_path / "images" / "val").mkdir()
    (tmp_path / "masks" / "val").mkdir()
    code, out = check(capsys, tmp_path)
    assert code == 1 and f"{tmp_path}: split 'val' is empty" in problem_lines(out)


def test_duplicate_stems(tmp_path, capsys):
    make_pairs(tmp_path, {"train": 3, "val": 2})
    dup = write_image(tmp_path / "images" / "train" / "img000.jpg")
    code, out = check(capsys, tmp_path)
    assert code == 1
    [line] = problem_lines(out)
    assert "duplicate stem 'img000'" in line
    assert line.startswith(str(dup.with_suffix(".png"))) and dup.name in line


def test_training_refuses_a_broken_dataset_before_it_starts(tmp_path, capsys):
    make_pairs(tmp_path / "data", {"train": 3, "val": 2})
    bad = write_mask(
        tmp_path / "data" / "masks" / "train" / "img002.png", class_mask(size=(41, 30))
    )
    argv = [
        "train",
        "--data",
        str(tmp_path / "data"),
        "--weights",
        "none",
        "--epochs",
        "1",
        "--workers",
        "0",
        "--out",
        str(tmp_path / "run"),
        "--no-progress",
    ]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert f"{bad}: mask is 30x41" in captured.out + captured.err
    assert "1 problem(s) in the data" in captured.err
    assert not (tmp_path / "run" / "last.pt").exists()


def test_the_scan_is_cached_and_redone_for_changed_files(tmp_path, monkeypatch):
    make_pairs(tmp_path, {"train": 3, "val": 2})
    open_data(str(tmp_path), progress=False)
    read = []
    real_scan_file = scan._scan_file
    monkeypatch.setattr(
        scan, "_scan_file", lambda *job: read.append(job[0]) or real_scan_file(*job)
    )
    assert open_data(str(tmp_path), progress=False).problems == []
    assert read == []  # nothing changed: nothing read
    changed = write_mask(tmp_path / "masks" / "val" / "img001.png", class_mask(size=(40, 31)))
    assert len(open_data(str(tmp_path), progress=False).problems) == 1
    assert read == [changed]


@pytest.mark.parametrize("count", [1, 3])
def test_data_show_writes_overlays(tmp_path, capsys, count):
    make_camvid(tmp_path / "cv")
    assert (
        main(
            [
                "data",
                "show",
                str(tmp_path / "cv"),
                "--out",
                str(tmp_path / "o"),
                "--count",
                str(count),
                "--split",
                "val",
            ]
        )
        == 0
    )
    written = sorted((tmp_path / "o").glob("*.png"))
    assert len(written) == min(count, 2)
    from PIL import Image

    with Image.open(written[0]) as im:
        assert im.width == 2 * 48 + 8 and im.height > 36  # image, overlay and a legend below


def band_line(out: str, split: str) -> tuple[list[float], list[float]]:
    """The split's "band mean ...; std ..." numbers from the data check's output."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{split}: "))
    line = next(line for line in lines[start:] if line.startswith("  band mean "))
    mean, std = line.removeprefix("  band mean ").split("; std ")
    return [float(v) for v in mean.split(", ")], [float(v) for v in std.split(", ")]


def test_the_check_reports_bands_bit_depth_and_each_bands_statistics(tmp_path, capsys):
    make_band_pairs(tmp_path)
    code, out = check(capsys, tmp_path)
    assert code == 0 and "3 classes, 5-channel images" in out
    assert "images: 5 bands, 16-bit" in out.splitlines()
    train = np.stack([band_scene(i)[0] for i in range(8)]).astype(np.float64) / 65535
    mean, std = band_line(out, "train")
    assert mean == pytest.approx(train.mean(axis=(0, 2, 3)), rel=1e-3)
    assert std == pytest.approx(train.std(axis=(0, 2, 3)), rel=1e-3)


def test_an_image_with_another_number_of_bands_is_a_problem_naming_it(tmp_path, capsys):
    make_band_pairs(tmp_path / "data")
    odd = tmp_path / "data" / "images" / "train" / "scene003.tif"
    four = band_scene(3, bands=4)[0].transpose(1, 2, 0)
    tifffile.imwrite(odd, four, photometric="minisblack", planarconfig="contig")
    code, out = check(capsys, tmp_path / "data")
    assert code == 1
    assert problem_lines(out) == [
        f"{odd}: a 4-band image in a dataset of 5-band images (every image needs the same bands)"
    ]
    argv = ["train", "--data", str(tmp_path / "data"), "--weights", "none", "--epochs", "1"]
    assert main([*argv, "--workers", "0", "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    captured = capsys.readouterr()
    assert f"{odd}: a 4-band image" in captured.out and "1 problem(s)" in captured.err
    assert not (tmp_path / "run" / "last.pt").exists()


def test_grey_and_colour_images_mix_and_the_bit_depths_are_counted(tmp_path, capsys):
    make_pairs(tmp_path, {"train": 3, "val": 2})
    write_image(tmp_path / "images" / "train" / "img001.png", mode="L", seed=1)
    write_image(tmp_path / "images" / "val" / "img000.png", mode="I;16")
    code, out = check(capsys, tmp_path)
    assert code == 0 and "3-channel images" in out
    assert "images: 3 bands, 8-bit (4), 16-bit (1)" in out.splitlines()
