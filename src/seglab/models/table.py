"""The table of ``seglab models``: each registered encoder's U-Net parameters and GFLOPs, the
ImageNet top-1 of its weights, their file name and whether this machine has it. Computing the
rows needs torch and torchvision, 3-4 s to import on a 2-core machine, so they are cached per
size, classes, library versions and registry source; only the "cached" column is read each time.
Nothing here imports torch until a row must be computed."""

from __future__ import annotations

import hashlib
import json
from importlib import metadata
from pathlib import Path

from seglab.cache import cache_dir, torch_hub_checkpoints

# The sources the rows are computed from: a change in any of them computes them again.
SOURCES = ("encoders.py", "unet.py", "complexity.py")


def encoder_table(height: int, width: int, classes: int) -> list[dict]:
    """One row per registered encoder: name, params, gflops, top1, weights_file, cached."""
    path = cache_dir() / "models" / f"{_key(height, width, classes)}.json"
    try:
        rows = json.loads(path.read_text())
    except (OSError, ValueError):
        rows = _compute(height, width, classes)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.tmp")
        tmp.write_text(json.dumps(rows))
        tmp.replace(path)
    hub = torch_hub_checkpoints()
    return [{**row, "cached": (hub / row["weights_file"]).is_file()} for row in rows]


def _compute(height: int, width: int, classes: int) -> list[dict]:
    # torch and torchvision only when the table is not cached: `seglab models` answers at once
    from seglab.models.complexity import model_costs
    from seglab.models.encoders import ENCODERS

    rows = []
    for name, spec in ENCODERS.items():
        params, gflops = model_costs(name, classes, height, width)
        rows.append(
            {
                "encoder": name,
                "params": params,
                "gflops": gflops,
                "top1": spec.imagenet_top1,
                "weights_file": spec.weights_file,
            }
        )
    return rows


def _key(height: int, width: int, classes: int) -> str:
    here = Path(__file__).parent
    digest = hashlib.sha1(f"{height}x{width}:{classes}".encode())
    for package in ("torch", "torchvision"):
        digest.update(metadata.version(package).encode())
    for name in SOURCES:
        digest.update((here / name).read_bytes())
    return digest.hexdigest()[:16]
