"""How often does `seglab compare`'s verdict call two models "different" when they are the same
(A/A), and does it see a real gap (A/B)? The verdict calls a pair different when NOT
``equivalent(model_difference(a, b), margin)``: the bootstrap interval of mIoU(a) - mIoU(b)
excludes zero and the difference is larger than the margin (0.01, one mIoU point).

Runs of one configuration that differ only in their seed are trained on a small synthetic dataset
(MobileNetV2, random init, CPU), each scored per image on the same validation images, then:

- A/A, one seed a side: runs seed 2k against 2k+1, judged with the assumed seed noise (what
  compare does when each model ran once: the curve's noise, never below the calibrated floor,
  statistics.SEED_SD_FLOOR) and with the image-only bootstrap (seed_noise=None); beside it the
  observed sd of the runs' mIoU, the mean curve-noise estimate and the runs flagged undertrained;
- A/A, three seeds a side: disjoint 3-vs-3 splits of the same runs (the seeds are measured);
- A/B: a configuration with ``--ab-factor`` times fewer steps (B) against the full one (A).

The target: "different" in at most 5% of the A/A pairs, and the A/B gap detected with the right
sign. Runs already in ``--work`` are reused, so an interrupted calibration continues.

    .venv/bin/python benchmarks/calibrate_verdict.py [--pairs 9] [--ab-pairs 6] [--steps 160]
        [--first-seed 2] [--work /tmp/seglab-calibrate] [--json /tmp/seglab-calibrate/results.json]

The floor was measured with --first-seed 2; check it on seeds it was not fitted on (e.g.
--first-seed 100).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import random
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from seglab.config import TrainConfig
from seglab.data.dataset import open_data
from seglab.engine.checkpoint import Checkpoint
from seglab.engine.evaluate import EvalOptions
from seglab.engine.train import train
from seglab.reporting.compare import model_difference
from seglab.reporting.repeats import ModelEvaluation, evaluate_runs
from seglab.reporting.results import read_history
from seglab.reporting.statistics import bootstrap_miou_difference, equivalent

DATA_YAML = "layout: synthetic\nsize: [64, 80]\ntrain: 64\nval: 32\n"


def train_run(work: Path, data: Path, label: str, seed: int, steps: int, val_interval: int):
    """One run (reused when its folder holds a finished one): its folder and best metrics."""
    folder = work / label / f"seed{seed}"
    done = folder / "done.json"
    if done.is_file():
        return folder, json.loads(done.read_text())
    config = TrainConfig(
        data=str(data),
        encoder="mobilenet_v2",
        weights="none",
        batch_size=8,
        iterations=steps,
        val_interval=val_interval,
        workers=0,
        progress=False,
        device="cpu",
        seed=seed,
        out=str(folder),
    )
    start = time.perf_counter()
    metrics = train(config)
    record = {
        "degenerate": metrics.get("degenerate"),
        "best_val_miou": float(metrics["miou"]),
        "train_seconds": time.perf_counter() - start,
    }
    done.write_text(json.dumps(record))
    return folder, record


def evaluate(folder: Path, data, data_name: str) -> ModelEvaluation:
    """One run scored per image on the val split of ``data``, as compare scores it."""
    checkpoint = Checkpoint.load(folder / "best.pt")
    steps = Checkpoint.load(folder / "last.pt").step
    history = read_history(folder / "metrics.csv")
    return evaluate_runs(
        [folder],
        [checkpoint],
        [history],
        [steps],
        data,
        data_name,
        "val",
        EvalOptions(workers=0),
        torch.device("cpu"),
        {},
        progress=False,
    )


def pooled(evaluations: list[ModelEvaluation]) -> ModelEvaluation:
    """Single-run evaluations of different seeds as one model with several seeds."""
    first = evaluations[0]
    return ModelEvaluation(
        np.concatenate([e.confusions for e in evaluations]),
        first.groups,
        [e.runs[0] for e in evaluations],
        first.first,
        first.first_data,
    )


def judge(a: ModelEvaluation, b: ModelEvaluation, margin: float) -> dict:
    """The verdict's judgement of a against b, with the curve noise (compare) and without."""
    with_noise = model_difference(a, b)
    image_only = bootstrap_miou_difference(a.confusions, b.confusions, groups=a.groups)
    row = {"a_seeds": [r.seed for r in a.runs], "b_seeds": [r.seed for r in b.runs]}
    for name, boot in (("compare", with_noise), ("image_only", image_only)):
        row[name] = {
            "difference": boot.difference,
            "ci": [boot.ci_low, boot.ci_high],
            "seed_noise": boot.seed_noise,
            "different": not equivalent(boot, margin),
        }
    return row


def share(rows: list[dict], key: str, sign: int = 0) -> str:
    """'k/n (p%)' of rows called different under ``key`` (with ``sign``: and of that sign)."""
    hits = sum(
        r[key]["different"] and (sign == 0 or math.copysign(1, r[key]["difference"]) == sign)
        for r in rows
    )
    return f"{hits}/{len(rows)} ({100 * hits / len(rows):.0f}%)" if rows else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=9, help="A/A pairs of single runs")
    parser.add_argument("--ab-pairs", type=int, default=6, help="A/B pairs (B runs to train)")
    parser.add_argument("--steps", type=int, default=160, help="A's training steps")
    parser.add_argument("--ab-factor", type=int, default=4, help="B trains steps/FACTOR steps")
    parser.add_argument("--val-interval", type=int, default=2, help="epochs between validations")
    parser.add_argument("--splits", type=int, default=40, help="random 3-vs-3 A/A splits")
    parser.add_argument("--margin", type=float, default=0.01)
    parser.add_argument("--first-seed", type=int, default=2, help="the first run's seed")
    parser.add_argument("--work", type=Path, default=Path("/tmp/seglab-calibrate"))
    parser.add_argument("--json", type=Path, default=None, help="default: WORK/results.json")
    args = parser.parse_args()
    start = time.perf_counter()
    args.work.mkdir(parents=True, exist_ok=True)
    data_path = args.work / "data.yaml"
    data_path.write_text(DATA_YAML)
    data = open_data(str(data_path), progress=False)  # the images every run is scored on

    runs = {}  # (label, seed) -> record
    evaluations = {}
    seeds_a = list(range(args.first_seed, args.first_seed + 2 * args.pairs))
    # B replaces the second run of the first A/B pairs: B seed 2k+1 against A seed 2k.
    seeds_b = seeds_a[1 : 2 * args.ab_pairs : 2]
    plan = [("A", s, args.steps) for s in seeds_a]
    plan += [("B", s, args.steps // args.ab_factor) for s in seeds_b]
    for k, (label, seed, steps) in enumerate(plan, 1):
        folder, record = train_run(args.work, data_path, label, seed, steps, args.val_interval)
        evaluation = evaluate(folder, data, str(data_path))
        run = evaluation.runs[0]
        record.update(label=label, seed=seed, steps=steps, miou=run.miou)
        record["curve_noise"] = run.curve_noise
        record["undertrained"] = run.undertrained
        runs[label, seed], evaluations[label, seed] = record, evaluation
        print(
            f"[{time.perf_counter() - start:6.0f}s] {k}/{len(plan)} {label} seed {seed}: "
            f"{steps} steps, mIoU {run.miou:.4f}, curve noise "
            f"{'-' if run.curve_noise is None else f'{run.curve_noise:.4f}'}, "
            f"degenerate {record['degenerate']}",
            flush=True,
        )

    a_runs = [evaluations["A", s] for s in seeds_a]
    aa_single = [
        judge(evaluations["A", s], evaluations["A", s + 1], args.margin) for s in seeds_a[::2]
    ]
    # 3-vs-3: first the splits that share no run with each other, then random ones (reusing runs).
    independent = [seeds_a[i : i + 6] for i in range(0, len(seeds_a) - 5, 6)]
    rng = random.Random(0)
    drawn = [rng.sample(seeds_a, 6) for _ in range(args.splits)]
    aa_three = {
        name: [
            judge(
                pooled([evaluations["A", s] for s in six[:3]]),
                pooled([evaluations["A", s] for s in six[3:]]),
                args.margin,
            )
            for six in sixes
        ]
        for name, sixes in (("independent", independent), ("random", drawn))
    }
    ab_single = [judge(evaluations["A", s - 1], evaluations["B", s], args.margin) for s in seeds_b]
    ab_three = [
        judge(
            pooled([evaluations["A", s - 1] for s in three]),
            pooled([evaluations["B", s] for s in three]),
            args.margin,
        )
        for three in (seeds_b[i : i + 3] for i in range(0, len(seeds_b) - 2, 3))
    ]

    a_mious = [e.runs[0].miou for e in a_runs]
    b_mious = [evaluations["B", s].runs[0].miou for s in seeds_b]
    noises = [e.runs[0].curve_noise for e in a_runs if e.runs[0].curve_noise is not None]
    spread = {
        "a_miou_mean": statistics.mean(a_mious),
        "a_miou_sd": statistics.stdev(a_mious),
        "a_curve_noise_mean": statistics.mean(noises),
        "a_curve_noise_rms": math.sqrt(statistics.mean(n * n for n in noises)),
        "aa_pair_difference_sd_over_sqrt2": statistics.stdev(
            r["image_only"]["difference"] for r in aa_single
        )
        / math.sqrt(2),
        "b_miou_mean": statistics.mean(b_mious) if b_mious else None,
        "b_miou_sd": statistics.stdev(b_mious) if len(b_mious) > 1 else None,
        "degenerate_runs": [f"{k[0]}{k[1]}" for k, r in runs.items() if r["degenerate"]],
        "undertrained_runs": [f"{k[0]}{k[1]}" for k, r in runs.items() if r["undertrained"]],
    }
    wall = time.perf_counter() - start

    print()
    print(f"A: mobilenet_v2, {args.steps} steps, batch 8; B: {args.steps // args.ab_factor} steps")
    print(f"{'experiment':<36} {'pairs':>5}  {'compare (assumed noise)':>22}  {'image-only':>12}")
    lines = [
        ("A/A, 1 seed a side", aa_single, 0),
        ("A/A, 3 v 3, independent splits", aa_three["independent"], 0),
        ("A/A, 3 v 3, random splits (reused)", aa_three["random"], 0),
        ("A/B, 1 seed a side: A better", ab_single, 1),
        ("A/B, 3 v 3: A better", ab_three, 1),
        ("A/B, 1 seed a side: wrong sign", ab_single, -1),
    ]
    for name, rows, sign in lines:
        print(
            f"{name:<36} {len(rows):>5}  {share(rows, 'compare', sign):>22}  "
            f"{share(rows, 'image_only', sign):>12}"
        )
    print()
    print(
        f"A runs' mIoU: mean {spread['a_miou_mean']:.4f}, sd {spread['a_miou_sd']:.4f} over "
        f"{len(a_mious)} runs (A/A pair differences' sd / sqrt 2: "
        f"{spread['aa_pair_difference_sd_over_sqrt2']:.4f}); curve-noise estimate: mean "
        f"{spread['a_curve_noise_mean']:.4f}, rms {spread['a_curve_noise_rms']:.4f}"
    )
    if b_mious:
        print(
            f"B runs' mIoU: mean {spread['b_miou_mean']:.4f}, sd {spread['b_miou_sd'] or 0:.4f}"
            f" over {len(b_mious)} runs"
        )
    print(
        f"degenerate runs: {spread['degenerate_runs'] or 'none'}; undertrained: "
        f"{len(spread['undertrained_runs'])} of {len(runs)}; wall time {wall:.0f} s"
    )

    flags = set()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            flags = set(value.split())
            break
    out = args.json or args.work / "results.json"
    out.write_text(
        json.dumps(
            {
                "args": {k: str(v) for k, v in vars(args).items()},
                "machine": {
                    "processor": platform.processor() or platform.machine(),
                    "threads": torch.get_num_threads(),
                    "avx512_bf16": "avx512_bf16" in flags,
                    "avx512f": "avx512f" in flags,
                    "amx_bf16": "amx_bf16" in flags,
                    "torch": torch.__version__,
                },
                "wall_seconds": wall,
                "runs": [{**r, "key": f"{k[0]}{k[1]}"} for k, r in runs.items()],
                "spread": spread,
                "aa_single": aa_single,
                "aa_three": aa_three,
                "ab_single": ab_single,
                "ab_three": ab_three,
            },
            indent=1,
        )
    )
    print(f"raw numbers: {out}")


if __name__ == "__main__":
    main()
