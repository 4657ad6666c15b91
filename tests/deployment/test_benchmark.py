"""The benchmark: every backend a segmenter, timed and (with data) evaluated by the same code."""

import json
import subprocess
import sys
import tempfile

import pytest

from seglab.deployment.benchmark import BACKENDS, benchmark_model
from seglab.engine.checkpoint import Checkpoint
from seglab.errors import SeglabError


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
    assert len(header) == len(rows[0]) == 8 and rows[1][0] == "onnxruntime" and rows[0][6] == "-"


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


def test_an_exported_file_is_benchmarked_on_its_onnx_backends(tiny_runs, tmp_path):
    from seglab.deployment.export import export_onnx

    onnx_path = tmp_path / "m.onnx"
    export_onnx(tiny_runs["mobilenet_v2"] / "best.pt", onnx_path)
    result = benchmark_model(
        onnx_path, size=(64, 80), backends=BACKENDS, repeats=2, report=lambda line: None
    )
    assert [r.backend for r in result.results] == ["onnxruntime", "int8"]
    assert "mobilenet_v2, ONNX" in result.model


def test_mistakes_are_one_line(tiny_runs):
    with pytest.raises(SeglabError, match="--backends 'eager,tensorrt': choose from eager"):
        benchmark_model(encoder="mobilenet_v2", backends=("eager", "tensorrt"))
    with pytest.raises(SeglabError, match="--data needs --checkpoint"):
        benchmark_model(encoder="mobilenet_v2", data=str(tiny_runs["data"]))
