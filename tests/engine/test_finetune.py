"""Fine-tuning from an earlier seglab model: --weights RUN_FOLDER or CHECKPOINT starts the encoder
and decoder from it; other classes re-initialise the classifier alone, said and recorded."""

from pathlib import Path

import pytest
import torch
import yaml

from seglab.cli import main
from seglab.config import TrainConfig
from seglab.data.info import DatasetInfo
from seglab.data.synthetic import INFO
from seglab.engine import train as train_module
from seglab.engine.checkpoint import Checkpoint, file_sha256
from seglab.models import build_model
from tests.engine.conftest import train_args

CLASSIFIER = ("classifier.weight", "classifier.bias")


@pytest.fixture
def tiny(tmp_path: Path) -> str:
    """The smallest synthetic dataset a run trains on: two steps of 4 images of 32x32."""
    path = tmp_path / "tiny.yaml"
    path.write_text("layout: synthetic\nsize: [32, 32]\ntrain: 8\nval: 4\n")
    return str(path)


@pytest.fixture
def started(monkeypatch) -> dict[str, torch.Tensor]:
    """Filled with the run's model weights as set-up leaves them, before the first step."""
    seen: dict[str, torch.Tensor] = {}
    real = train_module.prepare

    def spy(*args, **kwargs):
        session = real(*args, **kwargs)
        seen.update({k: v.detach().cpu().clone() for k, v in session.model.state_dict().items()})
        return session

    monkeypatch.setattr(train_module, "prepare", spy)
    return seen


def earlier_model(folder: Path, classes: int = 7, **spec) -> Path:
    """best.pt of an 'earlier run': a mobilenet_v2 U-Net whose weights (BatchNorm statistics
    included) differ from any fresh initialisation."""
    torch.manual_seed(123)
    model = build_model("mobilenet_v2", classes, encoder_weights=None, **spec)
    state = {  # the input normalisation stays the encoder's
        k: v.mul(1.5).add(0.01) if v.is_floating_point() and k not in ("mean", "std") else v
        for k, v in model.state_dict().items()
    }
    info = INFO
    if classes != INFO.num_classes:
        names = tuple(f"class{i}" for i in range(classes))
        info = DatasetInfo("earlier", names, tuple((i, i, i) for i in range(classes)))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "best.pt"
    Checkpoint(model.spec, state, info, TrainConfig(), {}, epoch=1, step=5).save(path)
    return path


def run(data: str, out: Path, *extra: str) -> int:
    return main(train_args(data, out, "--iterations", "1", *extra))


def record(out: Path) -> dict:
    return yaml.safe_load((out / "config.yaml").read_text())


def test_a_run_starts_from_the_checkpoints_encoder_and_decoder(tiny, tmp_path, started, capsys):
    source = earlier_model(tmp_path / "a")
    out = tmp_path / "b"
    assert run(tiny, out, "--weights", str(source)) == 0
    saved = Checkpoint.load(source).state_dict
    assert started.keys() == saved.keys()
    assert [k for k in saved if not torch.equal(started[k], saved[k])] == []
    stdout = capsys.readouterr().out
    assert "classifier re-initialised" not in stdout
    banner = next(line for line in stdout.splitlines() if line.startswith("training "))
    assert f"U-Net (from seglab checkpoint {source.resolve()}, step 5) on " in banner
    resolved = record(out)["resolved"]
    assert record(out)["weights"] == str(source.resolve())
    assert resolved["weights"] == str(source.resolve())
    assert resolved["weights_requested"] == str(source)
    assert resolved["weights_sha256"] == file_sha256(source)
    assert resolved["weights_step"] == 5 and resolved["weights_encoder"] == "mobilenet_v2"
    assert resolved["classifier_reinitialised"] is False
    assert Checkpoint.load(out / "best.pt").resolved["weights"] == str(source.resolve())


def test_other_classes_reinitialise_the_classifier_alone_and_say_so(
    tiny, tmp_path, started, capsys
):
    source = earlier_model(tmp_path / "a", classes=11)
    out = tmp_path / "b"
    assert run(tiny, out, "--weights", str(source)) == 0
    saved = Checkpoint.load(source).state_dict
    kept = [k for k in saved if k not in CLASSIFIER]
    assert [k for k in kept if not torch.equal(started[k], saved[k])] == []
    assert started["classifier.weight"].shape[0] == 7 and saved["classifier.weight"].shape[0] == 11
    said = [line for line in capsys.readouterr().out.splitlines() if "classifier" in line]
    assert said[0] == f"classifier re-initialised: {source.resolve()} has 11 classes, this data 7"
    assert len([line for line in said if line.startswith("classifier re-initialised")]) == 1
    resolved = record(out)["resolved"]
    assert resolved["classifier_reinitialised"] is True
    assert resolved["weights_classes"] == [f"class{i}" for i in range(11)]
    assert "classifier re-initialised (11 -> 7 classes)" in resolved["weights_source"]


def test_a_run_folder_works_as_its_best_pt(tiny, tmp_path, started):
    """A real earlier run, given by its folder."""
    earlier = tmp_path / "a"
    assert run(tiny, earlier) == 0
    started.clear()
    out = tmp_path / "b"
    assert run(tiny, out, "--weights", str(earlier)) == 0
    best = Checkpoint.load(earlier / "best.pt").state_dict
    assert [k for k in best if not torch.equal(started[k], best[k])] == []
    resolved = record(out)["resolved"]
    assert resolved["weights"] == str((earlier / "best.pt").resolve())
    assert resolved["weights_requested"] == str(earlier)
    assert resolved["weights_sha256"] == file_sha256(earlier / "best.pt")


def test_another_encoder_is_one_line_and_writes_nothing(tiny, tmp_path, capsys):
    source = earlier_model(tmp_path / "a")
    out = tmp_path / "b"
    assert run(tiny, out, "--weights", str(source), "--encoder", "resnet34") == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"seglab: error: weights: {source.resolve()} holds a mobilenet_v2 U-Net, but this run's "
        "encoder is resnet34; fine-tuning needs the same encoder (--encoder mobilenet_v2)"
    ]
    assert not out.exists()


def test_another_architecture_option_is_named_and_writes_nothing(tiny, tmp_path, capsys):
    source = earlier_model(tmp_path / "a")
    out = tmp_path / "b"
    assert run(tiny, out, "--weights", str(source), "--full-res-skip", "8") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "has full_res_skip 0, this run 8" in err and "(--full-res-skip 0)" in err
    assert not out.exists()


def test_a_folder_without_best_pt_is_refused(tiny, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert run(tiny, tmp_path / "b", "--weights", str(tmp_path / "empty")) == 2
    assert "is a folder without best.pt" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def test_the_recipe_keeps_the_checkpoints_full_res_skip(tiny, tmp_path, started, capsys):
    source = earlier_model(tmp_path / "a", full_res_skip=8)
    out = tmp_path / "b"
    assert run(tiny, out, "--weights", str(source), "--auto", "full_res_skip") == 0
    assert f"full-res-skip 8: kept from {source.resolve()}" in capsys.readouterr().out
    assert record(out)["full_res_skip"] == 8 and "full_res_skip" not in record(out)["auto"]
    saved = Checkpoint.load(source).state_dict
    assert [k for k in saved if not torch.equal(started[k], saved[k])] == []


def test_a_frozen_encoder_and_its_own_rate_apply_to_fine_tuned_weights(tiny, tmp_path):
    source = earlier_model(tmp_path / "a")
    out = tmp_path / "b"
    argv = ["--weights", str(source), "--freeze-encoder-epochs", "1", "--encoder-lr", "1e-5"]
    assert run(tiny, out, *argv) == 0
    saved, last = Checkpoint.load(source), Checkpoint.load(out / "last.pt")
    encoder = [k for k in saved.state_dict if k.startswith("encoder.")]
    assert [k for k in encoder if not torch.equal(last.state_dict[k], saved.state_dict[k])] == []
    assert any(
        not torch.equal(last.state_dict[k], v)
        for k, v in saved.state_dict.items()
        if k.startswith("decoder.")
    )
    rates = {g["name"]: g["base_lr"] for g in last.training.optimizer["param_groups"]}
    assert rates == {"encoder": 1e-5, "decoder": 1e-3}


def test_a_plain_encoder_state_dict_is_still_encoder_weights(tiny, tmp_path, started):
    torch.manual_seed(7)
    encoder = build_model("mobilenet_v2", 7, encoder_weights=None).encoder.state_dict()
    path = tmp_path / "encoder.pth"
    torch.save(encoder, path)
    out = tmp_path / "b"
    assert run(tiny, out, "--weights", str(path)) == 0
    assert all(torch.equal(started[f"encoder.{k}"], v) for k, v in encoder.items())
    resolved = record(out)["resolved"]
    assert resolved["weights_source"] == f"weights from {path}"
    assert "classifier_reinitialised" not in resolved
