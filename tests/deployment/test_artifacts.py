"""Model files as runnable models: load_segmenter is the one loader (a checkpoint as its
training validated it, an exported file under its card's input policy), and a foreign, damaged or
missing file is one line, from the library and from the command line."""

import pytest

from seglab.cli import main
from seglab.data.synthetic import INFO
from seglab.deployment.artifacts import load_segmenter
from seglab.engine.segmenter import TorchSegmenter
from seglab.errors import SeglabError
from tests.deployment.helpers import write_inputs


def test_a_checkpoint_loads_as_the_segmenter_its_training_validated(tiny_runs):
    segmenter = load_segmenter(tiny_runs["mobilenet_v2"] / "best.pt")
    assert isinstance(segmenter, TorchSegmenter) and segmenter.autocast_dtype is None
    assert segmenter.channels_last and segmenter.info == INFO


def test_a_foreign_damaged_or_missing_model_is_one_line(exported, tmp_path, capsys):
    import onnx

    proto = onnx.load(str(exported("onnx")[0]))
    del proto.metadata_props[:]
    onnx.save(proto, str(tmp_path / "plain.onnx"))
    with pytest.raises(SeglabError, match=r"plain.onnx was not exported by seglab"):
        load_segmenter(tmp_path / "plain.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"junk")
    with pytest.raises(SeglabError, match=r"cannot load ONNX model .*junk.onnx"):
        load_segmenter(tmp_path / "junk.onnx")
    (tmp_path / "junk.pte").write_bytes(b"junk" * 100)
    with pytest.raises(SeglabError, match=r"junk.pte was not exported by seglab"):
        load_segmenter(tmp_path / "junk.pte")
    with pytest.raises(SeglabError, match=r"model .*missing.onnx does not exist"):
        load_segmenter(tmp_path / "missing.onnx")
    with pytest.raises(SeglabError, match=r"runs on the CPU"):
        load_segmenter(exported("onnx")[0], "cuda")
    inputs = write_inputs(tmp_path / "in")
    for model in ("junk.pte", "plain.onnx", "missing.pte"):
        argv = ["predict", str(inputs), "--checkpoint", str(tmp_path / model)]
        assert main([*argv, "--out", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("seglab: error: ") and model in err
        assert "Traceback" not in err
