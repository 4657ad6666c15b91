"""Every test runs with an empty torch.hub cache of its own and with downloads refused, so no test
depends on this machine's cache or network, and none ever fetches real weights.

``make test`` runs the suite on pytest-xdist workers, one per core, each pinned to its own cores
(see pytest_configure)."""

from __future__ import annotations

import os
import urllib.error
from pathlib import Path

import pytest
import torch

SHARED_DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
needs_camvid = pytest.mark.skipif(
    not (SHARED_DATASETS / "camvid").is_dir(), reason="../shared/datasets/camvid is absent"
)
needs_membrane = pytest.mark.skipif(
    not (SHARED_DATASETS / "isbi2012-membrane").is_dir(),
    reason="../shared/datasets/isbi2012-membrane is absent",
)


def pytest_configure(config: pytest.Config) -> None:
    """On a pytest-xdist worker: pin the worker to its share of the cores and give torch that many
    threads. Two workers with torch's default threads each would put 4 threads on 2 cores, where
    torch's threads wait for each other at every operator; pinned, seglab's own thread choice
    (from the affinity) sees the share too, as it does under taskset or a batch scheduler."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")  # gw0, gw1, ... (absent without -n)
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if not worker or not hasattr(os, "sched_setaffinity"):
        return
    cores = sorted(os.sched_getaffinity(0))
    share = cores[int(worker.removeprefix("gw")) % count :: count] or cores
    os.sched_setaffinity(0, share)
    torch.set_num_threads(len(share))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that use the session's exported files run on one xdist worker (with --dist
    loadgroup), so that each format, ExecuTorch's lowering above all, is exported once."""
    for item in items:
        if "exported" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("exported"))


@pytest.fixture(autouse=True)
def torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "torch_home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    return home


@pytest.fixture(autouse=True)
def seglab_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "seglab_cache"
    monkeypatch.setenv("SEGLAB_CACHE", str(cache))
    return cache


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(url: str, *args, **kwargs):
        raise urllib.error.URLError("network is unreachable (tests run offline)")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)


@pytest.fixture(autouse=True)
def seeded() -> None:
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory) -> dict[str, Path]:
    """Two finished training runs (VGG19 and MobileNetV2 U-Nets) on a small synthetic dataset."""
    from seglab.cli import main

    root = tmp_path_factory.mktemp("tiny_runs")
    data = root / "tiny.yaml"
    data.write_text("layout: synthetic\nsize: [64, 80]\ntrain: 16\nval: 8\n")
    runs = {}
    for encoder in ("vgg19", "mobilenet_v2"):
        runs[encoder] = root / encoder
        argv = [
            "train",
            "--auto",
            "none",
            "--data",
            str(data),
            "--encoder",
            encoder,
            "--weights",
            "none",
            "--iterations",
            "3",
            "--batch-size",
            "4",
            "--workers",
            "0",
            "--no-progress",
            "--out",
            str(runs[encoder]),
        ]
        assert main(argv) == 0
    runs["data"] = data
    return runs
