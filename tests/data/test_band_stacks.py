"""Images stored as one file per band (Sentinel-2 style): declared in the dataset YAML (``bands``,
``band_pattern``), listed as one image per sample, read as the multi-band TIFF of the same data
reads, checked for missing and mismatched bands, and trained and evaluated on through the CLI."""

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
import yaml
from PIL import Image

from seglab.cli import main
from seglab.data.check import format_report
from seglab.data.dataset import open_data
from seglab.data.dataset_file import read_dataset_file
from seglab.data.files import BandSpec, stacks_by_stem
from seglab.data.io import BandStack, band_stack, read_image
from seglab.data.layouts import list_files
from seglab.engine.checkpoint import Checkpoint
from seglab.errors import SeglabError
from tests.data.helpers import band_scene, write_mask

BANDS = ["B02", "B03", "B04", "B08"]
SIZE = (32, 40)  # height, width


def write_band(path: Path, band: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".png":
        Image.fromarray(band).save(path)
    else:
        tifffile.imwrite(path, band, photometric="minisblack")
    return path


def make_stacks(
    root: Path,
    counts=None,
    pattern: str = "{stem}_{band}",
    suffix: str = ".tif",
    extra: dict | None = None,
) -> Path:
    """images/ + masks/ with train/ and val/: 4-band 16-bit scenes (see band_scene), each band
    a file placed by ``pattern``, and a data.yaml declaring the bands (and ``extra`` keys)."""
    for split, count in (counts or {"train": 4, "val": 2}).items():
        for i in range(count):
            image, mask = scene(split, i)
            for name, band in zip(BANDS, image):
                relative = pattern.format(stem=f"tile{i:03d}", band=name) + suffix
                write_band(root / "images" / split / relative, band)
            write_mask(root / "masks" / split / f"tile{i:03d}.png", mask)
    spec = {"bands": BANDS, "classes": ["a", "b", "c"], **(extra or {})}
    (root / "data.yaml").write_text(yaml.safe_dump(spec))
    return root / "data.yaml"


def scene(split: str, i: int) -> tuple[np.ndarray, np.ndarray]:
    return band_scene(i + (100 if split == "val" else 0), len(BANDS), size=SIZE)


def write_tiff(path: Path, image: np.ndarray) -> Path:
    """A multi-band TIFF, its bands as samples of a pixel."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(
        path, image.transpose(1, 2, 0), photometric="minisblack", planarconfig="contig"
    )
    return path


@pytest.mark.parametrize("suffix", [".tif", ".png"])
def test_a_stack_reads_exactly_as_the_multi_band_tiff_of_the_same_data(tmp_path, suffix):
    image, _ = band_scene(7, len(BANDS), size=SIZE)
    tiff = read_image(write_tiff(tmp_path / "tile.tif", image))
    files = {
        name: write_band(tmp_path / f"tile_{name}{suffix}", b) for name, b in zip(BANDS, image)
    }
    stacked = read_image(band_stack(tmp_path / "tile", files))
    assert stacked.shape == (4, *SIZE) and stacked.dtype == torch.float32
    assert torch.equal(stacked, tiff)


def test_the_declared_order_is_the_channel_order(tmp_path):
    image, _ = band_scene(3, len(BANDS), size=SIZE)
    for name, band in zip(BANDS, image):
        write_band(tmp_path / f"tile_{name}.tif", band)
    order = ("B08", "B02", "B04", "B03")
    stack = stacks_by_stem(tmp_path, BandSpec(order), [])["tile"]
    expected = read_image(write_tiff(tmp_path / "other" / "t.tif", image[[3, 0, 2, 1]]))
    assert stack.band_names == order and torch.equal(read_image(stack), expected)


@pytest.mark.parametrize("pattern", ["{stem}_{band}", "{band}/{stem}", "{stem}/{band}"])
def test_listing_groups_each_samples_band_files_into_one_image(tmp_path, pattern):
    extra = {} if pattern != "{stem}/{band}" else {"band_pattern": pattern}
    listing = list_files(read_dataset_file(make_stacks(tmp_path, pattern=pattern, extra=extra)))
    assert listing.problems == ()
    train = listing.splits["train"]
    assert [(image.name, mask.name) for image, mask in train] == [
        (f"tile{i:03d}", f"tile{i:03d}.png") for i in range(4)
    ]
    image = train[0][0]
    assert isinstance(image, BandStack) and image.band_names == tuple(BANDS)
    assert [p.relative_to(tmp_path / "images" / "train").as_posix() for p in image.files] == [
        pattern.format(stem="tile000", band=b) + ".tif" for b in BANDS
    ]


def test_files_of_bands_not_declared_are_left_aside(tmp_path):
    data = make_stacks(tmp_path)
    write_band(tmp_path / "images" / "train" / "tile000_B01.tif", np.zeros(SIZE, np.uint16))
    listing = list_files(read_dataset_file(data))
    assert listing.problems == () and listing.splits["train"][0][0].band_names == tuple(BANDS)


def test_a_stack_pickles_with_its_bands_and_stats_as_one_file(tmp_path):
    data = make_stacks(tmp_path, {"train": 1})
    stack = list_files(read_dataset_file(data)).splits["train"][0][0]
    copy = pickle.loads(pickle.dumps(stack))
    assert copy == stack and copy.band_files == stack.band_files
    assert stack.stat().st_size == sum(p.stat().st_size for p in stack.files)
    assert stack.stat().st_mtime_ns == max(p.stat().st_mtime_ns for p in stack.files)


def test_the_data_check_reports_bands_bit_depth_and_per_band_statistics_as_for_a_tiff(tmp_path):
    stacks = open_data(str(make_stacks(tmp_path / "stacks")), progress=False)
    tiffs = tmp_path / "tiffs"
    for split, count in {"train": 4, "val": 2}.items():
        for i in range(count):
            image, mask = scene(split, i)
            write_tiff(tiffs / "images" / split / f"tile{i:03d}.tif", image)
            write_mask(tiffs / "masks" / split / f"tile{i:03d}.png", mask)
    tiffs = open_data(str(tiffs), progress=False)
    assert stacks.problems == [] and stacks.info.in_channels == 4
    assert "images: 4 bands, 16-bit" in format_report(stacks.report).splitlines()
    assert stacks.info.input_mean == pytest.approx(tiffs.info.input_mean, rel=1e-12)
    assert stacks.info.input_std == pytest.approx(tiffs.info.input_std, rel=1e-12)
    image, _ = stacks.split("train").load(1)
    assert torch.equal(image, tiffs.split("train").load(1)[0])


def test_a_sample_missing_a_band_is_a_problem_naming_it(tmp_path):
    data = make_stacks(tmp_path)
    (tmp_path / "images" / "val" / "tile001_B04.tif").unlink()
    problems = open_data(str(data), progress=False).problems
    sample = tmp_path / "images" / "val" / "tile001"
    assert problems == [f"{sample}: band B04 missing (its bands: B02, B03, B04, B08)"]


def test_bands_of_different_sizes_or_bit_depths_are_problems(tmp_path):
    data = make_stacks(tmp_path)
    train = tmp_path / "images" / "train"
    write_band(train / "tile001_B08.tif", np.zeros((16, 20), np.uint16))
    write_band(train / "tile002_B03.tif", np.zeros(SIZE, np.uint8))
    assert open_data(str(data), progress=False).problems == [
        f"{train / 'tile001'}: bands of different sizes: B02, B03, B04 32x40; B08 16x20",
        f"{train / 'tile002'}: bands of different bit depths: B02, B04, B08 16-bit; B03 8-bit",
    ]
    with pytest.raises(SeglabError, match=r"tile001: bands of different sizes"):
        read_image(list_files(read_dataset_file(data)).splits["train"][1][0])


def test_a_folder_where_no_file_is_a_declared_band_says_so(tmp_path):
    data = make_stacks(tmp_path, extra={"bands": ["B2", "B3", "B4", "B8"]})
    problems = open_data(str(data), progress=False).problems
    assert problems[0] == (
        f"{tmp_path / 'images' / 'train'}: no file is one of bands B2, B3, B4, B8 by "
        "band_pattern '{stem}_{band}' (e.g. tile000_B02.tif)"
    )


def test_band_folders_beside_band_files_are_refused_in_one_line(tmp_path):
    data = make_stacks(tmp_path)
    write_band(tmp_path / "images" / "train" / "B02" / "tile000.tif", np.zeros(SIZE, np.uint16))
    with pytest.raises(SeglabError) as err:
        list_files(read_dataset_file(data))
    assert str(err.value) == (
        f"{tmp_path / 'images' / 'train'}: both a folder per band (B02/) and band files "
        f"(tile000_B02.tif); set band_pattern in {data} "
        "('{band}/{stem}' or '{stem}_{band}')"
    )
    write_yaml = {"bands": BANDS, "classes": ["a", "b", "c"], "band_pattern": "{stem}_{band}"}
    data.write_text(yaml.safe_dump(write_yaml))
    assert list_files(read_dataset_file(data)).problems == ()


@pytest.mark.parametrize(
    "keys, message",
    [
        ({"bands": [2, 3]}, "bands must be a list of band names in channel order, e.g. "),
        ({"bands": ["B02", "B02"]}, "bands: 'B02' is named twice"),
        ({"bands": []}, "bands must be a list of band names"),
        ({"band_pattern": "{band}_{stem}"}, "band_pattern needs bands"),
        ({"bands": BANDS, "band_pattern": "{stem}"}, "band_pattern must be a path below"),
        ({"bands": BANDS, "band_pattern": "../{band}/{stem}"}, "band_pattern must be a path"),
        ({"bands": BANDS, "layout": "voc"}, "bands: layout voc names one file per image"),
    ],
)
def test_the_dataset_file_refuses_unclear_band_keys_in_one_line(tmp_path, keys, message):
    path = tmp_path / "data.yaml"
    path.write_text(yaml.safe_dump({"classes": ["a", "b"], **keys}))
    with pytest.raises(SeglabError, match=r"^[^\n]*$") as err:
        read_dataset_file(path)
    assert message in str(err.value) and str(err.value).startswith(f"{path}: ")


@pytest.mark.filterwarnings("ignore::seglab.errors.SeglabWarning")  # a 2-step model is untrained
def test_train_and_evaluate_through_the_cli_on_a_band_stack_dataset(tmp_path, capsys):
    data = make_stacks(tmp_path / "data", pattern="{band}/{stem}")
    run = tmp_path / "run"
    argv = ["train", "--data", str(data), "--weights", "none", "--iterations", "2"]
    argv += ["--batch-size", "2", "--workers", "0", "--no-progress", "--auto", "none"]
    assert main([*argv, "--out", str(run)]) == 0
    metrics = tmp_path / "metrics.json"
    argv = ["evaluate", "--checkpoint", str(run / "best.pt"), "--data", str(data)]
    assert main([*argv, "--out", str(metrics), "--device", "cpu", "--workers", "0"]) == 0
    scored = json.loads(metrics.read_text())
    stored = Checkpoint.load(run / "best.pt")
    assert stored.spec.in_channels == stored.dataset.in_channels == 4
    assert scored["pixels"] == 2 * SIZE[0] * SIZE[1]
    assert scored["confusion"] == stored.metrics["confusion"]


def test_a_band_file_changed_after_a_check_is_read_again(tmp_path):
    data = make_stacks(tmp_path)
    assert open_data(str(data), progress=False).problems == []
    band = tmp_path / "images" / "val" / "tile000_B03.tif"
    write_band(band, np.zeros((16, 20), np.uint16))
    assert open_data(str(data), progress=False).problems == [
        f"{band.parent / 'tile000'}: bands of different sizes: B02, B04, B08 32x40; B03 16x20"
    ]


def test_a_pattern_with_a_suffix_takes_only_files_of_that_suffix(tmp_path):
    data = make_stacks(tmp_path, extra={"band_pattern": "{stem}_{band}.tif"})
    write_band(tmp_path / "images" / "train" / "tile000_B02.png", np.zeros(SIZE, np.uint16))
    listing = list_files(read_dataset_file(data))
    assert listing.problems == ()
    assert listing.splits["train"][0][0].files[0].name == "tile000_B02.tif"
