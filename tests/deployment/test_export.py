"""Export in every format: the file runs in its runtime as a segmenter with the classes it
carries, matches the PyTorch model, and carries its deployment card (in the file and beside it)
with the hashes that tie it to its checkpoint and to its own content."""

import json
import re
import subprocess
import sys

import pytest
import torch

from seglab.cli import main
from seglab.data.synthetic import INFO, SyntheticScenes
from seglab.deployment.artifacts import (
    content_sha256,
    file_sha256,
    load_segmenter,
    pytorch_reference,
    read_card,
)
from seglab.deployment.card import InputPolicy
from seglab.deployment.export import card_files, export_artifact
from seglab.deployment.formats import FORMATS
from seglab.deployment.formats.executorch_xnnpack import ExecuTorchSegmenter
from seglab.deployment.predict import predict
from seglab.engine.checkpoint import Checkpoint, load_model
from seglab.engine.segmenter import Segmenter
from seglab.errors import SeglabError
from tests.deployment.conftest import source
from tests.deployment.helpers import write_inputs

KINDS = {
    "onnx": "onnxruntime",
    "onnx-int8": "int8",
    "executorch": "executorch",
    "executorch-int8": "executorch-int8",
}


@pytest.mark.parametrize("format", list(FORMATS))
def test_each_format_carries_its_card_in_the_file_and_beside_it(exported, tiny_runs, format):
    path, card, lines = exported(format)
    checkpoint = tiny_runs[source(format)] / "best.pt"
    assert read_card(path).to_dict() == card.to_dict()
    assert card.format == format and card.info == INFO and card.spec.encoder == source(format)
    assert card.normalisation["mean"] == pytest.approx([0.485, 0.456, 0.406])
    assert card.input == InputPolicy((64, 80), fixed=FORMATS[format].implementation().FIXED_SIZE)
    assert card.source["sha256"] == file_sha256(checkpoint)
    # the checkpoint's verdicts go with the file: this 3-step model is undertrained
    record = Checkpoint.load(checkpoint).metrics
    assert card.source["undertrained"] == record["undertrained"] and record["undertrained"]
    assert card.source["degenerate"] == record["degenerate"]
    assert card.content_sha256 == content_sha256(path)
    assert card.tolerances == FORMATS[format].implementation().TOLERANCES and card.failures == []
    measured = card.measured
    assert measured.data == str(tiny_runs["data"]) and measured.images == 2
    assert measured.size == (64, 80) and measured.repeats == 2 and measured.parity_images == 2
    assert measured.miou_drop_points <= card.tolerances.miou_drop_points
    assert measured.changed_pixels_percent <= card.tolerances.changed_pixels_percent
    assert measured.latency_ms > 0 and measured.pytorch_latency_ms > 0
    assert measured.machine["cores"] >= 1 and measured.machine["versions"]["torch"]
    if FORMATS[format].implementation().CALIBRATION_METHOD:
        assert card.calibration["images"] == 4 and card.calibration["split"] == "train"
    else:
        assert card.calibration is None and measured.max_logit_diff < 1e-4
    card_json, card_markdown = card_files(path)
    assert json.loads(card_json.read_text()) == card.to_dict()
    markdown = card_markdown.read_text()
    assert f"format: **{format}**" in markdown and "| 6 | sign | #dcdc00 |" in markdown
    # progress: stage lines with the seconds since the start, the last naming what was written
    assert all(re.match(r"export: \[ *\d+\.\d s\] ", line) for line in lines[:4])
    assert any(f"wrote {path}" in line for line in lines)


@pytest.mark.parametrize("format", list(FORMATS))
def test_each_format_matches_pytorch_at_another_batch_and_size(exported, tiny_runs, format):
    path, card, _ = exported(format)
    model, _ = load_model(tiny_runs[source(format)] / "best.pt")
    segmenter = load_segmenter(path)
    assert isinstance(segmenter, Segmenter) and segmenter.kind == KINDS[format]
    assert segmenter.info == INFO and segmenter.card.content_sha256 == card.content_sha256
    images = torch.stack([SyntheticScenes("val", size=(50, 90))[k][0] for k in range(2)])
    got, want = segmenter(images), pytorch_reference(model, INFO, card.input)(images)
    assert got.shape == want.shape == (2, INFO.num_classes, 50, 90)
    if "int8" in format:
        assert (got.argmax(1) == want.argmax(1)).float().mean() > 0.95
    else:
        assert (got - want).abs().max() < 1e-4


@pytest.mark.parametrize("format", list(FORMATS))
def test_predict_takes_each_format(exported, tiny_runs, tmp_path, format):
    inputs = write_inputs(tmp_path / "in")
    artifact_out, torch_out = tmp_path / "artifact", tmp_path / "torch"
    assert predict(exported(format)[0], [str(inputs)], artifact_out, progress=False).written == 2
    predict(tiny_runs[source(format)] / "best.pt", [str(inputs)], torch_out, progress=False)
    for name in ("in0.png", "in1.png"):  # in1 (50x70) is smaller than ExecuTorch's 64x80
        same = (artifact_out / name).read_bytes() == (torch_out / name).read_bytes()
        assert same or "int8" in format


@pytest.mark.parametrize("format", list(FORMATS))
def test_the_python_api_loads_each_format_as_seglab_predict_runs_it(
    exported, tiny_runs, tmp_path, format
):
    """seglab.load on an exported file: the model its card describes, predicting the masks that
    `seglab predict` writes from the same file."""
    import numpy as np
    from PIL import Image

    import seglab

    path, card, _ = exported(format)
    model = seglab.load(path)
    assert model.form == format and model.card.content_sha256 == card.content_sha256
    assert model.classes == INFO.classes and model.encoder == source(format)
    inputs = write_inputs(tmp_path / "in")
    predict(path, [str(inputs)], tmp_path / "out", progress=False)
    for name in ("in0", "in1"):
        written = np.asarray(Image.open(tmp_path / "out" / f"{name}.png"))
        assert np.array_equal(model.predict(inputs / f"{name}.png"), written)


@pytest.mark.parametrize("format", ["onnx", "executorch"])
def test_evaluate_takes_an_exported_model(exported, tiny_runs, tmp_path, capsys, format):
    out = tmp_path / "metrics.json"
    argv = ["evaluate", "--checkpoint", str(exported(format)[0]), "--out", str(out)]
    assert main([*argv, "--workers", "0"]) == 0
    metrics = json.loads(out.read_text())
    stored = load_model(tiny_runs[source(format)] / "best.pt")[1].metrics["miou"]
    assert metrics["miou"] == pytest.approx(stored, abs=1e-6)  # all 8 images of its own data
    assert metrics["evaluation"]["format"] == format
    assert metrics["evaluation"]["data"] == str(tiny_runs["data"])
    assert f"mIoU {100 * stored:.2f}" in capsys.readouterr().out


def test_the_pte_card_is_also_a_constant_method_of_the_program(exported):
    from seglab.deployment.formats.executorch_xnnpack import CARD_METHOD, CARD_PREFIX, runtime

    path, card, _ = exported("executorch")
    program = runtime().load_program(str(path))
    text = program.load_method(CARD_METHOD).execute([])[0]
    assert text.startswith(CARD_PREFIX.decode())
    assert json.loads(text[len(CARD_PREFIX) :]) == card.to_dict()
    assert isinstance(load_segmenter(path).inner, ExecuTorchSegmenter)


def test_export_checks_its_output_before_any_work(exported, tmp_path):
    with pytest.raises(SeglabError, match=rf"^export: --out {tmp_path} is a folder"):
        export_artifact(tmp_path / "no_such.pt", tmp_path)
    with pytest.raises(SeglabError, match=r"--out .*model.onnx: a executorch model is a .pte"):
        export_artifact(tmp_path / "no_such.pt", tmp_path / "model.onnx", "executorch")
    with pytest.raises(SeglabError, match=r"--format 'tflite': choose from onnx, onnx-int8"):
        export_artifact(tmp_path / "no_such.pt", tmp_path / "model.onnx", "tflite")
    path = exported("onnx")[0]
    before = path.read_bytes()
    with pytest.raises(SeglabError, match=rf"^export: {path} exists; add --overwrite"):
        export_artifact(tmp_path / "no_such.pt", path)
    assert path.read_bytes() == before
    card_files(tmp_path / "new.onnx")[1].write_text("a card of mine")
    with pytest.raises(SeglabError, match=r"new.onnx.card.md exists; add --overwrite"):
        export_artifact(tmp_path / "no_such.pt", tmp_path / "new.onnx")


def test_executorch_absent_is_one_line(tiny_runs, tmp_path):
    """Where ExecuTorch is not installed, its format and .pte files say so in one line."""
    code = (
        "import sys; sys.modules['executorch'] = None\n"
        "from seglab.cli import main\n"
        f"sys.exit(main(['export', '--checkpoint', {str(tiny_runs['mobilenet_v2'] / 'best.pt')!r},"
        f" '--format', 'executorch', '--out', {str(tmp_path / 'm.pte')!r}, '--limit', '1']))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 2, result.stderr
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith("seglab: error: ExecuTorch is not installed here")
    )
    assert "Traceback" not in result.stderr and not (tmp_path / "m.pte").exists()
    assert list(tmp_path.iterdir()) == []  # no partial file left behind


def test_a_per_image_normalised_model_exports_with_its_normalisation(tiny_runs, tmp_path):
    run, onnx = tmp_path / "run", tmp_path / "model.onnx"
    argv = ["train", "--data", str(tiny_runs["data"]), "--encoder", "mobilenet_v2"]
    argv += ["--weights", "none", "--iterations", "2", "--batch-size", "4", "--workers", "0"]
    assert main([*argv, "--input-norm", "image", "--no-progress", "--out", str(run)]) == 0
    model, _ = load_model(run / "last.pt")
    assert model.spec.input_norm == "image"
    argv = ["export", "--checkpoint", str(run / "last.pt"), "--out", str(onnx), "--no-progress"]
    assert main([*argv, "--limit", "2", "--repeats", "2"]) == 0  # the graph is tested, not timed
    card = read_card(onnx)
    assert card.spec.input_norm == "image"
    images = torch.stack([SyntheticScenes("val", size=(50, 90))[k][0] for k in range(2)])
    darker = images * 0.6  # the same scenes at a lower exposure
    segmenter, reference = load_segmenter(onnx), pytorch_reference(model, INFO, card.input)
    assert (segmenter(images) - reference(images)).abs().max() < 1e-4
    assert (segmenter(darker) - segmenter(images)).abs().max() < 1e-3  # in the exported graph too
