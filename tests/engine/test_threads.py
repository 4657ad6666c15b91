"""Intra-op threads and loader workers chosen from the cores that are free: the rule on given
machines, a number given winning over it, and a run recording the numbers it used while the
caller's torch threads come back as they were."""

import pytest
import torch
import yaml

import seglab
from seglab.cli import build_parser
from seglab.config import TrainConfig, load_config
from seglab.engine import machine
from seglab.engine.machine import Cores, choose_threads, free_cores, resolve_threads
from seglab.engine.train import resume_config
from seglab.errors import SeglabError


def chosen(role, cores, **given):
    choice = choose_threads(role, cores, **given)
    return choice.threads, choice.workers


def test_two_free_cores_take_two_threads_and_no_loader_worker():
    # measured: on 2 quiet cores 2 threads + 0 workers beat 1 + 1 (benchmarks/threads.py)
    assert chosen("training", Cores(2)) == (2, 0)
    assert chosen("evaluation", Cores(2)) == (2, 0)
    assert chosen("serving", Cores(2)) == (2, 0)  # requests are decoded in the server's threads
    assert choose_threads("training", Cores(2)).reason == "2 cores: 2 threads, 0 loader workers"
    assert chosen("training", Cores(4)) == (3, 1)  # from 4 free cores a worker feeds them


def test_one_of_two_cores_busy_leaves_one_thread_and_no_worker():
    choice = choose_threads("training", Cores(2, busy=1.0))
    assert (choice.threads, choice.workers) == (1, 0)
    assert choice.reason == "2 cores, 1 busy with other processes: 1 thread, 0 loader workers"
    assert chosen("training", Cores(2, busy=1.6)) == (1, 0)  # at least one thread
    assert chosen("training", Cores(2, busy=0.4)) == (2, 0)  # most of a core is still free


def test_sixteen_cores_feed_the_threads_with_a_worker_for_each_four():
    assert chosen("training", Cores(16)) == (12, 4)
    assert chosen("training", Cores(16, busy=3)) == (10, 3)
    assert chosen("serving", Cores(16)) == (16, 0)
    assert chosen("training", Cores(16), processes=4) == (3, 1)  # DDP: each process its share
    assert chosen("training", Cores(16), accelerator=True) == (1, 8)  # the CPU only feeds a GPU


def test_an_affinity_of_one_core_is_what_counts_not_the_machine(monkeypatch):
    monkeypatch.setattr(machine.os, "sched_getaffinity", lambda pid: {3}, raising=False)
    monkeypatch.setattr(machine.os, "cpu_count", lambda: 16)
    monkeypatch.setattr(machine, "cpu_load", lambda seconds: {"others_busy": 0.5})
    # 8 of the 16 cores busy: other processes are counted on the cores outside this one first
    assert free_cores() == Cores(1, 0.0)
    choice = resolve_threads("training")
    assert (choice.threads, choice.workers) == (1, 0)
    assert choice.reason == "1 core: 1 thread, 0 loader workers"


def test_other_processes_busy_on_a_two_core_machine_take_their_cores(monkeypatch):
    monkeypatch.setattr(machine.os, "cpu_count", lambda: 2)
    assert free_cores({"others_busy": 0.5}, usable=2) == Cores(2, 1.0)
    assert free_cores({"others_busy": None}, usable=2) == Cores(2, 0.0)  # no /proc: none known


def test_a_number_given_wins_and_the_other_is_chosen_around_it(monkeypatch):
    monkeypatch.setattr(machine, "cpu_load", lambda seconds: {"others_busy": 0.0})
    monkeypatch.setattr(machine, "usable_cores", lambda: 2)
    assert chosen("training", Cores(4), threads=2) == (2, 1)
    assert chosen("training", Cores(2), workers=1) == (1, 1)
    given = resolve_threads("training", 3, 2)
    assert (given.threads, given.workers) == (3, 2)
    assert given.reason == "2 cores: 3 threads (given), 2 loader workers (given)"

    config = load_config(None, {"threads": "3", "workers": "0"})  # the command line's text
    assert (config.threads, config.workers) == (3, 0)
    assert (TrainConfig().threads, TrainConfig().workers) == ("auto", "auto")
    args = build_parser().parse_args(["evaluate", "--checkpoint", "x.pt", "--threads", "2"])
    assert (args.threads, args.workers) == ("2", "auto")
    with pytest.raises(SeglabError, match="--threads: 'two' is not auto or an integer"):
        load_config(None, {"threads": "two"})
    with pytest.raises(SeglabError, match="--threads: 0 must be at least 1"):
        load_config(None, {"threads": "0"})


@pytest.mark.filterwarnings("ignore::seglab.errors.SeglabWarning")  # a 1-step model
def test_a_run_records_what_it_used_and_gives_the_threads_back(tmp_path, monkeypatch):
    monkeypatch.setattr(machine, "usable_cores", lambda: 1)  # auto: 1 thread, no worker
    monkeypatch.setattr(machine, "cpu_load", lambda seconds: {"others_busy": 0.0})
    data = tmp_path / "tiny.yaml"
    data.write_text("layout: synthetic\nsize: [32, 32]\ntrain: 8\nval: 4\n")
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        quick = dict(weights="none", batch_size=4, progress=False, auto="none")
        run = seglab.train(data=data, out=tmp_path / "run", iterations=1, **quick)
        assert torch.get_num_threads() == 2  # the caller's, not the run's
    finally:
        torch.set_num_threads(before)
    record = yaml.safe_load((run.folder / "config.yaml").read_text())
    assert (record["threads"], record["workers"]) == (1, 0)  # resolved, not "auto"
    assert record["resolved"]["threads_reason"] == "1 core: 1 thread, 0 loader workers"
    assert any("1 core: 1 thread, 0 loader workers" in line for line in run.log)

    # resuming on another share of the machine is allowed; unless given, the run's numbers stay
    kept = resume_config(run.folder, {"iterations": 2})
    assert (kept.threads, kept.workers) == (1, 0)
    changed = resume_config(run.folder, {"iterations": 2, "threads": "2", "workers": "auto"})
    assert (changed.threads, changed.workers) == (2, "auto")

    metrics = seglab.load(run.folder / "best.pt", "cpu").evaluate(progress=False)
    assert torch.get_num_threads() == before
    what = metrics["evaluation"]
    assert (what["threads"], what["workers"]) == (1, 0)
    assert what["threads_reason"] == "1 core: 1 thread, 0 loader workers"
