"""Does `seglab data review` find wrong masks? CamVid's training masks with 5% of them corrupted
in the ways people get labels wrong, a model trained on that corrupted set with the default
command, then the review's ranking of the training images: the share of the corrupted ones in
its top 5% and top 10% (a random ranking finds 5% and 10% of them there).

    .venv/bin/python benchmarks/review_label_errors.py [--time-budget 8m | --iterations N]
        [--share 0.05]
        [--seed 0] [--folds K | --models DIR] [--work runs/review_label_errors]
        [--json benchmarks/results/review_label_errors.json]

With --folds K the review gets the K fold models of a cross-validation over train+val (`seglab
train --fold I/K`, each as long as --time-budget or --iterations says): each training image is
then scored by the model that did not see it (out of fold), as `compare --folds` runs would give
it. Without it, one model trained on the training split reviews the images it was trained on.
With --models DIR (the --work of an earlier --folds run) no model is trained: that run's fold
models review masks corrupted afresh by --seed. Each image is still scored by a model that never
saw it, so its score does not depend on which masks that run corrupted; the only trace of them is
in the other images those models trained on. Run it from the folder the earlier run ran in (its
checkpoints name their data by a relative path, which says which images each model saw).

The corruptions (one per chosen mask, taking turns):
  relabel  a region of a class (its largest connected component between 0.5% and 5% of the
           image) given the class that surrounds it most (a wall labelled as the pavement beside)
  erase    an object (car, pedestrian, cyclist, sign, pole, fence) painted as what surrounds it
  shift    an object moved by 8 pixels right and down (a polygon drawn off its object)
A corruption that changes fewer than 0.5% of a mask's pixels is replaced by the next kind.
The images and the validation split are linked from ../shared/datasets/camvid, never copied.
Run it alone when the training has a wall-clock budget; --iterations N makes the models the
same whatever else runs.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import subprocess
import sys
from collections.abc import Collection
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from seglab.data.classes import CAMVID_CLASSES, CAMVID_VOID
from seglab.engine.machine import machine_description

CAMVID = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "camvid"
OBJECTS = tuple(
    CAMVID_CLASSES.index(c)
    for c in ("Car", "Pedestrian", "Bicyclist", "SignSymbol", "Pole", "Fence")
)
KINDS = ("relabel", "erase", "shift")
SHIFT = 8
MIN_CHANGE = 0.005  # share of a mask's pixels a corruption must change


def components(mask: np.ndarray, classes: tuple[int, ...], low: float, high: float) -> list:
    """(class, component mask) of every connected component of ``classes`` whose area is
    between ``low`` and ``high`` of the image, largest first."""
    found = []
    for c in classes:
        count, labels, stats, _ = cv2.connectedComponentsWithStats((mask == c).astype(np.uint8))
        for i in range(1, count):
            area = stats[i, cv2.CC_STAT_AREA] / mask.size
            if low <= area <= high:
                found.append((area, c, labels == i))
    return [(c, region) for _, c, region in sorted(found, key=lambda f: -f[0])]


def surrounding_class(mask: np.ndarray, region: np.ndarray, other_than: int) -> int | None:
    """The commonest class in a 5-pixel ring around ``region`` (not void, not ``other_than``)."""
    ring = cv2.dilate(region.astype(np.uint8), np.ones((11, 11), np.uint8)).astype(bool) & ~region
    values = mask[ring]
    values = values[(values != CAMVID_VOID) & (values != other_than)]
    return int(np.bincount(values).argmax()) if values.size else None


def corrupt(mask: np.ndarray, kind: str) -> np.ndarray | None:
    """``mask`` with one ``kind`` of error, or None when the mask has no region for it."""
    classes = OBJECTS if kind in ("erase", "shift") else tuple(range(len(CAMVID_CLASSES)))
    for c, region in components(mask, classes, 0.005 if kind == "relabel" else 0.002, 0.05):
        fill = surrounding_class(mask, region, c)
        if fill is None:
            continue
        out = mask.copy()
        out[region] = fill
        if kind == "shift":
            moved = np.zeros_like(region)
            moved[SHIFT:, SHIFT:] = region[:-SHIFT, :-SHIFT]
            out[moved] = c
        if (out != mask).mean() >= MIN_CHANGE:
            return out
    return None


def corrupted_masks(share: float, seed: int) -> dict[str, tuple[np.ndarray, str]]:
    """{frame file name: (its corrupted mask, the kind)} for ``share`` of CamVid's training
    frames, drawn by ``seed``."""
    frames = sorted(p.name for p in (CAMVID / "train").glob("*.png"))
    chosen = set(random.Random(seed).sample(frames, round(share * len(frames))))
    corrupted: dict[str, tuple[np.ndarray, str]] = {}
    for name in sorted(chosen):
        mask = np.array(Image.open(CAMVID / "trainannot" / name))
        first = len(corrupted) % len(KINDS)  # the kinds take turns
        for kind in KINDS[first:] + KINDS[:first]:
            wrong = corrupt(mask, kind)
            if wrong is not None:
                corrupted[name] = (wrong, kind)
                break
    return corrupted


def build(work: Path, share: float, seed: int) -> dict[str, str]:
    """A CamVid layout in ``work/data``: images linked, masks of ``share`` of the training
    frames corrupted. Returns {frame stem: corruption kind}."""
    data = work / "data"
    for split in ("train", "val"):
        (data / split).mkdir(parents=True, exist_ok=True)
        (data / f"{split}annot").mkdir(parents=True, exist_ok=True)
    corrupted = corrupted_masks(share, seed)
    for name in sorted(p.name for p in (CAMVID / "train").glob("*.png")):
        (data / "train" / name).symlink_to(CAMVID / "train" / name)
        if name in corrupted:
            Image.fromarray(corrupted[name][0]).save(data / "trainannot" / name)
        else:
            (data / "trainannot" / name).symlink_to(CAMVID / "trainannot" / name)
    for name in sorted(p.name for p in (CAMVID / "val").glob("*.png")):
        (data / "val" / name).symlink_to(CAMVID / "val" / name)
        (data / "valannot" / name).symlink_to(CAMVID / "valannot" / name)
    return {Path(name).stem: kind for name, (_, kind) in corrupted.items()}


def seglab(*args: str) -> None:
    command = [sys.executable, "-m", "seglab", *args]
    print("$", " ".join(command), flush=True)
    subprocess.run(command, check=True)


def ranked_stems(review: dict) -> list[str]:
    """The training images in the review's order, most suspect first."""
    return [Path(item["image"]).stem for item in review["suspects"] if item["split"] == "train"]


def length_options(args: argparse.Namespace) -> tuple[str, str]:
    if args.iterations is not None:
        return ("--iterations", str(args.iterations))
    return ("--time-budget", args.time_budget)


def found_in_top(ranking: list[str], corrupted: Collection[str], share: float) -> int:
    """How many of ``corrupted`` the first ``share`` of ``ranking`` holds."""
    return len(set(ranking[: round(share * len(ranking))]) & set(corrupted))


def run_summary(run: Path) -> dict:
    """A trained model's record: its best validation mIoU (best.pt's), the last one (the model
    at its last step) and the steps it ran."""
    metrics = json.loads((run / "metrics.json").read_text())
    with open(run / "metrics.csv", newline="") as rows:
        validated = [row for row in csv.DictReader(rows) if row["val_miou"]]
    return {
        "run": str(run),
        "miou": metrics["miou"],
        "final_miou": float(validated[-1]["val_miou"]),
        "steps": int(validated[-1]["step"]),
    }


def earlier_models(models: Path) -> list[str]:
    """The fold runs of an earlier --folds run's --work."""
    runs = sorted(str(p.parent) for p in models.glob("fold*/best.pt"))
    if not runs:
        sys.exit(f"--models {models} holds no fold*/best.pt")
    return runs


def trained_models(args: argparse.Namespace, data: str) -> list[str]:
    """One model on ``data``'s train split, or --folds K fold models over train+val."""
    work = Path(args.work)
    if args.folds == 0:
        runs, folds = [str(work / "run")], [()]
    else:
        runs = [str(work / f"fold{i}") for i in range(1, args.folds + 1)]
        folds = [("--fold", f"{i}/{args.folds}") for i in range(1, args.folds + 1)]
    for run, fold in zip(runs, folds):
        seglab("train", "--data", data, *fold, *length_options(args), "--no-progress", "--out", run)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--time-budget", default="8m")
    length.add_argument("--iterations", type=int)
    parser.add_argument("--share", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    models = parser.add_mutually_exclusive_group()
    models.add_argument(
        "--folds", type=int, default=0, metavar="K", help="train K fold models (out of fold)"
    )
    models.add_argument(
        "--models", metavar="DIR", help="review with an earlier --folds run's models"
    )
    parser.add_argument("--work", default="runs/review_label_errors")
    parser.add_argument("--json", default="benchmarks/results/review_label_errors.json")
    args = parser.parse_args()
    work = Path(args.work)
    if work.exists():
        sys.exit(f"{work} exists: give another --work, or delete it")
    corrupted = build(work, args.share, args.seed)
    print(f"corrupted {len(corrupted)} masks: {sorted(corrupted.values())}")
    data = str(work / "data")
    runs = earlier_models(Path(args.models)) if args.models else trained_models(args, data)
    seglab(
        "data",
        "review",
        "--checkpoint",
        *(f"{run}/best.pt" for run in runs),
        "--data",
        data,
        "--split",
        "train",
        "--out",
        str(work / "review"),
    )
    review = json.loads((work / "review" / "review.json").read_text())
    ranking = ranked_stems(review)
    rows = {}
    for top in (0.05, 0.10):
        found = found_in_top(ranking, corrupted, top)
        rows[f"top {100 * top:.0f}%"] = {
            "found": found,
            "of": len(corrupted),
            "share": found / len(corrupted),
        }
    by_kind = {k: [ranking.index(s) + 1 for s, v in corrupted.items() if v == k] for k in KINDS}
    result = {
        "rows": rows,
        "ranks_by_kind": by_kind,
        "images": len(ranking),
        "scored_out_of_fold": sum(1 for item in review["suspects"] if item["trained_on"] is False),
        "models": [run_summary(Path(run)) for run in runs],
        "length": None if args.models else " ".join(length_options(args)),
        "seed": args.seed,
        "folds": len(runs) if args.models else args.folds,
        "models_from": args.models,
        "machine": machine_description(),
    }
    for name, row in rows.items():
        print(f"{name}: {row['found']}/{row['of']} corrupted masks ({100 * row['share']:.0f}%)")
    print("ranks by kind:", by_kind)
    Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
