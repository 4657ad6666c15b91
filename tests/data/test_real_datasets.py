"""The real datasets in ../shared/datasets; skipped where that folder is absent."""

import json

import pytest

from seglab.cli import main
from tests.conftest import SHARED_DATASETS, needs_camvid, needs_membrane


@needs_camvid
def test_camvid_counts_and_class_frequencies(capsys):
    assert main(["data", "check", str(SHARED_DATASETS / "camvid")]) == 0
    out = capsys.readouterr().out
    assert "train: 367 pairs; image sizes 480x360 (367)" in out
    assert "val: 101 pairs; image sizes 480x360 (101)" in out
    train_line = out.splitlines()[
        out.splitlines().index("train: 367 pairs; image sizes 480x360 (367)") + 1
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
    from seglab.engine.checkpoint import load_checkpoint

    payload = load_checkpoint(tmp_path / "best.pt")
    assert payload["model"]["in_channels"] == 1 and payload["model"]["num_classes"] == 2
    assert payload["dataset"]["in_channels"] == 1
