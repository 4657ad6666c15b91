"""Reproducible train/val splits and cross-validation folds: by image, or by group (a patient, a
video sequence) so that no group is in two splits and validation measures what carries to groups
never seen in training."""

from __future__ import annotations

import difflib
import random
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence

from seglab.data.files import Pair, name_of
from seglab.errors import SeglabError


def split_by_ratio(pairs: list[Pair], val_ratio: float, seed: int) -> dict[str, list[Pair]]:
    """A reproducible train/val split: the same files and seed give the same split anywhere."""
    complete = sorted((p for p in pairs if p[0] and p[1]), key=lambda p: p[0].name)
    order = list(range(len(complete)))
    random.Random(seed).shuffle(order)
    n_val = round(len(complete) * val_ratio) if complete else 0
    val = {*order[:n_val]}
    orphans = [p for p in pairs if not (p[0] and p[1])]
    return {
        "train": [p for i, p in enumerate(complete) if i not in val] + orphans,
        "val": [p for i, p in enumerate(complete) if i in val],
    }


def group_of(pair: Pair, pattern: re.Pattern[str]) -> str | None:
    """The pair's group: the pattern's capture group in its file name (None: no match)."""
    match = pattern.search(name_of(pair).name)
    return match.group(1) if match else None


def split_by_groups(
    splits: dict[str, list[Pair]],
    pattern: re.Pattern[str],
    val_groups: Iterable[str],
    val_ratio: float,
    seed: int,
    where: str,
) -> dict[str, list[Pair]]:
    """Train and val pooled and split again by group: the ``val_groups`` named, or a seeded
    ``val_ratio`` of the groups. Other splits (test) stay as they are; files whose name has no
    group stay in train, where the data check reports them."""
    by_group: dict[str, list[Pair]] = defaultdict(list)
    ungrouped = []
    for pair in splits.get("train", []) + splits.get("val", []):
        group = group_of(pair, pattern)
        (ungrouped if group is None else by_group[group]).append(pair)
    names = sorted(by_group)
    val = set(val_groups) or choose_val_groups(names, val_ratio, seed)
    unknown = sorted(val - by_group.keys())
    if unknown:
        hint = _hint(unknown[0], names)
        raise SeglabError(f"{where}: val_groups: no file is in group {unknown[0]!r}{hint}")
    resplit = {
        "train": [p for g in names if g not in val for p in by_group[g]] + ungrouped,
        "val": [p for g in names if g in val for p in by_group[g]],
    }
    return resplit | {s: pairs for s, pairs in splits.items() if s not in resplit}


def choose_val_groups(names: list[str], val_ratio: float, seed: int) -> set[str]:
    """A seeded ``val_ratio`` of the groups, at least one and never all (when there are two)."""
    order = list(names)
    random.Random(seed).shuffle(order)
    n_val = min(max(1, round(len(order) * val_ratio)), len(order) - 1)
    return set(order[:n_val])


def _hint(group: str, names: list[str]) -> str:
    close = difflib.get_close_matches(group, names, n=1, cutoff=0.6)
    if close:
        return f"; did you mean {close[0]}?"
    shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
    return f" (the groups are {shown or 'none: no file name matches groups'})"


def assign_folds(groups: Sequence[str | None], folds: int, seed: int = 0) -> list[int]:
    """Each item's fold (0 .. folds-1) for K-fold cross-validation: items of one group share a
    fold, so validation never sees a group trained on; an item whose group is None is a group
    of its own. Balanced: the groups are shuffled (seeded), then the largest go first, each to
    the fold with the fewest items so far."""
    members: dict[str | int, list[int]] = defaultdict(list)
    for index, group in enumerate(groups):
        members[index if group is None else group].append(index)
    named = sorted(k for k in members if isinstance(k, str))
    order: list[str | int] = [*named, *(k for k in members if isinstance(k, int))]
    if len(order) < folds:
        what = "groups" if named else "items"
        raise SeglabError(f"{folds} folds need at least {folds} {what}; there are {len(order)}")
    random.Random(seed).shuffle(order)
    order.sort(key=lambda k: -len(members[k]))  # stable: equal sizes keep the shuffled order
    sizes = [0] * folds
    assigned = [0] * len(groups)
    for key in order:
        fold = sizes.index(min(sizes))
        sizes[fold] += len(members[key])
        for index in members[key]:
            assigned[index] = fold
    return assigned
