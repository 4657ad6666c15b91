"""Accuracy under a CPU budget: the two seed U-Nets trained from scratch on CamVid with the shipped
recipes under one wall-time budget, then evaluated on val at the full 360x480, for each protocol:
``standard`` (SegNet's val split, 101 frames of sequence 0016E5, which also gives 204 training
frames) and ``heldout`` (configs/data/camvid_heldout_sequence.yaml: train on 0001TP + 0016E5,
validate on sequence 0006R0, never seen in training; the figure that carries to new streets).

    .venv/bin/python benchmarks/camvid_accuracy.py [--time-budget 60m] [--protocols heldout]
        [--reuse] [--variant carry --flags "--scale 0.5,2 --ema 0.999"] [--steps 2650]

Each model trains in its own `seglab train` process, one after the other (they would share the CPU
otherwise), from configs/camvid_unet_<encoder>.yaml with --weights none. The script prints a table
(mIoU plain, with flip TTA and with flip + multi-scale TTA, pixel accuracy, per-class IoU), writes
JSON and the mIoU-over-time plot.
--reuse evaluates finished runs already in --out instead of training them again; --no-tta leaves
out the flip and multi-scale passes (7x the evaluation time: a quarter of an hour for VGG19).
best.pt is the best validation on the split it is scored on, which flatters it; last.pt, the final
weights, is scored too (the "last" column).
--variant NAME with --flags "..." trains the recipe with those flags added (run folders and result
names carry NAME). --steps N trains a fixed number of steps instead of the wall-time budget: the
figure then does not depend on what else shares the CPU; N should be the steps the variant reaches
in the budget on an idle machine (its own images/s, measured alone).
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import subprocess
import sys
from datetime import date
from pathlib import Path

import torch

from seglab.config import parse_duration
from seglab.deployment.measure import evaluate_model
from seglab.engine.evaluate import EvalOptions
from seglab.engine.machine import machine_description
from seglab.formatting import percent
from seglab.reporting.plots import training_curves
from seglab.reporting.results import read_history

TTA_SCALES = (0.75, 1.0, 1.25)  # with flip: six passes per image
NO_SUFFIX = ("", "standard")  # run folders: camvid_ENCODER[_PROTOCOL][_VARIANT]

PROTOCOLS = {
    "standard": "../shared/datasets/camvid",
    "heldout": "configs/data/camvid_heldout_sequence.yaml",
}
RECIPES = {
    "mobilenet_v2": "configs/camvid_unet_mobilenet_v2.yaml",
    "vgg19": "configs/camvid_unet_vgg19.yaml",
}


def train(
    encoder: str, data: str, budget: str, run: Path, steps: int | None, flags: list[str]
) -> None:
    seglab = Path(sys.executable).with_name("seglab")
    command = [str(seglab), "train", "--config", RECIPES[encoder], "--data", data]
    command += ["--weights", "none", "--out", str(run)]
    if steps:  # a day-long time budget stays only as a guard
        command += ["--iterations", str(steps), "--time-budget", "24h"]
    else:
        command += ["--time-budget", budget]
    command += flags
    print("$", " ".join(command), flush=True)
    subprocess.run(command, check=True)


def images_per_second(run: Path) -> float | None:
    """Training images per second of the run's wall time (validations and saves included): what
    decides how many steps a time budget buys."""
    config = run / "config.yaml"
    rows = history(run)
    if not rows or not config.is_file():
        return None
    import yaml

    batch = yaml.safe_load(config.read_text())["batch_size"]
    return int(rows[-1]["step"]) * batch / float(rows[-1]["seconds"])


def history(run: Path) -> list[dict]:
    with open(run / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def scores(run: Path, data: str, tta: bool) -> dict:
    """mIoU of best.pt (plain, and with TTA when asked) and of last.pt, with per-class IoU."""
    plain = evaluate_model(run / "best.pt", data, "val", EvalOptions(workers=2))
    flipped = None
    if tta:
        flipped = evaluate_model(run / "best.pt", data, "val", EvalOptions(flip=True, workers=2))
    multi = (
        evaluate_model(
            run / "best.pt", data, "val", EvalOptions(flip=True, scales=TTA_SCALES, workers=2)
        )
        if tta
        else None
    )
    # best.pt was chosen on this very split, which flatters it; the final weights were not
    final = evaluate_model(run / "last.pt", data, "val", EvalOptions(workers=2))
    return {
        "miou": plain["miou"],
        "miou_flip": flipped["miou"] if flipped else None,
        "miou_tta": multi["miou"] if multi else None,
        "tta_scales": list(TTA_SCALES) if tta else None,
        "pixel_accuracy": plain["pixel_accuracy"],
        "miou_last": final["miou"],
        "per_class_iou": per_class(plain),
        "per_class_iou_tta": per_class(multi) if multi else None,
        "per_class_iou_last": per_class(final),
    }


def per_class(metrics: dict) -> dict[str, float]:
    return {c: v["iou"] for c, v in metrics["per_class"].items()}


def column(value: float | None, width: int = 7) -> str:
    return f"{percent(value):>{width}}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--protocols",
        default="standard,heldout",
        help="comma-separated: standard (SegNet val), heldout (sequence 0006R0 held out)",
    )
    parser.add_argument("--encoders", default="mobilenet_v2,vgg19", help="comma-separated")
    parser.add_argument("--time-budget", default="60m", help="training time per model")
    parser.add_argument("--out", default="runs/bench", help="run folders go here")
    parser.add_argument("--reuse", action="store_true", help="evaluate finished runs in --out")
    parser.add_argument(
        "--tta",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also score best.pt with flip and multi-scale TTA (7x the evaluation time)",
    )
    parser.add_argument("--variant", default="", help="name of a recipe variant (with --flags)")
    parser.add_argument("--flags", default="", help="seglab train flags the variant adds")
    parser.add_argument(
        "--steps", type=int, default=None, help="train this many steps instead of --time-budget"
    )
    parser.add_argument(
        "--json", dest="json_out", default="benchmarks/results/accuracy.json", help="results file"
    )
    parser.add_argument(
        "--plot", default="benchmarks/results/accuracy_curve.png", help="mIoU-over-time plot"
    )
    args = parser.parse_args()
    parse_duration(args.time_budget)  # fail before an hour of training, not after

    results = {
        "date": date.today().isoformat(),
        "machine": machine_description(),  # CPU model, its flags (bf16?), threads, versions
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "time_budget": args.time_budget,
        "steps": args.steps,
        "variant": args.variant,
        "flags": args.flags,
        "models": {},
    }
    runs = [(e, p) for p in args.protocols.split(",") for e in args.encoders.split(",")]
    for encoder, protocol in runs:
        data = PROTOCOLS[protocol]
        suffix = "".join(f"_{part}" for part in (protocol, args.variant) if part not in NO_SUFFIX)
        run = Path(args.out) / f"camvid_{encoder}{suffix}"
        if not (args.reuse and (run / "best.pt").is_file()):
            train(encoder, data, args.time_budget, run, args.steps, shlex.split(args.flags))
        rows = history(run)
        name = encoder + "".join(f" {part}" for part in (args.variant,) if part)
        name += f" ({protocol})" if protocol != "standard" else ""
        results["models"][name] = {
            "protocol": protocol,
            "data": data,
            "recipe": RECIPES[encoder],
            "flags": args.flags,
            "steps": int(rows[-1]["step"]),
            "images_per_second": images_per_second(run),
            "run": str(run),
            **scores(run, data, args.tta),
            "last_validation_miou": float(rows[-1]["val_miou"]),  # best.pt is the best of these
            "epochs": int(rows[-1]["epoch"]),
            "minutes": float(rows[-1]["seconds"]) / 60,
            "history": rows,
        }

    models = results["models"]
    classes = list(next(iter(models.values()))["per_class_iou"])
    print(f"\nCamVid val, 360x480, trained from scratch for {args.time_budget} on this machine")
    tta_scales = ", ".join(map(str, TTA_SCALES))
    print(f"TTA: flip, and flip at scales {tta_scales}" if args.tta else "TTA: not run (--no-tta)")
    print("best: best.pt, chosen on this split; last: the final weights (the unflattered figure)")
    print(
        f"{'model':<14}{'best':>7}{'+flip':>7}{'+ms':>7}{'last':>7}{'pixacc':>8}{'epochs':>8}"
        f"{'min':>6}"
    )
    for name, m in models.items():
        print(
            f"{name:<14}{column(m['miou'])}{column(m['miou_flip'])}{column(m['miou_tta'])}"
            f"{column(m['miou_last'])}{column(m['pixel_accuracy'], 8)}{m['epochs']:8d}"
            f"{m['minutes']:6.1f}"
        )
    print(f"\n{'per-class IoU':<14}" + "".join(f"{name[:12]:>14}{'+ms':>7}" for name in models))
    for c in classes:
        tta = (m["per_class_iou_tta"] or {} for m in models.values())
        print(
            f"{c:<14}"
            + "".join(
                f"{column(m['per_class_iou'][c], 14)}{column(t.get(c))}"
                for m, t in zip(models.values(), tta)
            )
        )

    Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json_out).write_text(json.dumps(results, indent=2))
    curves = {name: read_history(Path(m["run"]) / "metrics.csv") for name, m in models.items()}
    training_curves(curves, Path(args.plot))
    print(f"\nwrote {args.json_out} and {args.plot}")


if __name__ == "__main__":
    main()
