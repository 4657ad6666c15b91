"""Training throughput and inference latency of seglab's U-Nets against
segmentation_models.pytorch (smp), in one process, alternating, medians of repeats.

    .venv/bin/pip install "segmentation-models-pytorch>=0.3"   # benchmark-only, never a dependency
    .venv/bin/python benchmarks/speed_vs_smp.py [--repeats 5] [--json benchmarks/results/speed.json]

Training: batch 8, 256x256 crops, a full step (forward, cross-entropy, backward, AdamW step).
Inference: batch 1, 360x480, no grad. smp runs the way its examples run it (fp32, default memory
format); seglab runs with its defaults on this machine (channels_last, automatic precision), plus
its fastest CPU backend for inference (ONNX Runtime, INT8) when asked with --deploy.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from datetime import date

import numpy as np
import torch

from seglab.engine.performance import choose_precision
from seglab.models import build_model

CLASSES = 11


def smp_model(encoder: str) -> torch.nn.Module:
    import segmentation_models_pytorch as smp

    return smp.Unet(encoder_name=encoder, encoder_weights=None, classes=CLASSES)


def train_step_fn(model, channels_last: bool, autocast_dtype):
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    images = torch.rand(8, 3, 256, 256)
    masks = torch.randint(0, CLASSES, (8, 256, 256))
    if channels_last:
        model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)

    def step():
        with torch.autocast(
            "cpu", dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None
        ):
            loss = torch.nn.functional.cross_entropy(model(images).float(), masks)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def infer_fn(model, channels_last: bool, autocast_dtype):
    model.eval()
    image = torch.rand(1, 3, 360, 480)
    if channels_last:
        model.to(memory_format=torch.channels_last)
        image = image.contiguous(memory_format=torch.channels_last)

    @torch.inference_mode()
    def run():
        with torch.autocast(
            "cpu", dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None
        ):
            return model(image)

    return run


def alternate(fns: dict, repeats: int, warmup: int = 1) -> dict[str, list[float]]:
    """Time each function ``repeats`` times, interleaved, after ``warmup`` untimed calls each."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoders", default="vgg19,mobilenet_v2")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", dest="json_out")
    args = parser.parse_args()
    precision = choose_precision(torch.device("cpu"))
    results = {
        "date": date.today().isoformat(),
        "machine": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "seglab_precision": precision.name,
        "models": {},
    }
    for encoder in args.encoders.split(","):
        torch.manual_seed(0)
        ours, theirs = build_model(encoder, CLASSES, encoder_weights=None), smp_model(encoder)
        train = alternate(
            {
                "seglab": train_step_fn(ours, True, precision.autocast_dtype),
                "smp": train_step_fn(theirs, False, None),
            },
            args.repeats,
        )
        ours, theirs = build_model(encoder, CLASSES, encoder_weights=None), smp_model(encoder)
        infer = alternate(
            {
                "seglab": infer_fn(ours, True, precision.autocast_dtype),
                "smp": infer_fn(theirs, False, None),
            },
            4 * args.repeats,
            warmup=2,
        )
        row = {}
        for name in ("seglab", "smp"):
            row[name] = {
                "train_images_per_s": 8 / statistics.median(train[name]),
                "infer_median_ms": 1000 * statistics.median(infer[name]),
                "infer_p90_ms": 1000 * float(np.percentile(infer[name], 90)),
            }
        row["train_speedup"] = (
            row["seglab"]["train_images_per_s"] / row["smp"]["train_images_per_s"]
        )
        row["infer_speedup"] = row["smp"]["infer_median_ms"] / row["seglab"]["infer_median_ms"]
        results["models"][encoder] = row
        print(
            f"{encoder:<14} train img/s seglab {row['seglab']['train_images_per_s']:6.2f}  "
            f"smp {row['smp']['train_images_per_s']:6.2f}  ratio {row['train_speedup']:.2f}x | "
            f"infer ms (median/p90) seglab {row['seglab']['infer_median_ms']:.1f}/"
            f"{row['seglab']['infer_p90_ms']:.1f}  smp {row['smp']['infer_median_ms']:.1f}/"
            f"{row['smp']['infer_p90_ms']:.1f}  ratio {row['infer_speedup']:.2f}x"
        )
    print(json.dumps(results, indent=2))
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
