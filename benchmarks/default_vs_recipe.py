"""The default command against a hand-tuned recipe under the same wall-clock budget: does
``seglab train --data DIR`` (the recipe its dataset's fingerprint chooses) reach what a person who
knows the options reaches? Each run is its own ``seglab train`` process, one after the other (they
would share the CPU otherwise); run nothing else beside it.

    .venv/bin/python benchmarks/default_vs_recipe.py [--time-budget 8m] [--cases isbi,camvid]
        [--out runs/default_vs_recipe]

Cases (data in ../shared/datasets):
  isbi    the ISBI 2012 membrane stack; the hand recipe is the one issue 22 reports (crops of
          256x256, class weights, a full-resolution skip, 2000 steps, validation every 100 epochs)
  camvid  CamVid's held-out-sequence split (configs/data/camvid_heldout_sequence.yaml); the hand
          recipe is configs/camvid_unet_mobilenet_v2.yaml
A finished run already in --out is reused (delete its folder to train it again). Both runs of a
case get the same --time-budget (the default run only that: it then trains until
the budget ends). Scores: best.pt's validation mIoU and the smallest class's IoU, as training
recorded them (fp32, full resolution), with the steps run.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

from seglab.engine.machine import machine_description

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
HAND = {  # exactly these options and the plain defaults: --auto none
    "isbi": [
        "--auto",
        "none",
        "--crop-size",
        "256x256",
        "--iterations",
        "2000",
        "--val-interval",
        "100",
        "--class-weights",
        "sqrt_median_frequency",
        "--full-res-skip",
        "16",
    ],
    "camvid": ["--config", "configs/camvid_unet_mobilenet_v2.yaml"],  # a file: exactly it
}
DATA = {
    "isbi": str(SHARED / "isbi2012-membrane"),
    "camvid": "configs/data/camvid_heldout_sequence.yaml",
}


def run(case: str, name: str, flags: list[str], budget: str, out: Path) -> dict:
    folder = out / f"{case}-{name}"
    command = [sys.executable, "-m", "seglab", "train", "--data", DATA[case], *flags]
    command += ["--time-budget", budget, "--no-progress", "--out", str(folder)]
    print("$", shlex.join(command), flush=True)
    if (folder / "metrics.json").is_file():  # finished before: reused (delete it to rerun)
        seconds = float((folder / "metrics.csv").read_text().splitlines()[-1].split(",")[-1])
    else:
        began = time.perf_counter()
        subprocess.run(command, check=True)
        seconds = time.perf_counter() - began
    metrics = json.loads((folder / "metrics.json").read_text())
    rows = (folder / "metrics.csv").read_text().splitlines()[1:]
    validations, last = len(rows), rows[-1].split(",")
    ious = {k: v["iou"] for k, v in metrics["per_class"].items() if v["iou"] is not None}
    rarest = min(ious, key=ious.get)
    return {
        "case": case,
        "run": name,
        "miou": metrics["miou"],
        "lowest_class": f"{rarest} {100 * ious[rarest]:.1f}",
        "steps": int(last[1]),
        "validations": validations,
        "minutes": seconds / 60,
        "degenerate": metrics.get("degenerate"),
        "undertrained": metrics.get("undertrained"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--time-budget", default="8m")
    parser.add_argument("--cases", default="isbi,camvid")
    parser.add_argument("--out", default="runs/default_vs_recipe")
    args = parser.parse_args()
    out = Path(args.out)
    rows = []
    for case in args.cases.split(","):
        rows.append(run(case, "default", [], args.time_budget, out))
        rows.append(run(case, "hand", HAND[case], args.time_budget, out))
    machine = machine_description()
    print(f"\nmachine: {machine['cpu']}, {machine['cores']} cores, flags {machine['flags']}")
    print("| case | run | val mIoU | lowest class IoU | steps | wall min | flags |")
    print("| --- | --- | ---: | --- | ---: | ---: | --- |")
    for r in rows:
        flags = "; ".join(f for f in (r["degenerate"], r["undertrained"]) if f) or "-"
        print(
            f"| {r['case']} | {r['run']} | {100 * r['miou']:.2f} | {r['lowest_class']} | "
            f"{r['steps']} | {r['minutes']:.1f} | {flags} |"
        )
    (out / "results.json").write_text(json.dumps({"machine": machine, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
