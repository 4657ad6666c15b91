"""A run folder belongs to one run: never overwritten, never shared by two processes."""

import os
import subprocess
import sys
import textwrap

import pytest

from seglab.cli import main
from seglab.engine.run_folder import LOCK_NAME, claim_run_folder, default_run_folder
from seglab.errors import SeglabError
from tests.engine.conftest import train_args


def test_training_into_a_finished_run_is_refused_and_changes_nothing(tiny_data, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(train_args(tiny_data, run, "--epochs", "1")) == 0
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    capsys.readouterr()
    assert main(train_args(tiny_data, run, "--epochs", "1", "--lr", "0.01")) == 2
    err = capsys.readouterr().err.strip()
    assert f"run folder {run} already holds" in err and f"--resume {run}" in err
    assert len(err.splitlines()) == 1
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before


def test_without_out_runs_are_numbered(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert default_run_folder("vgg19").as_posix() == "runs/vgg19"
    (tmp_path / "runs" / "vgg19").mkdir(parents=True)
    assert default_run_folder("vgg19").as_posix() == "runs/vgg19"  # empty: free
    (tmp_path / "runs" / "vgg19" / "config.yaml").write_text("x")
    (tmp_path / "runs" / "vgg19-2").mkdir()
    (tmp_path / "runs" / "vgg19-2" / "best.pt").write_text("x")
    assert default_run_folder("vgg19").as_posix() == "runs/vgg19-3"


def test_a_second_process_on_the_same_folder_fails_at_once_naming_the_first(tmp_path):
    folder = tmp_path / "run"
    holder = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from seglab.engine.run_folder import claim_run_folder
        with claim_run_folder(Path({str(folder)!r}), resume=False):
            print("held", flush=True)
            sys.stdin.readline()
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", holder], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "held"
        with (
            pytest.raises(SeglabError, match=f"in use by seglab process {proc.pid}"),
            claim_run_folder(folder, resume=False),
        ):
            pass
    finally:
        proc.communicate("\n", timeout=30)
    with claim_run_folder(folder, resume=False):  # free again once the first has finished
        assert (folder / LOCK_NAME).is_file()


def test_a_refused_start_leaves_no_folder_behind(tmp_path):
    folder = tmp_path / "new"
    with pytest.raises(RuntimeError), claim_run_folder(folder, resume=False):
        raise RuntimeError("set-up failed")
    assert not folder.exists()


def test_an_output_that_is_a_file_or_unwritable_is_refused_before_any_work(tmp_path):
    (tmp_path / "file").write_text("mine")
    with (
        pytest.raises(SeglabError, match="is a file, not a folder"),
        claim_run_folder(tmp_path / "file", resume=False),
    ):
        pass
    assert (tmp_path / "file").read_text() == "mine"
    if os.geteuid() == 0:
        pytest.skip("root writes anywhere: the unwritable case cannot be made here")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with (
        pytest.raises(SeglabError, match="cannot be written"),
        claim_run_folder(locked / "run", resume=False),
    ):
        pass
