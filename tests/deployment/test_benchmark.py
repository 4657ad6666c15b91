"""The benchmark: every backend a segmenter, timed and (with data) evaluated by the same code."""

import json
import subprocess
import sys
import tempfile

import pytest
import torch

from seglab.cli import main
from seglab.deployment.benchmark import BACKENDS, benchmark_model
from seglab.engine.checkpoint import Checkpoint
from seglab.errors import SeglabError
from tests.deployment.conftest import source


def test_backend_names_import_without_torch():
    code = (
        "import sys; from seglab.deployment.backends import BACKENDS; "
        "assert 'torch' not in sys.modules; print(','.join(BACKENDS))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ",".join(BACKENDS)


def test_an_untrained_model_on_eager_and_onnxruntime(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the ONNX files go
    lines = []
    result = benchmark_model(
        encoder="mobilenet_v2",
        size=(64, 96),
        backends=("eager", "onnxruntime"),
        repeats=3,
        report=lines.append,
    )
    assert lines == [result.headline()]
    assert "untrained U-Net on mobilenet_v2, batch 1 at 64x96" in lines[0]
    assert list(tmp_path.iterdir()) == []  # the exported files are gone
    record = json.loads(json.dumps(result.to_dict()))
    assert record["size"] == [64, 96] and record["batch"] == 1 and record["gflops"] > 0
    assert [r["backend"] for r in record["results"]] == ["eager", "onnxruntime"]
    for r in record["results"]:
        assert 0 < r["median_ms"] <= r["p90_ms"] and r["images_per_s"] > 0 and r["peak_rss_mb"] > 0
        assert r["miou"] is None
    header, rows = result.table()
    assert len(header) == len(rows[0]) == 9 and rows[1][0] == "onnxruntime" and rows[0][7] == "-"
    assert rows[0][3] == "1.00"  # eager against itself


def test_with_data_each_backend_gives_the_checkpoints_miou(tiny_runs):
    path = tiny_runs["mobilenet_v2"] / "best.pt"
    result = benchmark_model(
        path,
        data=str(tiny_runs["data"]),
        size=(64, 80),
        backends=("eager", "onnxruntime", "int8"),
        repeats=2,
        report=lambda line: None,
    )
    stored = Checkpoint.load(path).metrics["miou"]
    mious = {r.backend: r.miou for r in result.results}
    assert mious["eager"] == pytest.approx(stored, abs=1e-6)
    assert mious["onnxruntime"] == pytest.approx(stored, abs=1e-3)
    assert 0 <= mious["int8"] <= 1
    assert f"{100 * mious['eager']:.2f}" in result.table()[1][0]


def test_a_checkpoint_is_timed_at_its_own_size_on_its_own_data(tiny_runs):
    path = tiny_runs["mobilenet_v2"] / "best.pt"
    result = benchmark_model(path, backends=("eager",), repeats=2, report=lambda line: None)
    assert result.size == (64, 80)  # its validation images', not 360x480
    assert result.results[0].miou == pytest.approx(Checkpoint.load(path).metrics["miou"], abs=1e-6)


@pytest.mark.parametrize("format", ["onnx-int8", "executorch"])
def test_an_exported_file_is_timed_as_it_is_beside_eager_pytorch(exported, tiny_runs, format):
    path = exported(format)[0]
    result = benchmark_model(path, repeats=2, report=lambda line: None)
    assert [r.backend for r in result.results] == [f"{format} (file)", "eager"]
    assert result.size == (64, 80) and f"{source(format)}, {format}" in result.model
    file, eager = result.results
    stored = Checkpoint.load(tiny_runs[source(format)] / "best.pt").metrics["miou"]
    assert eager.miou == pytest.approx(stored, abs=1e-6) and 0 <= file.miou <= 1
    speedup = result.table()[1][0][3]
    assert float(speedup) == pytest.approx(eager.median_ms / file.median_ms, rel=0.01)


def test_the_command_takes_the_file_as_its_argument(exported, capsys):
    path = exported("onnx-int8")[0]
    assert main(["benchmark", str(path), "--repeats", "1", "--limit", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "batch 1 at 64x80" in lines[0] and "x eager" in lines[1]
    assert lines[3].startswith("onnx-int8 (file)") and lines[4].startswith("eager")


def test_an_exported_file_without_its_checkpoint_is_timed_alone(exported, tmp_path):
    import shutil
    from dataclasses import replace

    from seglab.deployment.artifacts import read_card, write_card

    path = shutil.copy(exported("onnx")[0], tmp_path / "m.onnx")
    card = read_card(path)
    write_card(path, replace(card, source={**card.source, "checkpoint": "x.pt", "path": "/x.pt"}))
    lines = []
    result = benchmark_model(path, size=(32, 48), repeats=2, limit=1, report=lines.append)
    assert [r.backend for r in result.results] == ["onnx (file)"] and result.size == (32, 48)
    assert result.unavailable == {}
    explicit = benchmark_model(path, backends=("eager",), repeats=2, report=lines.append)
    assert explicit.unavailable == {"eager": "its source checkpoint x.pt is not here"}
    assert "eager: not available here (its source checkpoint x.pt is not here)" in lines


def test_the_executorch_backend_runs_the_lowered_file(exported, tiny_runs, tmp_path):
    """The benchmark's ExecuTorch backend (here from a file already lowered, as it reuses)."""
    import shutil

    from seglab.deployment.benchmark import backend_segmenter
    from seglab.engine.checkpoint import load_model

    shutil.copy(exported("executorch")[0], tmp_path / "model.pte")
    model, checkpoint = load_model(tiny_runs[source("executorch")] / "best.pt")
    segmenter = backend_segmenter("executorch", model, checkpoint.dataset, tmp_path, size=(64, 80))
    assert segmenter.kind == "executorch" and segmenter.name == "executorch"
    assert segmenter(torch.rand(2, 3, 40, 100)).shape == (2, 7, 40, 100)


def test_executorch_runs_after_a_channels_last_backend(tiny_runs):
    """The PyTorch backends set the shared module to channels_last, which ExecuTorch's lowering
    rejected: every backend of one benchmark must run, in any order. (The VGG19 run: its graph
    lowers in a third of the MobileNetV2 one's time, and was rejected all the same.)"""
    result = benchmark_model(
        tiny_runs["vgg19"] / "best.pt",
        backends=("bf16", "executorch"),
        size=(64, 80),
        repeats=2,
        limit=2,
        report=lambda line: None,
    )
    assert [r.backend for r in result.results] == ["bf16", "executorch"], result.unavailable


def test_mistakes_are_one_line(tiny_runs):
    with pytest.raises(SeglabError, match="--backends 'eager,tensorrt': choose from eager"):
        benchmark_model(encoder="mobilenet_v2", backends=("eager", "tensorrt"))
    with pytest.raises(SeglabError, match="--data needs --checkpoint"):
        benchmark_model(encoder="mobilenet_v2", data=str(tiny_runs["data"]))
