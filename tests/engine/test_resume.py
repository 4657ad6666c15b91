"""Exact resume: an interrupted run continued with --resume ends with the same weights as a run
that never stopped; a run killed mid-epoch resumes from its last complete checkpoint."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml

from seglab.cli import main
from seglab.engine import train as train_module
from seglab.engine.checkpoint import Checkpoint, load_model
from tests.engine.conftest import train_args


def weights(path):
    return Checkpoint.load(path).state_dict


def assert_same_weights(a, b, atol=1e-6):
    assert a.keys() == b.keys()
    worst = max((a[k].double() - b[k].double()).abs().max().item() for k in a)
    assert worst <= atol, worst


def stopped_after_first_epoch(monkeypatch, argv: list[str]) -> int:
    """``main(argv)`` stopped as by Ctrl-C right after epoch 1's last.pt is saved: its exit code."""
    real_save = Checkpoint.save

    def save_then_die(checkpoint, path):
        real_save(checkpoint, path)
        if path.name == "last.pt" and checkpoint.epoch == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(train_module.Checkpoint, "save", save_then_die)
    try:
        return main(argv)
    finally:
        monkeypatch.setattr(train_module.Checkpoint, "save", real_save)


def test_interrupted_then_resumed_equals_straight(tiny_data, tmp_path, monkeypatch):
    # On the CPU: CUDA kernels are not bitwise deterministic, so weights could differ there
    extra = ("--epochs", "2", "--loss", "ce+dice", "--class-weights", "median_frequency")
    extra += ("--device", "cpu")
    assert main(train_args(tiny_data, tmp_path / "straight", *extra)) == 0

    stopped = train_args(tiny_data, tmp_path / "resumed", *extra)
    assert stopped_after_first_epoch(monkeypatch, stopped) == 130
    assert Checkpoint.load(tmp_path / "resumed" / "last.pt").epoch == 1

    assert (
        main(["train", "--resume", str(tmp_path / "resumed"), "--workers", "0", "--no-progress"])
        == 0
    )
    assert_same_weights(
        weights(tmp_path / "straight" / "last.pt"), weights(tmp_path / "resumed" / "last.pt")
    )
    straight = Checkpoint.load(tmp_path / "straight" / "last.pt")
    resumed = Checkpoint.load(tmp_path / "resumed" / "last.pt")
    assert straight.training.step == resumed.training.step == 16
    assert straight.metrics["miou"] == pytest.approx(resumed.metrics["miou"], abs=1e-6)
    rows = (tmp_path / "resumed" / "metrics.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2"]


def test_a_best_pt_saved_after_last_pt_stays_the_best_on_resume(
    tiny_data, tmp_path, monkeypatch, capsys
):
    run = tmp_path / "run"
    stopped = train_args(tiny_data, run, "--epochs", "3", "--device", "cpu")
    assert stopped_after_first_epoch(monkeypatch, stopped) == 130
    # as if stopped after a better validation's best.pt but before that epoch's last.pt
    best = Checkpoint.load(run / "best.pt")
    ahead = {**best.metrics, "miou": 0.999}
    dataclasses.replace(best, metrics=ahead).save(run / "best.pt")
    assert main(["train", "--resume", str(run), "--workers", "0", "--no-progress"]) == 0
    assert Checkpoint.load(run / "best.pt").metrics["miou"] == 0.999  # no worse model over it
    assert json.loads((run / "metrics.json").read_text())["miou"] == 0.999
    assert "was saved after last.pt: it stays the best" in capsys.readouterr().out


def test_a_run_killed_mid_epoch_resumes_and_its_checkpoint_loads(tiny_data, tmp_path):
    out = tmp_path / "run"
    argv = [sys.executable, "-m", "seglab", *train_args(tiny_data, out, "--epochs", "30")]
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    deadline = time.time() + 120
    while not (out / "last.pt").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert (out / "last.pt").exists(), proc.stderr.read().decode()
    time.sleep(0.3)  # well inside a later epoch
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    epoch = Checkpoint.load(out / "last.pt").epoch
    assert 1 <= epoch < 30
    model, _ = load_model(out / "last.pt")
    assert model(torch.rand(1, 3, 64, 80)).shape == (1, 7, 64, 80)
    assert (
        main(
            [
                "train",
                "--resume",
                str(out),
                "--epochs",
                str(epoch + 1),
                "--workers",
                "0",
                "--no-progress",
            ]
        )
        == 0
    )
    assert Checkpoint.load(out / "last.pt").epoch == epoch + 1
    record = yaml.safe_load((out / "config.yaml").read_text())
    assert record["epochs"] == 30  # the original configuration is never rewritten
    assert record["extensions"][0]["changes"] == {"epochs": [30, epoch + 1]}


def test_resume_needs_a_run_folder(tmp_path, capsys):
    assert main(["train", "--resume", str(tmp_path)]) == 2
    assert "no config.yaml" in capsys.readouterr().err


@pytest.fixture
def finished_run(tiny_data, tmp_path):
    out = tmp_path / "run"
    assert main(train_args(tiny_data, out, "--epochs", "2")) == 0
    return out


@pytest.mark.parametrize(
    ("flags", "refused"),
    [
        (["--lr", "0.01"], "--lr"),
        (["--crop-size", "32x32", "--batch-size", "2"], "--crop-size, --batch-size"),
        (["--encoder", "vgg19"], "--encoder"),
    ],
)
def test_resume_refuses_changes_to_the_run_and_writes_nothing(finished_run, capsys, flags, refused):
    before = {p.name: p.read_bytes() for p in finished_run.iterdir() if p.is_file()}
    capsys.readouterr()
    argv = ["train", "--resume", str(finished_run), "--epochs", "3", "--workers", "0", *flags]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert f"cannot change {refused} when resuming" in err and len(err.splitlines()) == 1
    assert {p.name: p.read_bytes() for p in finished_run.iterdir() if p.is_file()} == before


def test_a_complete_run_is_not_resumed_but_can_be_extended(finished_run, capsys):
    assert main(["train", "--resume", str(finished_run), "--workers", "0"]) == 2
    assert "is complete (16 steps" in capsys.readouterr().err
    argv = ["train", "--resume", str(finished_run), "--epochs", "3", "--workers", "0"]
    assert main([*argv, "--no-progress"]) == 0
    record = yaml.safe_load((finished_run / "config.yaml").read_text())
    assert record["epochs"] == 2
    assert record["extensions"][0]["changes"] == {"epochs": [2, 3]}
    assert record["extensions"][0]["at_step"] == 16
    last = Checkpoint.load(finished_run / "last.pt")
    assert last.config.epochs == 3 and last.training.step == 24
    rows = (finished_run / "metrics.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2", "3"]


def test_a_weight_average_is_validated_saved_and_resumed_exactly(tiny_data, tmp_path, monkeypatch):
    extra = ("--epochs", "2", "--ema", "0.9", "--device", "cpu")
    assert main(train_args(tiny_data, tmp_path / "straight", *extra)) == 0
    last = Checkpoint.load(tmp_path / "straight" / "last.pt")
    assert last.training.ema_updates == 16 and last.training.trained_weights
    trained, average = last.training.trained_weights, last.state_dict
    assert any(not torch.equal(trained[k], average[k]) for k in average if "weight" in k)
    # the metrics stored with the average are the average's: evaluate reproduces them
    best = tmp_path / "straight" / "best.pt"
    assert main(["evaluate", "--checkpoint", str(best), "--workers", "0"]) == 0
    stored = Checkpoint.load(best).metrics["miou"]
    assert (tmp_path / "straight" / "best_val_metrics.json").read_text().count(str(stored)) >= 1

    stopped = train_args(tiny_data, tmp_path / "resumed", *extra)
    assert stopped_after_first_epoch(monkeypatch, stopped) == 130
    argv = ["train", "--resume", str(tmp_path / "resumed"), "--workers", "0", "--no-progress"]
    assert main(argv) == 0
    resumed = Checkpoint.load(tmp_path / "resumed" / "last.pt")
    assert_same_weights(last.state_dict, resumed.state_dict)
    assert_same_weights(last.training.trained_weights, resumed.training.trained_weights)


def test_a_run_killed_before_its_first_validation_resumes_with_a_header(tmp_path):
    from types import SimpleNamespace

    from seglab.engine.train import RunLog, read_curve

    (tmp_path / "fresh").mkdir()
    fresh = RunLog(tmp_path / "fresh", None, print)
    assert (tmp_path / "fresh" / "metrics.csv").read_text().startswith("epoch,step")  # flushed
    fresh.close()
    (tmp_path / "metrics.csv").write_text("")  # killed before anything reached the disk
    log = RunLog(tmp_path, resumed_at=48, say=print)
    metrics = {"miou": 0.5, "pixel_accuracy": 0.9}
    log.validation(SimpleNamespace(epoch=9, step=54), 1.0, metrics, 1e-3, 10.0)
    log.close()
    assert read_curve(tmp_path / "metrics.csv") == [(54, 0.5)]
