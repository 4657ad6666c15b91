"""seglab export --format executorch-int8: PT2E static INT8 with the XNNPACK quantizer, calibrated
on training images as onnx-int8 is, lowered whole to XNNPACK; the deployment commands take it
from the format registry. One lowering a session (the ``exported`` fixture: the VGG19 run)."""

import json
import shutil

import pytest
import torch
from PIL import Image

from seglab.cli import main
from seglab.deployment.artifacts import load_segmenter, read_card
from seglab.deployment.benchmark import backend_segmenter
from seglab.deployment.formats import FORMATS
from seglab.deployment.formats.executorch_int8 import CALIBRATION_METHOD, TOLERANCES
from seglab.deployment.predict import predict
from seglab.deployment.verify import verify_artifact
from seglab.engine.checkpoint import load_model
from seglab.engine.segmenter import FixedInputSegmenter
from seglab.errors import SeglabWarning
from tests.deployment.helpers import write_inputs


def test_export_verify_predict_and_evaluate(exported, tiny_runs, tmp_path, capsys):
    path, card, lines = exported("executorch-int8")
    assert path.suffix == ".pte" and read_card(path).to_dict() == card.to_dict()
    assert card.format == "executorch-int8" and card.input.fixed and card.input.size == (64, 80)
    # calibrated as onnx-int8 is: training images of the model's own data, the card says how
    assert card.calibration == {
        "data": str(tiny_runs["data"]),
        "split": "train",
        "images": 4,
        "method": CALIBRATION_METHOD,
    }
    assert "calibrated on 4 training images" in " ".join(lines)
    # one XNNPACK partition, nothing left to portable kernels
    assert card.delegation["partitions"] == 1 and card.delegation["portable_calls"] == 0
    assert card.tolerances == TOLERANCES and card.failures == []
    measured = card.measured
    assert measured.miou_drop_points <= TOLERANCES.miou_drop_points
    assert measured.changed_pixels_percent <= TOLERANCES.changed_pixels_percent
    assert measured.max_logit_diff > 0  # quantised: not PyTorch's logits to rounding
    # INT8 weights: about a quarter of the fp32 model's bytes
    model = load_model(tiny_runs["vgg19"] / "best.pt")[0]
    assert path.stat().st_size < 0.4 * 4 * sum(p.numel() for p in model.parameters())

    verified = verify_artifact(path, report=lambda line: None, progress=False)
    assert verified.passed, verified.failures
    assert verified.content_sha256 == card.content_sha256

    segmenter = load_segmenter(path)
    assert isinstance(segmenter, FixedInputSegmenter) and segmenter.kind == "executorch-int8"
    assert segmenter(torch.rand(2, 3, 40, 100)).shape == (2, 7, 40, 100)  # padded and tiled

    inputs = write_inputs(tmp_path / "in")  # in1 (50x70) is smaller than the program's 64x80
    with pytest.warns(SeglabWarning, match="useless|undertrained"):  # 3 steps: said so
        assert predict(path, [str(inputs)], tmp_path / "masks", progress=False).written == 2
    for name, size in (("in0.png", (80, 64)), ("in1.png", (70, 50))):  # the mask of each input
        assert Image.open(tmp_path / "masks" / name).size == size

    metrics_file = tmp_path / "metrics.json"
    argv = ["evaluate", "--checkpoint", str(path), "--out", str(metrics_file), "--workers", "0"]
    assert main(argv) == 0
    metrics = json.loads(metrics_file.read_text())
    assert metrics["evaluation"]["format"] == "executorch-int8"
    stored = load_model(tiny_runs["vgg19"] / "best.pt")[1].metrics["miou"]
    assert abs(metrics["miou"] - stored) <= TOLERANCES.miou_drop_points / 100 + 1e-6
    capsys.readouterr()


def test_the_benchmark_backend_runs_the_lowered_file(exported, tiny_runs, tmp_path):
    """The benchmark's backend of the format (from a file already lowered, as it reuses)."""
    format = FORMATS["executorch-int8"]
    shutil.copy(exported("executorch-int8")[0], tmp_path / format.file_name)
    model, checkpoint = load_model(tiny_runs["vgg19"] / "best.pt")
    segmenter = backend_segmenter(
        format.backend, model, checkpoint.dataset, tmp_path, size=(64, 80)
    )
    assert segmenter.kind == "executorch-int8" and segmenter.name == "executorch-int8"
    assert segmenter(torch.rand(1, 3, 64, 80)).shape == (1, 7, 64, 80)
