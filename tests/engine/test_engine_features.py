"""Transfer-learning phase, divergence, time budget, evaluation command, precision choice."""

import json
import time
from types import SimpleNamespace

import pytest
import torch
from PIL import Image

from seglab.cli import main
from seglab.engine import performance
from seglab.engine import train as train_module
from seglab.engine.checkpoint import Checkpoint
from seglab.errors import SeglabError
from tests.engine.conftest import train_args


def encoder_of(state):
    return {k: v for k, v in state.items() if k.startswith("encoder.")}


def test_frozen_encoder_phase_then_training_the_encoder(tiny_data, tmp_path, monkeypatch):
    saved = {}
    real_save = Checkpoint.save

    def keep(checkpoint, path):
        real_save(checkpoint, path)
        if path.name == "last.pt":
            saved[checkpoint.epoch] = {
                k: v.to("cpu", copy=True) for k, v in checkpoint.state_dict.items()
            }

    monkeypatch.setattr(train_module.Checkpoint, "save", keep)
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
    assert f"the last good checkpoint is {tmp_path / 'run' / 'last.pt'}" in err
    checkpoint = Checkpoint.load(tmp_path / "run" / "last.pt")
    assert checkpoint.epoch == 1
    assert all(
        torch.isfinite(v).all() for v in checkpoint.state_dict.values() if v.is_floating_point()
    )


def test_divergence_before_any_checkpoint_says_none_was_written(
    tiny_data, tmp_path, monkeypatch, capsys
):
    real_build_loss = train_module.build_loss
    monkeypatch.setattr(
        train_module,
        "build_loss",
        lambda *a, **k: lambda logits, target: real_build_loss(*a, **k)(logits, target) * 0 / 0,
    )
    assert main(train_args(tiny_data, tmp_path / "run", "--epochs", "3")) == 2
    err = capsys.readouterr().err
    assert "loss is nan at epoch 1, step 1; no checkpoint was written yet" in err
    assert not (tmp_path / "run" / "last.pt").exists()


def test_a_time_budget_covers_validation_and_says_what_ran(tiny_data, tmp_path, capsys):
    budget = 4.0
    argv = train_args(tiny_data, tmp_path / "run", "--epochs", "50", "--time-budget", "4s")
    assert main(argv) == 0
    checkpoint = Checkpoint.load(tmp_path / "run" / "last.pt")
    assert checkpoint.epoch < 50
    assert checkpoint.metrics["miou"] >= 0
    assert checkpoint.config.time_budget == budget
    # Validation and saving are inside the budget (a run always takes its first step, which
    # on a busy machine may itself outlast a 4 s budget)
    assert checkpoint.training.step == 1 or checkpoint.training.elapsed <= budget + 1.0
    out = capsys.readouterr().out
    steps, epochs = checkpoint.training.step, checkpoint.training.epoch
    assert f"ran {steps} of 400 planned steps ({epochs} of 50 epochs)" in out


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_evaluate_reproduces_the_stored_metrics(tiny_data, tmp_path, capsys, precision):
    """Whatever precision trained the model (bf16 forced here, emulated on CPUs without it),
    the metrics stored in the checkpoint are the ones `seglab evaluate` reproduces."""
    argv = train_args(tiny_data, tmp_path / "run", "--epochs", "1", "--precision", precision)
    assert main(argv) == 0
    assert f"precision {precision}" in capsys.readouterr().out
    ckpt = tmp_path / "run" / "best.pt"
    assert main(["evaluate", "--checkpoint", str(ckpt), "--workers", "0"]) == 0
    metrics = json.loads((tmp_path / "run" / "best_val_metrics.json").read_text())
    assert metrics["miou"] == Checkpoint.load(ckpt).metrics["miou"]
    assert metrics["per_class"] == Checkpoint.load(ckpt).metrics["per_class"]


def test_evaluate_prints_a_table_and_writes_json(tiny_data, tmp_path, capsys):
    assert main(train_args(tiny_data, tmp_path / "run", "--epochs", "1")) == 0
    capsys.readouterr()
    ckpt = tmp_path / "run" / "best.pt"
    assert main(["evaluate", "--checkpoint", str(ckpt), "--workers", "0"]) == 0
    out = capsys.readouterr().out
    assert "class" in out and "sky" in out and "mIoU" in out
    # 8 steps: how training ended travels with the model, and evaluate says it
    assert "\nwarning: undertrained: ran 8 steps, fewer than the 300 its data needs" in out
    metrics = json.loads((tmp_path / "run" / "best_val_metrics.json").read_text())
    assert metrics["miou"] == pytest.approx(Checkpoint.load(ckpt).metrics["miou"], abs=1e-6)
    assert metrics["evaluation"]["split"] == "val"
    assert (
        len(metrics["confusion"]) == 7 and sum(map(sum, metrics["confusion"])) == metrics["pixels"]
    )
    figure = Image.open(tmp_path / "run" / "best_val_confusion.png")
    assert figure.format == "PNG" and min(figure.size) > 300

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
    assert (tmp_path / "tta_confusion.png").is_file()  # beside --out, named after it
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


def test_the_clock_keeps_back_time_for_the_last_validation_and_save(monkeypatch):
    now = {"t": 100.0}
    monkeypatch.setattr(train_module.time, "perf_counter", lambda: now["t"])
    clock = train_module.Clock(start=100.0, budget=60.0)
    now["t"] = 140.0
    assert not clock.time_up(reserve=19.0)  # 40 s used, 19 s to keep back: one more step
    assert clock.time_up(reserve=20.0)  # 40 + 20 = the whole budget: stop now
    assert clock.progress(step=10, total_steps=1000) == pytest.approx(40 / 60)
    assert not train_module.Clock(start=100.0, budget=None).time_up(reserve=1e9)


def test_the_schedule_is_fitted_to_the_budget_less_what_it_keeps_back(monkeypatch):
    now = {"t": 140.0}
    monkeypatch.setattr(train_module.time, "perf_counter", lambda: now["t"])
    clock = train_module.Clock(start=100.0, budget=60.0)
    # 40 s used, 20 s kept for the last validation: training time is over, the decay complete
    assert clock.progress(step=10, total_steps=1000, reserve=20.0) == pytest.approx(1.0)
    assert clock.progress(step=10, total_steps=1000, reserve=0.0) == pytest.approx(40 / 60)
    assert clock.progress(step=900, total_steps=1000, reserve=20.0) >= 1.0


class SlowFirstCall(torch.nn.Module):
    """A model whose first forward pays a one-off cost, as cuDNN's algorithm search does."""

    def __init__(self):
        super().__init__()
        self.conv, self.calls = torch.nn.Conv2d(3, 2, 1), 0

    def forward(self, x):
        self.calls += 1
        if self.calls == 1:
            time.sleep(0.5)
        return self.conv(x)


def test_the_validation_estimate_leaves_out_the_first_pass_costs():
    batch = (torch.zeros(2, 3, 8, 8), torch.zeros(2, 8, 8, dtype=torch.long))
    session = SimpleNamespace(
        config=SimpleNamespace(time_budget=60.0),
        val_loader=[batch] * 1000,
        model=SlowFirstCall(),
        device=torch.device("cpu"),
    )
    reserve = train_module.estimate_validation_seconds(session)
    assert session.model.calls == 2  # one warm-up pass, one timed
    # At the first pass's speed the 1000 batches would keep back 500 s; a warm pass of this tiny
    # model takes well under a millisecond, and 100 s leaves room for a machine under heavy load.
    assert 0 < reserve < 100
    session.config.time_budget = None
    assert train_module.estimate_validation_seconds(session) == 0.0
