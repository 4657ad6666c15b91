"""Speed, memory and efficiency of seglab's U-Nets against segmentation_models.pytorch (smp).

    .venv/bin/pip install -e ".[bench]"     # smp is a benchmark-only extra, never a dependency
    .venv/bin/python benchmarks/speed_vs_smp.py [--repeats 5] [--json benchmarks/results/speed.json]

- Training: batch 8, 256x256 crops, a full step (forward, cross-entropy, backward, AdamW step).
- Inference: batch 1, 360x480, no grad; median and p90 latency. smp runs the way its examples run
  it (fp32, default memory format); seglab with its defaults on this machine (channels_last,
  automatic precision) and with its deployment backends (ONNX Runtime fp32 and static INT8).
- Memory: peak resident memory of training and of inference, each in a fresh process.
- Efficiency: forward-pass GFLOP/s (FLOPs counted by torch's FlopCounterMode, 2 per multiply-add)
  against this machine's peak, a 2048x2048 matrix product in fp32 and bf16 timed here.
Timings run in one process, alternating between the contenders; figures are medians of repeats.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch

from seglab.data.classes import default_colors
from seglab.data.info import DatasetInfo
from seglab.deployment.benchmark import backend_segmenter
from seglab.engine.performance import PeakMemory, choose_precision
from seglab.models import build_model
from seglab.models.complexity import forward_gflops

CLASSES = 11


def smp_model(encoder: str) -> torch.nn.Module:
    import segmentation_models_pytorch as smp

    return smp.Unet(encoder_name=encoder, encoder_weights=None, classes=CLASSES)


def train_step_fn(model, channels_last: bool, autocast_dtype, size=(256, 256)):
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    images = torch.rand(8, 3, *size)
    masks = torch.randint(0, CLASSES, (8, *size))
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


def infer_fn(model, channels_last: bool, autocast_dtype, size=(360, 480)):
    model.eval()
    image = torch.rand(1, 3, *size)
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


def build(library: str, encoder: str) -> torch.nn.Module:
    torch.manual_seed(0)
    if library == "smp":
        return smp_model(encoder)
    return build_model(encoder, CLASSES, encoder_weights=None)


def matmul_peak(dtype: torch.dtype, repeats: int, n: int = 2048) -> float:
    """GFLOP/s of an n x n matrix product in ``dtype``: what this CPU's cores can do at best."""
    a, b = torch.rand(n, n, dtype=dtype), torch.rand(n, n, dtype=dtype)
    times = alternate({"mm": lambda: a @ b}, repeats, warmup=2)["mm"]
    return 2 * n**3 / statistics.median(times) / 1e9


def peak_rss_mb(library: str, encoder: str, mode: str, sizes: dict) -> float:
    """Peak resident memory of a fresh process that builds the model and runs it three times."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_peak_rss_child, (library, encoder, mode, sizes))


def _peak_rss_child(library: str, encoder: str, mode: str, sizes: dict) -> float:
    seglab = library == "seglab"
    dtype = choose_precision(torch.device("cpu")).autocast_dtype if seglab else None
    with PeakMemory() as memory:
        model = build(library, encoder)
        if mode == "train":
            run = train_step_fn(model, seglab, dtype, sizes["train"])
        else:
            run = infer_fn(model, seglab, dtype, sizes["infer"])
        for _ in range(3):
            run()
    return memory.peak


def deployment_runner(model, backend: str, size: tuple[int, int]):
    """seglab's ONNX Runtime backends, timed on the same image as the eager contenders."""
    image = torch.rand(1, 3, *size)
    calibration = [torch.rand(1, 3, *size) for _ in range(4)]
    info = DatasetInfo(
        "random", tuple(f"class{i}" for i in range(CLASSES)), default_colors(CLASSES)
    )
    folder = tempfile.TemporaryDirectory()  # the exported files, removed with the runner
    segmenter = backend_segmenter(backend, model, info, Path(folder.name), calibration=calibration)

    def run():
        assert folder.name  # holds the folder as long as the runner lives
        return segmenter(image)

    return run


def profile_training(encoder: str, size: tuple[int, int]) -> None:
    """The operators a seglab training step spends its time in, heaviest first."""
    step = train_step_fn(build("seglab", encoder), True, None, size)
    step()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(3):
            step()
    print(f"{encoder}: 3 training steps, batch 8, {size[0]}x{size[1]}")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--encoders", default="vgg19,mobilenet_v2")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--train-size", type=int, nargs=2, default=(256, 256))
    parser.add_argument("--infer-size", type=int, nargs=2, default=(360, 480))
    parser.add_argument("--json", dest="json_out", default="benchmarks/results/speed.json")
    parser.add_argument("--profile", action="store_true", help="print where a seglab step spends")
    args = parser.parse_args()
    if args.profile:
        for encoder in args.encoders.split(","):
            profile_training(encoder, tuple(args.train_size))
        return
    sizes = {"train": tuple(args.train_size), "infer": tuple(args.infer_size)}
    precision = choose_precision(torch.device("cpu"))
    peak = {
        "fp32": matmul_peak(torch.float32, 4 * args.repeats),
        "bf16": matmul_peak(torch.bfloat16, 4 * args.repeats),
    }
    results = {
        "date": date.today().isoformat(),
        "machine": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "seglab_precision": precision.name,
        "matmul_peak_gflops": peak,
        "models": {},
    }
    print(
        f"2048x2048 matmul peak: fp32 {peak['fp32']:.0f} GFLOP/s, bf16 {peak['bf16']:.0f} GFLOP/s"
    )
    for encoder in args.encoders.split(","):
        train = alternate(
            {
                "seglab": train_step_fn(
                    build("seglab", encoder), True, precision.autocast_dtype, sizes["train"]
                ),
                "smp": train_step_fn(build("smp", encoder), False, None, sizes["train"]),
            },
            args.repeats,
        )
        ours = build("seglab", encoder)
        gflops = forward_gflops(ours, *sizes["infer"])
        infer = alternate(
            {
                "seglab": infer_fn(ours, True, precision.autocast_dtype, sizes["infer"]),
                "seglab_bf16": infer_fn(
                    build("seglab", encoder), True, torch.bfloat16, sizes["infer"]
                ),
                "seglab_onnxruntime": deployment_runner(ours, "onnxruntime", sizes["infer"]),
                "seglab_int8": deployment_runner(ours, "int8", sizes["infer"]),
                "smp": infer_fn(build("smp", encoder), False, None, sizes["infer"]),
            },
            4 * args.repeats,
            warmup=2,
        )
        row = {"forward_gflops": gflops, "inference": {}, "memory_mb": {}}
        # What each runs in, for its share of this machine's matmul peak in that type (INT8 has
        # no measured peak: its share is not printed)
        number_types = {
            "seglab": precision.name,
            "seglab_bf16": "bf16",
            "seglab_onnxruntime": "fp32",
            "seglab_int8": "int8",
            "smp": "fp32",
        }
        for name, times in infer.items():
            median = statistics.median(times)
            row["inference"][name] = {
                "number_type": number_types[name],
                "median_ms": 1000 * median,
                "p90_ms": 1000 * float(np.percentile(times, 90)),
                "gflops_per_s": gflops / median,
                "speedup_vs_smp": statistics.median(infer["smp"]) / median,
            }
        for library in ("seglab", "smp"):
            row[library] = {"train_images_per_s": 8 / statistics.median(train[library])}
            for mode in ("train", "infer"):
                row["memory_mb"][f"{library}_{mode}"] = peak_rss_mb(library, encoder, mode, sizes)
        row["train_speedup"] = (
            row["seglab"]["train_images_per_s"] / row["smp"]["train_images_per_s"]
        )
        results["models"][encoder] = row
        print_model(encoder, row, peak)
    if args.json_out:
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(json.dumps(results, indent=2))


def print_model(encoder: str, row: dict, peak: dict) -> None:
    print(
        f"\n{encoder}: {row['forward_gflops']:.1f} GFLOP per forward; training img/s seglab "
        f"{row['seglab']['train_images_per_s']:.2f}, smp {row['smp']['train_images_per_s']:.2f} "
        f"({row['train_speedup']:.2f}x)"
    )
    print(
        f"  {'inference':<20}{'median ms':>10}{'p90 ms':>9}{'vs smp':>8}"
        f"{'GFLOP/s':>9}{'of peak':>9}"
    )
    for name, r in row["inference"].items():
        reference = peak.get(r["number_type"])  # fp16 and int8: no peak measured
        share = "-" if reference is None else f"{100 * r['gflops_per_s'] / reference:.0f}%"
        print(
            f"  {name:<20}{r['median_ms']:10.1f}{r['p90_ms']:9.1f}{r['speedup_vs_smp']:7.2f}x"
            f"{r['gflops_per_s']:9.0f}{share:>9} ({r['number_type']})"
        )
    memory = row["memory_mb"]
    print(
        f"  peak RSS MB: train seglab {memory['seglab_train']:.0f} / "
        f"smp {memory['smp_train']:.0f}; "
        f"infer seglab {memory['seglab_infer']:.0f} / smp {memory['smp_infer']:.0f}"
    )


if __name__ == "__main__":
    main()
