"""The real datasets in ../shared/datasets; skipped where that folder is absent."""

import json
from pathlib import Path

import pytest

from seglab.cli import main
from seglab.data.dataset import open_data
from tests.conftest import SHARED_DATASETS, needs_camvid, needs_membrane


@needs_camvid
def test_camvid_counts_and_class_frequencies(capsys):
    assert main(["data", "check", str(SHARED_DATASETS / "camvid")]) == 0
    out = capsys.readouterr().out
    assert "train: 367 pairs; image sizes 360x480 (367)" in out
    assert "val: 101 pairs; image sizes 360x480 (101)" in out
    train_line = out.splitlines()[
        out.splitlines().index("train: 367 pairs; image sizes 360x480 (367)") + 1
    ]
    shares = dict(part.rsplit(" ", 1) for part in train_line.split(": ", 1)[1].split(", "))
    assert float(shares["Road"].rstrip("%")) == pytest.approx(31.7, abs=0.06)
    assert float(shares["Building"].rstrip("%")) == pytest.approx(23.3, abs=0.06)
    assert float(shares["ignored"].rstrip("%")) == pytest.approx(4.0, abs=0.06)
    assert "no problems found" in out


@needs_membrane
def test_membrane_counts(capsys):
    assert main(["data", "check", str(SHARED_DATASETS / "isbi2012-membrane")]) == 0
    out = capsys.readouterr().out
    assert "2 classes, 1-channel images" in out
    assert "train: 24 pairs" in out and "val: 6 pairs" in out  # 30 pairs, split 80/20


@needs_membrane
def test_short_training_on_the_grey_binary_membrane_folder(tmp_path):
    argv = [
        "train",
        "--data",
        str(SHARED_DATASETS / "isbi2012-membrane"),
        "--weights",
        "none",
        "--epochs",
        "1",
        "--crop-size",
        "128x128",
        "--batch-size",
        "4",
        "--workers",
        "0",
        "--out",
        str(tmp_path),
        "--no-progress",
    ]
    assert main(argv) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert set(metrics["per_class"]) == {"background", "foreground"}
    from seglab.engine.checkpoint import Checkpoint

    checkpoint = Checkpoint.load(tmp_path / "best.pt")
    assert checkpoint.spec.in_channels == 1 and checkpoint.spec.num_classes == 2
    assert checkpoint.dataset.in_channels == 1


@needs_camvid
def test_camvid_with_a_sequence_held_out(capsys):
    configs = Path(__file__).resolve().parents[2] / "configs"
    recipe = configs / "data" / "camvid_heldout_sequence.yaml"
    assert main(["data", "check", str(recipe)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert "train: 367 pairs; image sizes 360x480 (367)" in lines
    assert "  2 groups: 0001TP (62), 0016E5 (305)" in lines
    assert "val: 101 pairs; image sizes 360x480 (101)" in lines
    assert "  1 group: 0006R0 (101)" in lines
    assert "warning" not in out and "no problems found" in out
    data = open_data(str(recipe), progress=False)
    sequences = {s: {p[0].name[:6] for p in data.split(s).pairs} for s in ("train", "val")}
    assert sequences == {"train": {"0001TP", "0016E5"}, "val": {"0006R0"}}


@needs_camvid
def test_the_segnet_split_of_camvid_shares_a_sequence(tmp_path, capsys):
    """The standard split, described with groups: the data check warns that val is not new."""
    path = tmp_path / "camvid_groups.yaml"
    path.write_text(f"root: {SHARED_DATASETS / 'camvid'}\ngroups: '^([^_]+)_'\n")
    assert main(["data", "check", str(path)]) == 0  # a warning does not fail the check
    warnings = [x for x in capsys.readouterr().out.splitlines() if x.startswith("warning")]
    assert warnings[0] == (
        "warning: val group 0016E5 also in train (204 train / 101 val images); "
        "val measures fit to seen groups, not new ones"
    )
