"""Matching files into (image, mask) pairs: by stem across two folders, or by the names a split
list gives. Every file that cannot be matched is a problem line naming it.

Where a dataset stores each image as one file per band (its dataset file's ``bands``), a sample's
band files are found by a pattern (``band_pattern``: ``{stem}_{band}`` for ``tile_001_B02.tif``,
``{band}/{stem}`` for ``B02/tile_001.tif``) and grouped into one :class:`BandStack`, which pairs
with its mask by the sample's stem as any image does."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from seglab.data.io import IMAGE_SUFFIXES, BandStack, band_stack
from seglab.errors import SeglabError

# band_pattern's two usual forms: a band's file beside the others, or in a folder per band
BAND_FILES, BAND_FOLDERS = "{stem}_{band}", "{band}/{stem}"


@dataclass(frozen=True)
class BandSpec:
    """A dataset's images as one file per band: the bands' names in channel order, and where a
    band's file is relative to an images folder, without its suffix (``{stem}`` the sample,
    ``{band}`` the band's name). No pattern: :data:`BAND_FOLDERS` in a folder holding a folder
    named as a band, else :data:`BAND_FILES`."""

    names: tuple[str, ...]
    pattern: str | None = None
    where: str = ""  # the dataset file, for messages


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


def match_by_stem(
    image_dir: Path, mask_dir: Path, problems: list[str], bands: BandSpec | None = None
) -> list[Pair]:
    """The pairs of an image folder (of band stacks, with ``bands``) and a mask folder."""
    if bands is None:
        images: dict[str, Path] = files_by_stem(image_dir, problems)
    else:
        images = dict(stacks_by_stem(image_dir, bands, problems))
    return pair_up(images, files_by_stem(mask_dir, problems), problems)


def stacks_by_stem(folder: Path, bands: BandSpec, problems: list[str]) -> dict[str, BandStack]:
    """The band stacks of an images folder by sample stem, every sample that has a file of any
    of the bands (files of other bands are no concern: a tile may hold more bands than a model
    takes). A sample missing a band is kept, its band None, for the data check to name; a band
    given twice, or a folder where no file is a band's, is a problem."""
    if not folder.is_dir():
        problems.append(f"{folder}: folder missing")
        return {}
    pattern = bands.pattern or band_pattern_of(folder, bands)
    regex = pattern_regex(pattern, bands.names)
    found: dict[str, dict[str, list[Path]]] = defaultdict(lambda: defaultdict(list))
    images = _image_files(folder, depth=pattern.count("/"))
    for path in images:
        match = regex.fullmatch(path.relative_to(folder).as_posix())
        if match:
            found[match["stem"]][match["band"]].append(path)
    if images and not found:
        problems.append(
            f"{folder}: no file is one of bands {', '.join(bands.names)} by band_pattern "
            f"{pattern!r} (e.g. {images[0].relative_to(folder).as_posix()})"
        )
    stacks = {}
    for stem in sorted(found):
        files = found[stem]
        for band, paths in files.items():
            if len(paths) > 1:
                problems.append(
                    f"{paths[1]}: band {band} of {folder / stem} twice (also {paths[0].name})"
                )
        named = [(band, files[band][0] if band in files else None) for band in bands.names]
        stacks[stem] = band_stack(folder / stem, named)
    return stacks


def band_pattern_of(folder: Path, bands: BandSpec) -> str:
    """The pattern of a folder whose dataset file gives none: :data:`BAND_FOLDERS` where a
    folder is named as a band, else :data:`BAND_FILES`; a SeglabError where both fit."""
    folders = [name for name in bands.names if (folder / name).is_dir()]
    if not folders:
        return BAND_FILES
    regex = pattern_regex(BAND_FILES, bands.names)
    beside = next((p for p in _image_files(folder, 0) if regex.fullmatch(p.name)), None)
    if beside is not None:
        raise SeglabError(
            f"{folder}: both a folder per band ({folders[0]}/) and band files ({beside.name}); "
            f"set band_pattern in {bands.where or 'a dataset YAML'} "
            f"('{BAND_FOLDERS}' or '{BAND_FILES}')"
        )
    return BAND_FOLDERS


def pattern_regex(pattern: str, names: tuple[str, ...]) -> re.Pattern[str]:
    """A file's path relative to an images folder, matched whole: groups ``stem`` and ``band``
    (one of ``names``), then any image suffix, or the one the pattern ends with."""
    suffix = "|".join(re.escape(s) for s in IMAGE_SUFFIXES)
    given = next((s for s in IMAGE_SUFFIXES if pattern.lower().endswith(s)), None)
    body = pattern[: -len(given)] if given else pattern
    bands = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
    parts = {"{stem}": "(?P<stem>[^/]+?)", "{band}": f"(?P<band>{bands})"}
    regex = "".join(parts.get(part, re.escape(part)) for part in re.split(r"(\{\w+\})", body))
    return re.compile(f"{regex}(?i:{re.escape(given) if given else suffix})")


def _image_files(folder: Path, depth: int) -> list[Path]:
    """The image files ``depth`` folders below ``folder``, sorted."""
    found = folder.glob("/".join(["*"] * (depth + 1)))
    return sorted(p for p in found if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


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
