"""One real training run on the synthetic data, shared by the tests that read its results."""

import csv
import json

import numpy as np
import pytest
import torch
import yaml
from torch.utils.data import DataLoader

from seglab.cli import main
from seglab.config import TrainConfig
from seglab.data.dataset import open_data
from seglab.data.synthetic import INFO, SyntheticScenes
from seglab.engine.checkpoint import load_model
from seglab.engine.distributed import Dist
from seglab.engine.evaluate import evaluate
from seglab.engine.segmenter import TorchSegmenter
from seglab.engine.train import make_loaders, open_train_data
from seglab.models import build_model
from tests.data.helpers import write_image, write_mask
from tests.engine.conftest import train_args


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    argv = [
        "train",
        "--auto",
        "none",
        "--data",
        "synthetic",
        "--encoder",
        "mobilenet_v2",
        "--weights",
        "none",
        "--epochs",
        "1",
        "--crop-size",  # a quarter of each 128x160 scene: a quarter of the work, still learned
        "64x80",
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
    some = DataLoader(SyntheticScenes("val", length=32), batch_size=16)  # enough to score chance
    torch.manual_seed(0)
    untrained = build_model("mobilenet_v2", INFO.num_classes, encoder_weights=None)
    before = evaluate(TorchSegmenter(untrained, INFO), some, progress=False).metrics["miou"]
    trained, checkpoint = load_model(run / "best.pt")
    segmenter = TorchSegmenter(trained, INFO, channels_last=checkpoint.config.channels_last)
    after = evaluate(segmenter, val, progress=False).metrics["miou"]
    assert before < 0.15
    assert after > before + 0.15
    assert after == pytest.approx(checkpoint.metrics["miou"], abs=1e-6)
    assert json.loads((run / "metrics.json").read_text())["miou"] == pytest.approx(after, abs=1e-6)


def test_class_balanced_sampling_shows_the_rare_class_more_often(tmp_path, capsys):
    # 8 training images of class 0; image 5 also holds a small patch of class 1
    for i in range(8):
        mask = np.zeros((30, 40), np.uint8)
        if i == 5:
            mask[:4, :4] = 1
        write_image(tmp_path / "images" / "train" / f"img{i}.png", seed=i)
        write_mask(tmp_path / "masks" / "train" / f"img{i}.png", mask)
        write_image(tmp_path / "images" / "val" / f"img{i}.png", seed=i)
        write_mask(tmp_path / "masks" / "val" / f"img{i}.png", mask)
    config = TrainConfig(data=str(tmp_path), batch_size=2, workers=0, class_sampling=1.0)
    data = open_data(config.data, progress=False)
    loader, _ = make_loaders(config, data, Dist(), torch.device("cpu"))
    draws = []
    for epoch in range(1, 21):
        loader.batch_sampler.set_epoch(epoch)
        draws += [index for batch in loader.batch_sampler for _, index in batch]
    # balanced: half the draws pick class 1 (only image 5), half pick class 0 (~1/8 is image 5)
    share = draws.count(5) / len(draws)
    assert 0.45 < share < 0.65

    code = main(
        train_args(
            str(tmp_path),
            tmp_path / "run",
            "--class-sampling",
            "0.5",
            "--class-crop",
            "0.5",
            "--epochs",
            "1",
        )
    )
    assert code == 0
    assert "class-balanced sampling 0.5; class-aware crops 0.5" in capsys.readouterr().out
    recorded = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert recorded["class_sampling"] == 0.5 and recorded["class_crop"] == 0.5


def test_a_runs_seed_never_changes_its_data():
    """Seeds differ in initialisation and random draws only: runs of several seeds are scored
    on the same images (the synthetic scenes once followed the run's seed)."""
    config = TrainConfig(data="synthetic", seed=7, progress=False)
    image, mask = open_train_data(config, Dist(), print).split("val")[0]
    reference, reference_mask = open_data("synthetic").split("val")[0]
    assert torch.equal(image, reference) and torch.equal(mask, reference_mask)
