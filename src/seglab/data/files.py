"""Matching files into (image, mask) pairs: by stem across two folders, or by the names a split
list gives. Every file that cannot be matched is a problem line naming it."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from seglab.data.io import IMAGE_SUFFIXES

Pair = tuple[Path | None, Path | None]  # (image, mask); None where one has no partner


def files_by_stem(folder: Path, problems: list[str]) -> dict[str, Path]:
    """The image files of a folder by stem; a missing folder or a repeated stem is a problem."""
    if not folder.is_dir():
        problems.append(f"{folder}: folder missing")
        return {}
    by_stem: dict[str, list[Path]] = defaultdict(list)
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
            by_stem[p.stem].append(p)
    for stem, paths in by_stem.items():
        if len(paths) > 1:
            problems.append(f"{paths[1]}: duplicate stem {stem!r} (also {paths[0].name})")
    return {stem: paths[0] for stem, paths in by_stem.items()}


def match_by_stem(image_dir: Path, mask_dir: Path, problems: list[str]) -> list[Pair]:
    return pair_up(files_by_stem(image_dir, problems), files_by_stem(mask_dir, problems), problems)


def pair_up(images: dict[str, Path], masks: dict[str, Path], problems: list[str]) -> list[Pair]:
    """One pair per stem, sorted; a file without its partner is a problem (and a half pair)."""
    pairs: list[Pair] = []
    for stem in sorted(images.keys() | masks.keys()):
        image, mask = images.get(stem), masks.get(stem)
        if mask is None:
            problems.append(f"{image}: image without a mask")
        if image is None:
            problems.append(f"{mask}: mask without an image")
        pairs.append((image, mask))
    return pairs


def stem_of(pair: Pair) -> str:
    return (pair[0] or pair[1]).stem  # type: ignore[union-attr]


def name_of(pair: Pair) -> Path:
    """The file that names a pair: its image, or its mask where the image is missing."""
    return pair[0] or pair[1]  # type: ignore[return-value]


def pairs_from_list(listing: Path, pool: dict[str, Pair], problems: list[str]) -> list[Pair]:
    """The pairs a split list names, one a line (a stem or a file name; VOC ImageSets and the
    SegNet CamVid lists both read). A name with no pair, or half a pair, in ``pool`` is a
    problem; files no list names are no concern of the lists."""
    pairs = []
    for number, line in enumerate(listing.read_text().splitlines(), start=1):
        stem = listed_stem(line)
        if stem is None:
            continue
        pair = pool.get(stem)
        if pair is None:
            problems.append(f"{listing}:{number}: {stem!r} is listed but no image has that name")
            continue
        image, mask = pair
        if mask is None:
            problems.append(f"{image}: image without a mask (listed in {listing.name})")
        if image is None:
            problems.append(f"{mask}: mask without an image (listed in {listing.name})")
        pairs.append(pair)
    return pairs


def listed_stem(line: str) -> str | None:
    """The name on one line of a split list: its first word, without folder or image suffix
    ('/SegNet/CamVid/train/0001TP_006690.png ...' and '0001TP_006690' give the same)."""
    words = line.split("#", 1)[0].split()
    if not words:
        return None
    name = words[0].replace("\\", "/").rsplit("/", 1)[-1]
    stem, dot, suffix = name.rpartition(".")
    return stem if dot and f".{suffix.lower()}" in IMAGE_SUFFIXES else name
