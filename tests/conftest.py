"""Every test runs with an empty torch.hub cache of its own and with downloads refused, so no test
depends on this machine's cache or network, and none ever fetches real weights."""

from __future__ import annotations

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
