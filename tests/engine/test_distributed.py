"""Two CPU processes under torchrun (gloo) train to the same weights as one process on the same
global batch. One process reproduces each rank's BatchNorm batch by gradient accumulation."""

import os
import subprocess
import sys

import torch

from seglab.cli import main
from seglab.engine.checkpoint import Checkpoint
from tests.engine.conftest import train_args

# Both sides run one thread per process: a different thread count changes the order of float
# sums, which BatchNorm over tiny feature maps of an untrained net amplifies far above 1e-6.
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}


def run(command: list[str]) -> str:
    result = subprocess.run(command, capture_output=True, text=True, env=ONE_THREAD, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout + result.stderr


def test_two_processes_match_one_process(tiny_data, tmp_path):
    common = ("--iterations", "3", "--epochs", "1", "--batch-size", "2")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the one process is this one, on one thread as each rank is
    try:
        single = train_args(tiny_data, tmp_path / "single", *common, "--accumulate", "2")
        assert main(single) == 0
    finally:
        torch.set_num_threads(threads)
    log = run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            "2",
            "-m",
            "seglab",
            *train_args(tiny_data, tmp_path / "ddp", *common),
        ]
    )
    assert "x 2 processes" in log

    one = Checkpoint.load(tmp_path / "single" / "last.pt")
    two = Checkpoint.load(tmp_path / "ddp" / "last.pt")
    assert one.training.step == two.training.step == 3
    params = [k for k in one.state_dict if "running_" not in k and "num_batches" not in k]
    worst = max((one.state_dict[k] - two.state_dict[k]).abs().max().item() for k in params)
    assert worst < 1e-6, worst
    # Validation confusion matrices are summed across processes: every pixel counted once.
    assert two.metrics["pixels"] == one.metrics["pixels"] == 16 * 64 * 80
    assert abs(one.metrics["miou"] - two.metrics["miou"]) < 1e-3
