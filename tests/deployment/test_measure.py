"""The one evaluation path of a model file (checkpoints and exported files alike), and the
parity and memory measurements that export, verify and compare take."""

import numpy as np
import pytest

from seglab.data.synthetic import INFO
from seglab.deployment.measure import (
    changed_pixels_percent,
    evaluate_model,
    open_model_data,
    peak_inference_memory,
)
from seglab.engine.checkpoint import Checkpoint
from seglab.engine.evaluate import EvalOptions, Evaluation
from seglab.errors import SeglabError


def test_a_checkpoint_reproduces_its_stored_metrics_exactly(tiny_runs):
    for encoder in ("vgg19", "mobilenet_v2"):
        path = tiny_runs[encoder] / "best.pt"
        stored = Checkpoint.load(path)
        metrics = evaluate_model(path, progress=False)
        what = metrics["evaluation"]
        assert what["batch_size"] == stored.config.batch_size  # as its training validated it
        assert what["data"] == stored.config.data and "format" not in what
        assert metrics["miou"] == stored.metrics["miou"]
        assert metrics["per_class"] == stored.metrics["per_class"]
    explicit = evaluate_model(path, options=EvalOptions(batch_size=3), progress=False)
    assert explicit["evaluation"]["batch_size"] == 3
    assert explicit["pixels"] == metrics["pixels"]


def test_an_exported_file_is_evaluated_on_the_path_of_a_checkpoint(exported, tiny_runs):
    path, card, _ = exported("onnx")
    metrics = evaluate_model(path, progress=False)
    stored = Checkpoint.load(tiny_runs["mobilenet_v2"] / "best.pt").metrics
    assert metrics["miou"] == pytest.approx(stored["miou"], abs=1e-6)
    what = metrics["evaluation"]
    assert what["format"] == "onnx" and what["batch_size"] == 1 and what["device"] == "cpu"
    assert what["data"] == card.measured.data == str(tiny_runs["data"])
    flipped = evaluate_model(path, options=EvalOptions(flip=True), progress=False)
    assert flipped["evaluation"]["flip"] is True


def test_bad_requests_are_one_line(tiny_runs, tmp_path):
    with pytest.raises(SeglabError, match="--batch-size 0 must be at least 1"):
        evaluate_model(tiny_runs["vgg19"] / "best.pt", options=EvalOptions(batch_size=0))
    with pytest.raises(SeglabError, match="does not exist"):
        evaluate_model(tmp_path / "missing.pt")
    with pytest.raises(SeglabError, match=r"trained on nowhere\.yaml, which cannot be opened"):
        open_model_data("nowhere.yaml", INFO, "m.pt", given=False)


def test_changed_pixels_count_only_scored_pixels():
    want = [np.array([[0, 1], [255, 2]], np.uint8)]
    got = [np.array([[0, 2], [1, 2]], np.uint8)]  # one of three scored pixels differs
    share = changed_pixels_percent(
        Evaluation({}, None, predictions=got), Evaluation({}, None, predictions=want), INFO
    )
    assert share == pytest.approx(100 / 3)


def test_peak_memory_of_a_fresh_process_that_runs_the_file(tiny_runs):
    peak, baseline = peak_inference_memory(tiny_runs["mobilenet_v2"] / "best.pt", (64, 80))
    assert peak > baseline > 50  # PyTorch alone takes tens of MB; the model adds to it
