"""Which intra-op threads and loader workers are fastest on this machine, quiet and beside one busy
process: the measurements behind the rule of seglab.engine.machine.choose_threads.

    .venv/bin/python benchmarks/threads.py [--repeats 3] [--json benchmarks/results/threads.json]

- Training: a fixed short run through seglab's own loop (seglab.engine.train.train): MobileNetV2
  U-Net from random weights, synthetic scenes of 192x256 (rendered by the loader, as a real
  dataset's images are decoded there), 128x128 crops with the default augmentations, batch 8,
  12 steps, fp32 or what precision auto picks, then its one validation (32 images); the wall time
  of the whole call, set-up included.
- Evaluation: seglab.engine.evaluate.evaluate_split of that model on 48 images of 192x256, batch 8.
- Each for threads in {1, 2} x workers in {0, 1, 2}, and "auto" (what choose_threads picks then),
  quiet and with one busy process beside it (``python -c 'while True: pass'``); medians of
  ``--repeats``, the configurations in a new order each repeat so a drift in the machine's load
  spreads over all of them. The machine (CPU, flags, cores, load) is recorded before.

Run it alone: other processes on the machine are what it measures.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import torch
import yaml

from seglab.config import TrainConfig
from seglab.data.dataset import open_data
from seglab.engine.checkpoint import load_model
from seglab.engine.evaluate import EvalOptions, evaluate_split
from seglab.engine.machine import cpu_load, describe_machine, machine_description
from seglab.engine.segmenter import TorchSegmenter
from seglab.engine.train import train

SETTINGS = [(t, w) for t in (1, 2) for w in (0, 1, 2)] + [("auto", "auto")]
DATA = "layout: synthetic\nsize: [192, 256]\ntrain: 96\nval: {val}\n"


def time_training(folder: Path, data: str, threads, workers, steps: int) -> tuple[float, str]:
    """Seconds of one short training run, and the threads and workers it reports using."""
    config = TrainConfig(
        data=data,
        encoder="mobilenet_v2",
        weights="none",
        crop_size=(128, 128),
        batch_size=8,
        iterations=steps,
        threads=threads,
        workers=workers,
        device="cpu",
        progress=False,
        out=str(folder),
    )
    start = time.perf_counter()
    train(config, log=lambda _: None)
    seconds = time.perf_counter() - start
    resolved = yaml.safe_load((folder / "config.yaml").read_text())["resolved"]
    return seconds, resolved["threads_reason"]


def time_evaluation(checkpoint: Path, data: str, threads, workers) -> float:
    model, record = load_model(checkpoint)
    segmenter = TorchSegmenter(model, record.dataset, channels_last=True)
    options = EvalOptions(batch_size=8, workers=workers, threads=threads)
    start = time.perf_counter()
    evaluate_split(segmenter, open_data(data), "val", options, progress=False)
    return time.perf_counter() - start


def busy_process() -> subprocess.Popen:
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    time.sleep(0.5)  # spinning before anything is timed
    return spinner


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--loads", default="quiet,busy", help="quiet, busy or both (default)")
    parser.add_argument("--json", default="benchmarks/results/threads.json")
    args = parser.parse_args()
    loads = args.loads.split(",")

    machine = machine_description()
    print(f"machine: {describe_machine(machine)}")
    times: dict[tuple[str, str, str], list[float]] = {}
    used: dict[str, str] = {}  # what auto chose for training, by load
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        train_data, eval_data = Path(tmp) / "train.yaml", Path(tmp) / "eval.yaml"
        train_data.write_text(DATA.format(val=32))
        eval_data.write_text(DATA.format(val=48))
        warm = Path(tmp) / "warm-up"  # the first run pays one-off costs; its model is evaluated
        time_training(warm, str(train_data), 2, 0, 2)
        checkpoint = warm / "best.pt"
        run = 0
        for repeat in range(args.repeats):
            for load in loads:
                spinner = busy_process() if load == "busy" else None
                try:
                    order = SETTINGS.copy()  # a new order each repeat: drift spreads evenly
                    random.Random(repeat).shuffle(order)
                    for threads, workers in order:
                        run += 1
                        key = (load, str(threads), str(workers))
                        seconds, said = time_training(
                            Path(tmp) / f"run-{run}", str(train_data), threads, workers, args.steps
                        )
                        times.setdefault(("training", *key), []).append(seconds)
                        if threads == "auto":
                            used[load] = said
                        times.setdefault(("evaluation", *key), []).append(
                            time_evaluation(checkpoint, str(eval_data), threads, workers)
                        )
                finally:
                    if spinner is not None:
                        spinner.kill()
                        spinner.wait()
            print(f"repeat {repeat + 1}/{args.repeats} done, {time.perf_counter() - started:.0f} s")

    rows = []
    for (role, load, threads, workers), seconds in times.items():
        rows.append(
            {
                "role": role,
                "load": load,
                "threads": threads,
                "workers": workers,
                "median_s": round(statistics.median(seconds), 2),
                "seconds": [round(s, 2) for s in seconds],
            }
        )
    print(f"\n{'role':<11}{'load':<7}{'threads':>8}{'workers':>8}{'median s':>10}  runs")
    for row in sorted(rows, key=lambda r: (r["role"] != "training", r["load"], r["median_s"])):
        runs = " ".join(f"{s:.1f}" for s in row["seconds"])
        print(
            f"{row['role']:<11}{row['load']:<7}{row['threads']:>8}{row['workers']:>8}"
            f"{row['median_s']:>10.2f}  {runs}"
        )
    for load, said in used.items():
        print(f"auto chose, {load}: {said}")
    record = {
        "date": date.today().isoformat(),
        "command": " ".join(["benchmarks/threads.py", *sys.argv[1:]]),
        "machine": machine,
        "load_after": cpu_load(),
        "steps": args.steps,
        "repeats": args.repeats,
        "auto_chose": used,
        "torch": torch.__version__,
        "rows": rows,
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(record, indent=2))
    print(f"written to {args.json}")


if __name__ == "__main__":
    main()
