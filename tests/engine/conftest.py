from pathlib import Path

import pytest


@pytest.fixture
def tiny_data(tmp_path: Path) -> str:
    """A small synthetic dataset: 32 training and 16 validation images of 64x80."""
    path = tmp_path / "tiny.yaml"
    path.write_text("layout: synthetic\nsize: [64, 80]\ntrain: 32\nval: 16\n")
    return str(path)


def train_args(data: str, out: Path, *extra: str) -> list[str]:
    """A tiny run's command line, with the plain defaults (no recipe from the fingerprint: the
    engine's own tests hold every option still; tests/engine/test_recipe.py tests the recipe).
    One thread: auto follows the machine's load, and the number of threads changes the weights'
    last bits, which the runs compared weight for weight must not see."""
    return [
        "train",
        "--auto",
        "none",
        "--data",
        data,
        "--batch-size",
        "4",
        "--workers",
        "0",
        "--threads",
        "1",
        "--weights",
        "none",
        "--no-progress",
        "--out",
        str(out),
        *extra,
    ]
