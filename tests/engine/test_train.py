"""One real training run on the synthetic data, shared by the tests that read its results."""

import csv
import json

import pytest
import torch
import yaml
from torch.utils.data import DataLoader

from seglab.cli import main
from seglab.data.synthetic import INFO, SyntheticScenes
from seglab.engine.checkpoint import load_model
from seglab.engine.evaluate import evaluate
from seglab.engine.segmenter import TorchSegmenter
from seglab.models import build_model


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    argv = [
        "train",
        "--data",
        "synthetic",
        "--encoder",
        "mobilenet_v2",
        "--weights",
        "none",
        "--epochs",
        "1",
        "--workers",
        "2",
        "--out",
        str(out),
        "--no-progress",
    ]
    assert main(argv) == 0
    return out


def test_training_writes_the_run_folder(run):
    assert {"config.yaml", "metrics.csv", "metrics.json", "best.pt", "last.pt"} <= {
        p.name for p in run.iterdir()
    }
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["encoder"] == "mobilenet_v2" and config["epochs"] == 1
    # what was resolved, not what was asked ("auto"): the record states what happened
    device = "cuda:0" if torch.cuda.is_available() else "cpu"
    assert config["device"] == device and config["precision"] in ("fp32", "bf16", "fp16")
    assert config["weights"] == "none" and config["out"] == str(run)
    assert config["resolved"]["weights_source"] == "random initialisation"
    assert config["resolved"]["precision_reason"]
    with open(run / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1 and float(rows[0]["val_miou"]) > 0


def test_a_trained_model_clearly_beats_an_untrained_one(run):
    val = DataLoader(SyntheticScenes("val"), batch_size=16)
    torch.manual_seed(0)
    untrained = build_model("mobilenet_v2", INFO.num_classes, encoder_weights=None)
    before = evaluate(TorchSegmenter(untrained, INFO), val, progress=False).metrics["miou"]
    trained, checkpoint = load_model(run / "best.pt")
    segmenter = TorchSegmenter(trained, INFO, channels_last=checkpoint.config.channels_last)
    after = evaluate(segmenter, val, progress=False).metrics["miou"]
    assert before < 0.15
    assert after > before + 0.15
    assert after == pytest.approx(checkpoint.metrics["miou"], abs=1e-6)
    assert json.loads((run / "metrics.json").read_text())["miou"] == pytest.approx(after, abs=1e-6)
