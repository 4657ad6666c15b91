"""Transfer-learning phase, divergence, time budget, evaluation command, precision choice."""

import json

import pytest
import torch

from seglab.cli import main
from seglab.engine import performance
from seglab.engine import train as train_module
from seglab.engine.checkpoint import load_checkpoint
from seglab.errors import SeglabError
from tests.engine.conftest import train_args


def encoder_of(state):
    return {k: v for k, v in state.items() if k.startswith("encoder.")}


def test_frozen_encoder_phase_then_training_the_encoder(tiny_data, tmp_path, monkeypatch):
    saved = {}
    real_save = train_module.save_checkpoint

    def keep(path, model, *args, **kwargs):
        real_save(path, model, *args, **kwargs)
        if path.name == "last.pt":
            saved[kwargs["epoch"]] = {k: v.clone() for k, v in model.state_dict().items()}

    monkeypatch.setattr(train_module, "save_checkpoint", keep)
    torch.manual_seed(0)
    from seglab.models import build_model

    initial = build_model("mobilenet_v2", 7, encoder_weights=None).state_dict()
    argv = train_args(tiny_data, tmp_path / "run", "--epochs", "2", "--freeze-encoder-epochs", "1")
    assert main(argv) == 0
    for key, value in encoder_of(initial).items():
        assert torch.equal(saved[1][key], value), f"{key} changed while frozen"
    assert any(
        not torch.equal(saved[1][k], v) for k, v in initial.items() if k.startswith("decoder.")
    )
    assert any(not torch.equal(saved[2][k], v) for k, v in encoder_of(initial).items())


def test_a_diverging_run_stops_clearly_and_keeps_the_last_good_checkpoint(
    tiny_data, tmp_path, monkeypatch, capsys
):
    real_build_loss = train_module.build_loss
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        loss = real_build_loss(*args, **kwargs)

        def wrapped(logits, target):
            calls["n"] += 1
            value = loss(logits, target)
            return value * float("nan") if calls["n"] > 10 else value  # NaN in epoch 2

        return wrapped

    monkeypatch.setattr(train_module, "build_loss", poisoned)
    assert main(train_args(tiny_data, tmp_path / "run", "--epochs", "3")) == 2
    err = capsys.readouterr().err
    assert "training diverged: loss is nan at epoch 2" in err and "Traceback" not in err
    checkpoint = load_checkpoint(tmp_path / "run" / "last.pt")
    assert checkpoint["epoch"] == 1
    assert all(
        torch.isfinite(v).all() for v in checkpoint["state_dict"].values() if v.is_floating_point()
    )


def test_a_time_budget_stops_training_and_still_validates(tiny_data, tmp_path):
    assert (
        main(train_args(tiny_data, tmp_path / "run", "--epochs", "50", "--time-budget", "2s")) == 0
    )
    checkpoint = load_checkpoint(tmp_path / "run" / "last.pt")
    assert checkpoint["epoch"] < 50
    assert checkpoint["metrics"]["miou"] >= 0
    assert checkpoint["config"]["time_budget"] == 2.0


def test_evaluate_prints_a_table_and_writes_json(tiny_data, tmp_path, capsys):
    assert main(train_args(tiny_data, tmp_path / "run", "--epochs", "1")) == 0
    capsys.readouterr()
    ckpt = tmp_path / "run" / "best.pt"
    assert main(["evaluate", "--checkpoint", str(ckpt), "--workers", "0"]) == 0
    out = capsys.readouterr().out
    assert "class" in out and "sky" in out and "mIoU" in out
    metrics = json.loads((tmp_path / "run" / "best_val_metrics.json").read_text())
    assert metrics["miou"] == pytest.approx(load_checkpoint(ckpt)["metrics"]["miou"], abs=1e-6)
    assert metrics["evaluation"]["split"] == "val"

    out_json = tmp_path / "tta.json"
    argv = [
        "evaluate",
        "--checkpoint",
        str(ckpt),
        "--flip",
        "--scales",
        "0.75,1",
        "--window",
        "48x48",
        "--workers",
        "0",
        "--out",
        str(out_json),
    ]
    assert main(argv) == 0
    tta = json.loads(out_json.read_text())
    assert tta["evaluation"]["flip"] is True and tta["evaluation"]["scales"] == [0.75, 1.0]
    assert tta["pixels"] == metrics["pixels"]


def test_evaluate_refuses_data_with_other_classes(tiny_data, tmp_path, capsys):
    from tests.data.helpers import make_camvid

    assert main(train_args(tiny_data, tmp_path / "run", "--epochs", "1")) == 0
    make_camvid(tmp_path / "cv")
    argv = [
        "evaluate",
        "--checkpoint",
        str(tmp_path / "run" / "best.pt"),
        "--data",
        str(tmp_path / "cv"),
    ]
    assert main(argv) == 2
    assert "was trained on 7 classes" in capsys.readouterr().err


def test_precision_is_chosen_for_the_machine(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(performance, "cpu_has_native_bf16", lambda: False)
    assert performance.choose_precision(cpu).name == "fp32"
    monkeypatch.setattr(performance, "cpu_has_native_bf16", lambda: True)
    assert performance.choose_precision(cpu).autocast_dtype == torch.bfloat16
    assert performance.choose_precision(cpu, "fp32").name == "fp32"
    with pytest.raises(SeglabError, match="fp16 mixed precision needs a CUDA device"):
        performance.choose_precision(cpu, "fp16")
