"""ONNX export: one graph with dynamic batch, height and width, checked against PyTorch with ONNX
Runtime, and loaded back as a segmenter with the classes it carries."""

import pytest
import torch

from seglab.data.synthetic import INFO
from seglab.deployment.export import export_onnx
from seglab.deployment.predict import predict
from seglab.deployment.runtime import OnnxSegmenter, load_segmenter
from seglab.engine.checkpoint import load_model
from seglab.engine.segmenter import Segmenter, TorchSegmenter
from seglab.errors import SeglabError
from tests.deployment.helpers import write_inputs


@pytest.fixture(scope="module")
def exported(tiny_runs, tmp_path_factory):
    path = tmp_path_factory.mktemp("export") / "vgg19.onnx"
    difference = export_onnx(tiny_runs["vgg19"] / "best.pt", path)
    return path, difference


def test_onnx_runtime_matches_pytorch_at_any_batch_and_size(exported, tiny_runs):
    path, difference = exported
    assert difference < 1e-4
    model, _ = load_model(tiny_runs["vgg19"] / "best.pt")
    segmenter = load_segmenter(path)
    assert isinstance(segmenter, OnnxSegmenter) and isinstance(segmenter, Segmenter)
    assert segmenter.kind == "onnxruntime" and segmenter.info == INFO
    for shape in ((1, 3, 64, 80), (3, 3, 97, 131)):  # dynamic batch, height and width
        x = torch.rand(shape)
        with torch.no_grad():
            assert (segmenter(x) - model(x)).abs().max() < 1e-4


def test_a_checkpoint_loads_as_the_segmenter_its_training_validated(tiny_runs):
    segmenter = load_segmenter(tiny_runs["mobilenet_v2"] / "best.pt")
    assert isinstance(segmenter, TorchSegmenter) and segmenter.autocast_dtype is None
    assert segmenter.channels_last and segmenter.info == INFO


def test_predict_takes_the_onnx_file(exported, tiny_runs, tmp_path):
    inputs = write_inputs(tmp_path / "in")
    onnx_out, torch_out = tmp_path / "onnx", tmp_path / "torch"
    assert predict(exported[0], [str(inputs)], onnx_out, progress=False).written == 2
    predict(tiny_runs["vgg19"] / "best.pt", [str(inputs)], torch_out, progress=False)
    for name in ("in0.png", "in1.png"):
        assert (onnx_out / name).read_bytes() == (torch_out / name).read_bytes()


def test_a_foreign_or_missing_onnx_file_is_one_line(exported, tmp_path):
    import onnx

    proto = onnx.load(str(exported[0]))
    del proto.metadata_props[:]
    onnx.save(proto, str(tmp_path / "plain.onnx"))
    with pytest.raises(SeglabError, match=r"plain.onnx was not exported by seglab"):
        load_segmenter(tmp_path / "plain.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"junk")
    with pytest.raises(SeglabError, match=r"cannot load ONNX model .*junk.onnx"):
        load_segmenter(tmp_path / "junk.onnx")
    with pytest.raises(SeglabError, match=r"model .*missing.onnx does not exist"):
        load_segmenter(tmp_path / "missing.onnx")
    with pytest.raises(SeglabError, match=r"runs on the CPU"):
        load_segmenter(exported[0], "cuda")


def test_export_checks_its_output_before_any_work(tmp_path):
    with pytest.raises(SeglabError, match=rf"^export: --out {tmp_path} is a folder"):
        export_onnx(tmp_path / "no_such.pt", tmp_path)
