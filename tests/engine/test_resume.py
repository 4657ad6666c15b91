"""Exact resume: an interrupted run continued with --resume ends with the same weights as a run
that never stopped; a run killed mid-epoch resumes from its last complete checkpoint."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from seglab.cli import main
from seglab.engine import train as train_module
from seglab.engine.checkpoint import load_checkpoint, load_model
from tests.engine.conftest import train_args


def weights(path):
    return load_checkpoint(path)["state_dict"]


def assert_same_weights(a, b, atol=1e-6):
    assert a.keys() == b.keys()
    worst = max((a[k].double() - b[k].double()).abs().max().item() for k in a)
    assert worst <= atol, worst


def test_interrupted_then_resumed_equals_straight(tiny_data, tmp_path, monkeypatch):
    extra = ("--epochs", "2", "--loss", "ce+dice", "--class-weights", "median_frequency")
    assert main(train_args(tiny_data, tmp_path / "straight", *extra)) == 0

    real_save = train_module.save_checkpoint

    def save_then_die(path, *args, **kwargs):
        real_save(path, *args, **kwargs)
        if path.name == "last.pt" and kwargs.get("epoch") == 1:
            raise KeyboardInterrupt  # the run is stopped right after epoch 1's checkpoint

    monkeypatch.setattr(train_module, "save_checkpoint", save_then_die)
    assert main(train_args(tiny_data, tmp_path / "resumed", *extra)) == 130
    assert load_checkpoint(tmp_path / "resumed" / "last.pt")["epoch"] == 1
    monkeypatch.setattr(train_module, "save_checkpoint", real_save)

    assert (
        main(["train", "--resume", str(tmp_path / "resumed"), "--workers", "0", "--no-progress"])
        == 0
    )
    assert_same_weights(
        weights(tmp_path / "straight" / "last.pt"), weights(tmp_path / "resumed" / "last.pt")
    )
    straight = load_checkpoint(tmp_path / "straight" / "last.pt")
    resumed = load_checkpoint(tmp_path / "resumed" / "last.pt")
    assert straight["training"]["step"] == resumed["training"]["step"] == 16
    assert straight["metrics"]["miou"] == pytest.approx(resumed["metrics"]["miou"], abs=1e-6)
    rows = (tmp_path / "resumed" / "metrics.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2"]


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
    epoch = load_checkpoint(out / "last.pt")["epoch"]
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
    assert load_checkpoint(out / "last.pt")["epoch"] == epoch + 1


def test_resume_needs_a_run_folder(tmp_path, capsys):
    assert main(["train", "--resume", str(tmp_path)]) == 2
    assert "no config.yaml" in capsys.readouterr().err
