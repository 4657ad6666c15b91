"""Fault injection: a full disk, a kill -9 inside a save, a data file that breaks after the data
check, a missing or foreign last.pt, and data that moved or changed. Each ends with one clear
line, nothing of the run lost, no stray files, and a run that resumes. Runs are tiny: 4 training
images of 32x32 in one batch, so an epoch is one step."""

import errno
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import yaml

from seglab import outputs
from seglab.cli import main
from seglab.engine import train as train_module
from seglab.engine.checkpoint import Checkpoint
from seglab.engine.run_folder import LOCK_NAME
from seglab.errors import SeglabError
from seglab.outputs import WriteError
from tests.data.helpers import make_pairs
from tests.engine.conftest import train_args

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "checkpoints"
SMALL = "layout: synthetic\nsize: [32, 32]\ntrain: 4\nval: 2\n"


@pytest.fixture
def small(tmp_path) -> str:
    path = tmp_path / "small.yaml"
    path.write_text(SMALL)
    return str(path)


def resume(out, *extra) -> int:
    return main(["train", "--resume", str(out), "--workers", "0", "--no-progress", *extra])


def logged_epochs(out) -> list[str]:
    return [r.split(",")[0] for r in (out / "metrics.csv").read_text().splitlines()[1:]]


def temporaries(out) -> list[str]:
    return sorted(p.name for p in out.iterdir() if p.name.endswith(".tmp"))


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_a_full_disk_at_a_save_is_one_line_keeps_last_pt_and_the_run_resumes(
    small, tmp_path, monkeypatch, capsys
):
    out, real = tmp_path / "run", torch.save

    def full_at_epoch_2(obj, f, *args, **kwargs):
        if obj["epoch"] == 2 and ".last.pt." in f.name:
            f.write(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        real(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full_at_epoch_2)
    assert main(train_args(small, out, "--epochs", "2")) == 2
    err = one_error_line(capsys)
    assert f"cannot write {out / 'last.pt'}: the disk is full" in err
    assert "the previous last.pt is kept" in err and f"seglab train --resume {out}" in err
    assert temporaries(out) == []
    assert Checkpoint.load(out / "last.pt").training.step == 1  # epoch 1's, intact

    monkeypatch.setattr(torch, "save", real)
    assert resume(out) == 0
    assert Checkpoint.load(out / "last.pt").training.step == 2
    assert logged_epochs(out) == ["1", "2"]  # epoch 2's row was written again, once


def test_too_little_free_space_is_said_before_writing_and_the_run_resumes(
    small, tmp_path, monkeypatch, capsys
):
    out, free, real_usage, real_save = tmp_path / "run", [None], shutil.disk_usage, torch.save
    saves = []

    def usage(path):
        found = real_usage(path)
        return found if free[0] is None else found._replace(free=free[0])

    def save(obj, f, *args, **kwargs):
        saves.append(obj["epoch"])
        real_save(obj, f, *args, **kwargs)
        if obj["epoch"] == 1 and ".last.pt." in f.name:
            free[0] = 5_000_000  # the disk fills up during epoch 2

    monkeypatch.setattr(outputs.shutil, "disk_usage", usage)
    monkeypatch.setattr(torch, "save", save)
    assert main(train_args(small, out, "--epochs", "2")) == 2
    err = one_error_line(capsys)
    assert "5.0 MB free on its disk, it needs about " in err and "free some space" in err
    assert saves[-1] == 1  # nothing was written once the space was short
    assert temporaries(out) == []

    free[0] = None
    assert resume(out) == 0
    assert Checkpoint.load(out / "last.pt").training.step == 2
    assert logged_epochs(out) == ["1", "2"]


def test_torchs_own_write_failure_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    out = tmp_path / "run"
    out.mkdir()
    shutil.copy(FIXTURES / "current.pt", out / "last.pt")
    before = (out / "last.pt").read_bytes()

    def fails(obj, f, *args, **kwargs):
        f.write(b"partial")
        raise RuntimeError(
            "[enforce fail at inline_container.cc:672] . PytorchStreamWriter failed writing "
            "file data/0: file write failed"
        )

    monkeypatch.setattr(torch, "save", fails)
    with pytest.raises(WriteError, match=r"cannot write .*last\.pt: .*previous last\.pt is kept"):
        Checkpoint.load(out / "last.pt").save(out / "last.pt")
    assert (out / "last.pt").read_bytes() == before and temporaries(out) == []


KILLED_SAVE = """
import os, signal, sys
import torch

real = torch.save

def save(obj, f, *args, **kwargs):
    if obj["epoch"] == 2 and ".last.pt." in f.name:
        f.write(b"x" * 100_000)  # part of the checkpoint, as a kill leaves it
        f.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    real(obj, f, *args, **kwargs)

torch.save = save
from seglab.cli import main
main(sys.argv[1:])
"""


def test_a_kill_during_a_save_loses_nothing_and_resume_cleans_up(small, tmp_path, capsys):
    out = tmp_path / "run"
    argv = [sys.executable, "-c", textwrap.dedent(KILLED_SAVE), *train_args(small, out)]
    killed = subprocess.run(
        [*argv, "--epochs", "2"],
        capture_output=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        timeout=300,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()
    [left] = temporaries(out)
    assert left.startswith(".last.pt.")
    assert Checkpoint.load(out / "last.pt").training.step == 1  # the complete one before
    assert logged_epochs(out) == ["1", "2"]  # epoch 2's row came before its last.pt

    assert resume(out) == 0
    said = capsys.readouterr().out
    assert f"removed 1 temporary file(s) of interrupted saves from {out} (100 KB): {left}" in said
    assert "metrics.csv: dropped 1 row(s) written after step 1" in said
    assert temporaries(out) == []
    assert Checkpoint.load(out / "last.pt").training.step == 2
    assert logged_epochs(out) == ["1", "2"]


def break_keeping_size_and_time(path) -> None:
    """``path``'s second half zeroed, its size and times kept: the data check's cache is not
    asked again, so only reading it finds the damage."""
    st, data = os.stat(path), path.read_bytes()
    path.write_bytes(data[: len(data) // 2] + bytes(len(data) - len(data) // 2))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_a_file_that_breaks_during_training_stops_cleanly_and_the_run_resumes(
    tmp_path, monkeypatch, capsys
):
    data = make_pairs(tmp_path / "data", {"train": 4, "val": 2}, size=(32, 32))
    bad = data / "images" / "train" / "img002.png"
    good, out, real_save = bad.read_bytes(), tmp_path / "run", Checkpoint.save

    def save(checkpoint, path):
        real_save(checkpoint, path)
        if path.name == "last.pt" and checkpoint.epoch == 1:
            break_keeping_size_and_time(bad)  # checked clean at the start, broken since

    monkeypatch.setattr(train_module.Checkpoint, "save", save)
    assert main(train_args(str(data), out, "--epochs", "3")) == 2
    err = one_error_line(capsys)
    assert err.startswith(f"seglab: error: train image {bad} cannot be read: ")
    assert f"training stopped cleanly and saved {out / 'last.pt'} at step 1" in err
    assert err.endswith(f"continue with: seglab train --resume {out}")
    assert Checkpoint.load(out / "last.pt").training.step == 1

    bad.write_bytes(good)
    monkeypatch.setattr(train_module.Checkpoint, "save", real_save)
    assert resume(out) == 0
    assert Checkpoint.load(out / "last.pt").training.step == 3
    assert logged_epochs(out) == ["1", "2", "3"]


def test_resume_and_out_problems_are_said_before_any_model_or_data(
    small, tmp_path, monkeypatch, capsys
):
    out = tmp_path / "run"
    assert main(train_args(small, out, "--epochs", "1")) == 0
    last = (out / "last.pt").read_bytes()
    (out / "last.pt").unlink()
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.name != LOCK_NAME}
    real_prepare = train_module.prepare

    def no_work(*args, **kwargs):
        raise AssertionError("a model was built or data read before the check")

    monkeypatch.setattr(train_module, "prepare", no_work)
    capsys.readouterr()
    assert resume(out, "--epochs", "2") == 2
    assert f"cannot resume {out}: it has no last.pt" in one_error_line(capsys)
    (out / "last.pt").write_bytes(b"not a checkpoint")
    assert resume(out, "--epochs", "2") == 2
    assert "last.pt" in one_error_line(capsys)
    assert main(train_args(small, out)) == 2  # a new run into it
    assert f"run folder {out} already holds" in one_error_line(capsys)
    (out / "last.pt").unlink()
    after = {p.name: p.read_bytes() for p in out.iterdir() if p.name != LOCK_NAME}
    assert after == before  # nothing lost or added

    (out / "last.pt").write_bytes(last)
    monkeypatch.setattr(train_module, "prepare", real_prepare)
    assert resume(out, "--epochs", "2") == 0
    assert logged_epochs(out) == ["1", "2"]


def test_data_is_recorded_resolved_and_checked_from_any_folder(tmp_path, monkeypatch, capsys):
    here, elsewhere, out = tmp_path / "here", tmp_path / "elsewhere", tmp_path / "run"
    for folder, val in ((here, 2), (elsewhere, 3)):  # the same name, other data
        folder.mkdir()
        (folder / "small.yaml").write_text(SMALL.replace("val: 2", f"val: {val}"))
    monkeypatch.chdir(here)
    assert main(train_args("small.yaml", out, "--epochs", "1")) == 0
    record = yaml.safe_load((out / "config.yaml").read_text())
    assert record["data"] == str(here / "small.yaml")
    assert record["resolved"]["data_files"]["files"] == 1
    assert Checkpoint.load(out / "last.pt").config.data == str(here / "small.yaml")

    monkeypatch.chdir(elsewhere)
    capsys.readouterr()
    # --iterations with --resume is the run's new total: not above the steps done, refused
    assert resume(out, "--iterations", "1") == 2
    assert "it has run 1 steps already (--iterations is the run's new total" in (
        one_error_line(capsys)
    )
    assert resume(out, "--iterations", "2") == 0
    said = capsys.readouterr().out
    assert "on synthetic: 4 train / 2 val images" in said  # its own data, not elsewhere's
    assert Checkpoint.load(out / "last.pt").training.step == 2
    assert resume(out, "--epochs", "2") == 2  # 2 epochs are done: --epochs 2 adds nothing
    assert "cannot extend" in one_error_line(capsys)

    (here / "small.yaml").write_text(SMALL.replace("train: 4", "train: 8"))
    assert resume(out, "--epochs", "3") == 2
    assert "which has changed since" in one_error_line(capsys)
    assert main(["evaluate", "--checkpoint", str(out / "last.pt"), "--workers", "0"]) == 2
    assert f"{out / 'last.pt'} was trained on {here / 'small.yaml'}, which has changed" in (
        one_error_line(capsys)
    )

    (here / "small.yaml").write_text(SMALL)
    moved = tmp_path / "moved"
    (here / "small.yaml").rename(here / "kept.yaml")
    moved.mkdir()
    (moved / "small.yaml").write_text(SMALL)
    assert resume(out, "--epochs", "3") == 2
    assert "which is no longer there (moved or deleted)" in one_error_line(capsys)
    assert resume(out, "--epochs", "3", "--data", str(moved / "small.yaml")) == 0
    record = yaml.safe_load((out / "config.yaml").read_text())
    assert record["extensions"][-1]["changes"]["data"] == [
        str(here / "small.yaml"),
        str(moved / "small.yaml"),
    ]
    assert Checkpoint.load(out / "last.pt").training.step == 3


def test_an_older_relative_data_path_still_loads_with_a_warning(tmp_path, monkeypatch):
    from seglab.engine.data_record import DataRecordWarning, check_recorded_data

    monkeypatch.chdir(tmp_path)
    with pytest.warns(DataRecordWarning, match=r"old\.pt records its data as small\.yaml"):
        assert check_recorded_data("small.yaml", None, "old.pt", "give --data") == "small.yaml"
    with pytest.raises(SeglabError, match="no longer there"):
        check_recorded_data(str(tmp_path / "gone.yaml"), None, "old.pt", "give --data")
