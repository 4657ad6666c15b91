"""seglab verify: an exported model re-measured and held to its card; a changed model, or one
whose accuracy drifts from its card, fails with exit status 1."""

import shutil
from dataclasses import replace

import numpy as np
import pytest

from seglab.cli import main
from seglab.deployment.artifacts import read_card, write_card
from seglab.deployment.formats.executorch_xnnpack import CARD_CAPACITY, CARD_PREFIX
from seglab.deployment.verify import verify_artifact
from seglab.errors import SeglabError


def copy_of(exported, format, folder):
    path = exported(format)[0]
    return shutil.copy(path, folder / path.name)


def test_a_fresh_artifact_verifies(exported, capsys):
    path = exported("onnx-int8")[0]
    assert main(["verify", str(path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    rows = {line.split("  ")[0]: line for line in out.splitlines()}
    assert rows["model content sha256"].split()[-1] == "ok"
    assert rows["mIoU (onnx-int8)"].split()[-1] == "ok"
    assert "x the card's" in rows["latency ms, batch 1 at 64x80"]
    assert out.strip().endswith(f"{path}: verified against its card")


def test_a_changed_onnx_weight_fails(exported, tmp_path, capsys):
    import onnx
    from onnx import numpy_helper

    path = copy_of(exported, "onnx", tmp_path)
    proto = onnx.load(str(path))
    weight = next(w for w in proto.graph.initializer if numpy_helper.to_array(w).size > 100)
    array = numpy_helper.to_array(weight).copy()
    array.flat[0] += 0.5
    weight.CopyFrom(numpy_helper.from_array(array, weight.name))
    onnx.save(proto, str(path))
    assert main(["verify", str(path), "--no-progress"]) == 1
    captured = capsys.readouterr()
    assert "the file was changed after export" in captured.err
    assert "CHANGED" in captured.out and f"{path}: FAILED" in captured.out


def test_a_changed_pte_byte_fails(exported, tmp_path):
    path = copy_of(exported, "executorch", tmp_path)
    blob = bytearray(path.read_bytes())
    card_at, middle = blob.find(CARD_PREFIX), len(blob) // 2
    assert not card_at <= middle < card_at + CARD_CAPACITY
    blob[middle] ^= 0x01  # one bit of the weights, outside the card
    path.write_bytes(blob)
    result = verify_artifact(path, report=lambda line: None, progress=False)
    assert not result.passed and "changed after export" in result.failures[0]


def test_a_changed_model_that_no_longer_loads_fails_without_a_traceback(exported, tmp_path, capsys):
    path = copy_of(exported, "executorch", tmp_path)
    blob = bytearray(path.read_bytes())
    blob[8:64] = bytes(56)  # the program's header and root table
    path.write_bytes(blob)
    assert main(["verify", str(path), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "changed after export" in err and "cannot be loaded" in err and "Traceback" not in err


def test_an_miou_that_drifts_from_the_card_fails(exported, tmp_path):
    path = copy_of(exported, "onnx", tmp_path)
    card = read_card(path)
    card.measured.miou += 0.01  # the card says one point more than the model gives
    write_card(path, card)
    result = verify_artifact(path, report=lambda line: None, progress=False)
    assert [f for f in result.failures if "drifted 1.00 points" in f]
    assert len(result.failures) == 1  # its content is still the one the card describes


def test_parity_beyond_tolerance_fails(exported, tmp_path):
    path = copy_of(exported, "onnx", tmp_path)
    card = read_card(path)
    write_card(path, replace(card, tolerances=replace(card.tolerances, max_logit_diff=1e-12)))
    result = verify_artifact(path, report=lambda line: None, progress=False)
    assert len(result.failures) == 1 and "largest logit difference" in result.failures[0]


def test_without_its_checkpoint_the_cards_parity_stands(exported, tmp_path):
    path = copy_of(exported, "onnx", tmp_path)
    card = read_card(path)
    elsewhere = {**card.source, "checkpoint": "gone/best.pt", "path": "/nowhere/best.pt"}
    write_card(path, replace(card, source=elsewhere))
    lines = []
    result = verify_artifact(path, report=lines.append, progress=False)
    assert result.passed and result.now.miou_pytorch is None
    assert (
        "gone/best.pt is not here: parity against PyTorch cannot be re-checked" in (result.notes[0])
    )
    rows = {row[0]: row for row in result.table()[1]}
    assert rows["pixels changing class (%)"][2:] == ("-", "<= 0.1", "not re-checked")
    assert rows["mIoU (onnx)"][-1] == "ok"


def test_other_data_is_measured_but_drift_is_not_judged(exported, tiny_runs):
    result = verify_artifact(
        exported("onnx")[0],
        data=str(tiny_runs["data"]),
        limit=3,
        report=lambda line: None,
        progress=False,
    )
    assert result.passed and not result.same_images and result.now.images == 3
    assert np.isclose(result.now.miou_drop_points, 0, atol=0.05)


def test_a_file_without_a_card_cannot_be_verified(tiny_runs, tmp_path, capsys):
    from seglab.deployment.artifacts import write_artifact
    from seglab.deployment.formats import ArtifactInputs
    from seglab.engine.checkpoint import load_model

    model, checkpoint = load_model(tiny_runs["mobilenet_v2"] / "best.pt")
    write_artifact(model, checkpoint.dataset, "onnx", tmp_path / "bare.onnx", ArtifactInputs())
    with pytest.raises(SeglabError, match=r"bare.onnx carries no deployment card"):
        verify_artifact(tmp_path / "bare.onnx")
    assert main(["verify", str(tmp_path / "missing.onnx")]) == 2
    assert capsys.readouterr().err.strip().endswith("missing.onnx does not exist")
