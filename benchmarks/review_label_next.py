"""Does `seglab data review --unlabelled` choose better frames to label than chance? CamVid's
held-out-sequence split: the pool is the 367 frames of sequences 0001TP and 0016E5 (CamVid's
train and val), the score is mIoU on sequence 0006R0 (101 frames no model trains on). Each seed
starts from --start frames of the pool drawn at random, trains, then adds --add frames a round,
--rounds times, in two arms from the same start:
  ranked  the first --add of the review's "label next" list (the previous round's model run on
          the rest of the pool: uncertainty spread by encoder features)
  random  --add frames of the rest drawn at random
Every model trains from scratch for the same --iterations (the round's budget, whatever its
frame count) with the default command otherwise; round 0 is shared by both arms. A model is
scored as it ends (its last validation): best.pt is chosen by validations on the scored sequence
itself, so its mIoU would be picked on the test set.

    .venv/bin/python benchmarks/review_label_next.py [--iterations 300] [--start 50] [--add 50]
        [--rounds 3] [--seeds 2] [--work runs/review_label_next]
        [--json benchmarks/results/review_label_next.json]

Resumable: a round whose run finished (its metrics.json exists) and a choice already written
(picked.json) are reused, and a run stopped part way goes on from its last.pt (`seglab train
--resume`), so the benchmark can be stopped and continued, in another session too.
The models do not depend on the machine's load (fixed steps); the wall time does. Images and
masks are linked from ../shared/datasets/camvid, never copied.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
from pathlib import Path

from review_label_errors import run_summary, seglab  # beside this script

from seglab.engine.machine import machine_description

CAMVID = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "camvid"
HELD_OUT = "0006R0"  # the sequence scored, never trained on
ARMS = ("ranked", "random")


def camvid_frames() -> tuple[list[Path], list[Path]]:
    """(pool, held out): image paths of the pool's sequences and of HELD_OUT."""
    frames = sorted(p for split in ("train", "val") for p in (CAMVID / split).glob("*.png"))
    pool = [p for p in frames if not p.name.startswith(HELD_OUT)]
    held_out = [p for p in frames if p.name.startswith(HELD_OUT)]
    return pool, held_out


def mask_of(image: Path) -> Path:
    return image.parent.parent / f"{image.parent.name}annot" / image.name


def write_layout(folder: Path, labelled: list[Path], held_out: list[Path]) -> None:
    """A CamVid layout in ``folder``: train = ``labelled``, val = ``held_out`` (links)."""
    for split, images in (("train", labelled), ("val", held_out)):
        for sub in (split, f"{split}annot"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        for image in images:
            for link, target in (
                (folder / split, image),
                (folder / f"{split}annot", mask_of(image)),
            ):
                if not (link / image.name).exists():
                    (link / image.name).symlink_to(target)


def write_unlabelled(folder: Path, images: list[Path]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for image in images:
        if not (folder / image.name).exists():
            (folder / image.name).symlink_to(image)


def trained(folder: Path, labelled: list[Path], held_out: list[Path], iterations: int) -> dict:
    """The round's model in ``folder``/run, trained on ``labelled`` (reused when finished):
    its held-out mIoU and steps."""
    run = folder / "run"
    if (run / "last.pt").exists() and not (run / "metrics.json").exists():
        seglab("train", "--resume", str(run), "--no-progress")  # stopped: go on where it was
    elif not (run / "metrics.json").exists():
        write_layout(folder / "data", labelled, held_out)
        seglab(
            "train", "--data", str(folder / "data"), "--iterations", str(iterations),
            "--no-progress", "--out", str(run),
        )  # fmt: skip
    return {**run_summary(run), "frames": len(labelled)}


def ranked_pick(folder: Path, previous: Path, rest: list[Path], count: int) -> list[Path]:
    """The first ``count`` of ``rest`` in the order the review of ``previous``'s model gives."""
    review = folder / "review"
    if not (review / "review.json").exists():
        write_unlabelled(folder / "unlabelled", rest)
        seglab(
            "data", "review", "--checkpoint", str(previous / "run" / "best.pt"),
            "--data", str(previous / "data"), "--split", "train",
            "--unlabelled", str(folder / "unlabelled"), "--top", "0", "--no-progress",
            "--out", str(review),
        )  # fmt: skip
    order = [
        Path(c["image"]).name
        for c in json.loads((review / "review.json").read_text())["label_next"]
    ]
    by_name = {p.name: p for p in rest}
    return [by_name[name] for name in order[:count]]


def pick(arm: str, folder: Path, previous: Path, rest: list[Path], count: int, seed: int):
    """The frames ``arm`` adds this round, written to ``folder``/picked.json (reused)."""
    record = folder / "picked.json"
    if record.exists():
        names = set(json.loads(record.read_text()))
        return [p for p in rest if p.name in names]
    if arm == "ranked":
        chosen = ranked_pick(folder, previous, rest, count)
    else:
        chosen = random.Random(seed).sample(rest, count)
    folder.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps([p.name for p in chosen], indent=1))
    return chosen


def one_seed(args: argparse.Namespace, seed: int, pool: list[Path], held_out: list[Path]) -> dict:
    """{arm: [round 0, round 1, ...]} of one seed's runs."""
    work = Path(args.work) / f"seed{seed}"
    start = random.Random(seed).sample(pool, args.start)
    first = work / "round0"
    shared = trained(first, start, held_out, args.iterations)
    results = {arm: [shared] for arm in ARMS}
    for arm in ARMS:
        labelled, previous = list(start), first
        for round_ in range(1, args.rounds + 1):
            folder = work / arm / f"round{round_}"
            taken = set(labelled)
            rest = [p for p in pool if p not in taken]
            labelled += pick(arm, folder, previous, rest, args.add, 1000 * seed + round_)
            results[arm].append(trained(folder, labelled, held_out, args.iterations))
            previous = folder
    return results


def summary(by_seed: dict[int, dict]) -> dict:
    """Per arm and round: the seeds' mean mIoU and spread (max - min); per round, ranked - random
    and whether it is larger than either arm's spread."""
    rounds = len(next(iter(by_seed.values()))["ranked"])
    table = {}
    for r in range(rounds):
        row = {}
        for arm in ARMS:
            scores = [100 * seed[arm][r]["final_miou"] for seed in by_seed.values()]
            row[arm] = {"mean": statistics.fmean(scores), "spread": max(scores) - min(scores)}
        gap = row["ranked"]["mean"] - row["random"]["mean"]
        spread = max(row[arm]["spread"] for arm in ARMS)
        row["ranked_minus_random"] = gap
        row["beyond_seed_spread"] = gap > spread if r else None
        table[f"round {r}"] = row
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--start", type=int, default=50)
    parser.add_argument("--add", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--work", default="runs/review_label_next")
    parser.add_argument("--json", default="benchmarks/results/review_label_next.json")
    args = parser.parse_args()
    pool, held_out = camvid_frames()
    if args.start + args.rounds * args.add > len(pool):
        sys.exit(f"{args.start} + {args.rounds} x {args.add} frames: the pool has {len(pool)}")
    by_seed = {seed: one_seed(args, seed, pool, held_out) for seed in range(args.seeds)}
    table = summary(by_seed)
    for name, row in table.items():
        cells = ", ".join(
            f"{arm} {row[arm]['mean']:.2f} (spread {row[arm]['spread']:.2f})" for arm in ARMS
        )
        print(f"{name}: {cells}; ranked - random {row['ranked_minus_random']:+.2f}")
    gain = table[f"round {args.rounds}"]["random"]["mean"] - table["round 0"]["random"]["mean"]
    print(
        f"random picks, round {args.rounds} - round 0: {gain:+.2f} mIoU"
        + (
            ""
            if gain > table["round 0"]["random"]["spread"]
            else " (no more than the seeds' spread: the --iterations budget, not the labels, "
            "limits these models, so the arms cannot differ by their picks; give more steps)"
        )
    )
    result = {
        "summary": table,
        "random_gain_over_rounds": gain,
        "runs": by_seed,
        "settings": {k: getattr(args, k) for k in ("iterations", "start", "add", "rounds")},
        "machine": machine_description(),
    }
    Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
