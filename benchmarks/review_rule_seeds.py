"""Which suspect score finds wrong masks, over many corruptions? The fold models of an earlier
`review_label_errors.py --folds K` run give every CamVid training image its out-of-fold,
flip-averaged probabilities once (cached in --work, float16); then, for each of --seeds, 5% of
the masks are corrupted afresh exactly as that benchmark corrupts them, and the training images
are ranked by two image scores:
  review      the review's rule (seglab.reporting.label_scores): the highest region score, a
              region's contradicted share of the image times the model's mean confidence there
  share only  the rule before it: the highest region's contradicted share alone
It prints, per seed and in total, how many corrupted masks each ranking puts in its top 5% and
top 10% (a random ranking: 5% and 10% of them).

An image's probabilities do not depend on its own mask (the model that scores it never saw it),
so each seed is a fresh test of the rule with no model run again; the earlier run's own
corruption is left only in the other images its models trained on.

    .venv/bin/python benchmarks/review_rule_seeds.py --models runs/review_label_errors_folds \\
        --seeds 11-40 [--work runs/review_rule_seeds]
        [--json benchmarks/results/review_rule_seeds.json]

Run it from the folder the fold run ran in: the checkpoints name their data by a relative path,
which says which images each model saw.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image
from review_label_errors import CAMVID, KINDS, corrupted_masks, found_in_top  # beside this
from tqdm import tqdm

from seglab.data.classes import CAMVID_VOID
from seglab.data.info import DatasetInfo
from seglab.engine.machine import machine_description
from seglab.reporting.label_scores import disagreement, disagreement_regions, image_score
from seglab.reporting.review import out_of_fold_probabilities

IGNORE = DatasetInfo.ignore_index  # what seglab reads CamVid's void as (the default)
RULES = ("review", "share only")


def cached_probabilities(models: Path, work: Path) -> dict[str, Path]:
    """{frame file name: its .npz of out-of-fold probabilities}, computed where missing."""
    checkpoints = sorted(models.glob("fold*/best.pt"))
    if not checkpoints:
        raise SystemExit(f"--models {models} holds no fold*/best.pt")
    work.mkdir(parents=True, exist_ok=True)
    files = {p.name: work / f"{p.stem}.npz" for p in (CAMVID / "train").glob("*.png")}
    if all(f.exists() for f in files.values()):
        return files
    found = out_of_fold_probabilities(checkpoints, str(models / "data"), "train")
    for key, probs, trained in tqdm(found, total=len(files), desc="probabilities"):
        if trained is not False:
            raise SystemExit(f"{key} has no model that did not train on it")
        np.savez(files[Path(key).name], probs=probs.astype(np.float16))
    return files


def scores(probs: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """Each rule's score of the image whose raw CamVid ``mask`` is given."""
    mask = np.where(mask == CAMVID_VOID, IGNORE, mask).astype(np.int64)
    weights = disagreement(probs, mask, IGNORE)
    regions, labels = disagreement_regions(probs, mask, IGNORE, weights=weights)
    shares = np.bincount(labels.ravel(), weights=weights.ravel())[1:]  # per region
    labelled = max(int((mask != IGNORE).sum()), 1)
    return {"review": image_score(regions), "share only": float(shares.max(initial=0) / labelled)}


def seeds_option(text: str) -> list[int]:
    first, _, last = text.partition("-")
    return list(range(int(first), int(last or first) + 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", required=True, help="an earlier --folds run's --work")
    parser.add_argument("--seeds", type=seeds_option, default="11-40", help="e.g. 11-40")
    parser.add_argument("--share", type=float, default=0.05)
    parser.add_argument("--work", default="runs/review_rule_seeds")
    parser.add_argument("--json", default="benchmarks/results/review_rule_seeds.json")
    args = parser.parse_args()
    files = cached_probabilities(Path(args.models), Path(args.work))

    def load(name: str) -> np.ndarray:
        return np.load(files[name])["probs"].astype(np.float32)

    clean = {
        name: scores(load(name), np.array(Image.open(CAMVID / "trainannot" / name)))
        for name in tqdm(sorted(files), desc="clean masks")
    }
    per_seed, totals = [], {rule: {"top 5%": 0, "top 10%": 0, "of": 0} for rule in RULES}
    for seed in args.seeds:
        corrupted = corrupted_masks(args.share, seed)
        wrong = {name: scores(load(name), mask) for name, (mask, _) in corrupted.items()}
        row = {
            "seed": seed,
            "kinds": {k: sum(v == k for _, v in corrupted.values()) for k in KINDS},
        }
        for rule in RULES:
            score = {name: s[rule] for name, s in clean.items()} | {
                name: s[rule] for name, s in wrong.items()
            }
            order = sorted(score, key=lambda name: -score[name])
            row[rule] = {"ranks": sorted(order.index(name) + 1 for name in corrupted)}
            for top in (5, 10):
                found = found_in_top(order, corrupted, top / 100)
                row[rule][f"top {top}%"] = found
                totals[rule][f"top {top}%"] += found
            totals[rule]["of"] += len(corrupted)
        per_seed.append(row)
        print(
            f"seed {seed}: {len(corrupted)} corrupted; "
            + "; ".join(
                f"{r}: top 5% {row[r]['top 5%']}, top 10% {row[r]['top 10%']}" for r in RULES
            ),
            flush=True,
        )
    for rule, t in totals.items():
        print(
            f"{rule}: top 5% {t['top 5%']}/{t['of']} ({100 * t['top 5%'] / t['of']:.1f}%), "
            f"top 10% {t['top 10%']}/{t['of']} ({100 * t['top 10%'] / t['of']:.1f}%)"
        )
    result = {
        "totals": totals,
        "seeds": per_seed,
        "models": args.models,
        "share": args.share,
        "machine": machine_description(),
    }
    Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
