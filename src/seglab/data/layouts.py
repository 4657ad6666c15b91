"""Dataset layouts on disk: how a folder is recognised, and which files pair up into (image, mask)
per split. A dataset file's ``splits`` (folders or list files) and ``split_by: groups`` apply over
any layout.

Layouts: ``camvid`` (SegNet tutorial), ``pairs`` (images/ + masks/), ``voc`` (Pascal VOC 2012),
``cityscapes`` (leftImg8bit/ + gtFine/). ``synthetic`` is generated, not listed (see dataset.py).
In ``camvid`` and ``pairs`` and in ``splits`` folders, a dataset file's ``bands`` make each image
a stack of one file per band (see seglab.data.files).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from seglab.data.classes import CAMVID, CITYSCAPES, VOC, ClassTable
from seglab.data.dataset_file import (
    ONE_FILE_LAYOUTS,
    ONE_FILE_LAYOUTS_NOTE,
    DatasetFile,
    FolderSplit,
)
from seglab.data.files import (
    BandSpec,
    Pair,
    files_by_stem,
    match_by_stem,
    pair_up,
    pairs_from_list,
    stem_of,
)
from seglab.data.splits import split_by_groups, split_by_ratio
from seglab.errors import SeglabError


@dataclass(frozen=True)
class Listing:
    """A dataset's files, paired up per split, with the problems met while pairing them."""

    root: Path
    layout: str
    splits: dict[str, list[Pair]]
    problems: tuple[str, ...]
    classes: ClassTable | None  # the layout's own classes; None: from the YAML or the masks


@dataclass(frozen=True)
class Layout:
    recognise: Callable[[Path], bool]
    splits: Callable[[DatasetFile, list[str]], dict[str, list[Pair]]]  # the layout's own
    classes: ClassTable | None = None
    # every pair by stem, for split lists; None: all the pairs of the layout's own splits
    pool: Callable[[DatasetFile], dict[str, Pair]] | None = None


def list_files(spec: DatasetFile) -> Listing:
    """The dataset's pairs per split: the layout's own splits, or the ``splits`` of its dataset
    file, then re-split by group where ``split_by: groups`` asks for it."""
    name = spec.layout or recognise_layout(spec)
    if spec.bands and name in ONE_FILE_LAYOUTS:
        raise SeglabError(f"{spec.where}: bands: layout {name} {ONE_FILE_LAYOUTS_NOTE}")
    layout = LAYOUTS[name]
    problems: list[str] = []
    given = spec.splits  # a dataset file's splits replace the layout's own
    splits = _given_splits(spec, layout, problems) if given else layout.splits(spec, problems)
    if spec.split_by == "groups":
        assert spec.groups is not None  # the dataset file checks this
        splits = split_by_groups(
            splits, spec.groups, spec.val_groups, spec.val_ratio, spec.seed, spec.where
        )
    return Listing(spec.root, name, splits, tuple(problems), layout.classes)


def recognise_layout(spec: DatasetFile) -> str:
    """The layout of a folder given without one; a dataset file's own ``splits`` need none."""
    layout = detect_layout(spec.root) or ("pairs" if spec.splits else None)
    if layout is None:
        describe = f"set layout: in {spec.path}" if spec.path else "describe it in a dataset YAML"
        raise SeglabError(
            f"{spec.root}: layout not recognised; expected camvid (train/ trainannot/ ...), pairs "
            "(images/ + masks/), voc (JPEGImages/ + SegmentationClass/) or cityscapes "
            f"(leftImg8bit/ + gtFine/), or {describe}"
        )
    return layout


def band_spec(spec: DatasetFile) -> BandSpec | None:
    """How the dataset's images are stored per band (None: one file an image)."""
    return BandSpec(spec.bands, spec.band_pattern, spec.where) if spec.bands else None


def detect_layout(root: Path) -> str | None:
    """The first layout whose folders ``root`` has (None: none)."""
    return next((name for name, layout in LAYOUTS.items() if layout.recognise(root)), None)


def _given_splits(spec: DatasetFile, layout: Layout, problems: list[str]) -> dict[str, list[Pair]]:
    pool: dict[str, Pair] | None = None
    splits = {}
    for split, where in spec.splits.items():
        if isinstance(where, FolderSplit):
            splits[split] = match_by_stem(where.images, where.masks, problems, band_spec(spec))
        else:
            pool = _pool(spec, layout) if pool is None else pool
            splits[split] = pairs_from_list(where.path, pool, problems)
    return splits


def _pool(spec: DatasetFile, layout: Layout) -> dict[str, Pair]:
    if layout.pool is not None:
        return layout.pool(spec)
    unlisted: list[str] = []  # problems of files that no list names are no concern here
    return {stem_of(p): p for pairs in layout.splits(spec, unlisted).values() for p in pairs}


# --- the layouts -------------------------------------------------------------------------------


def _camvid(spec: DatasetFile, problems: list[str]) -> dict[str, list[Pair]]:
    root = spec.root
    return {
        split: match_by_stem(root / split, root / f"{split}annot", problems, band_spec(spec))
        for split in ("train", "val", "test")
        if (root / split).is_dir() or split != "test"
    }


def _pairs(spec: DatasetFile, problems: list[str]) -> dict[str, list[Pair]]:
    image_dir, mask_dir = _required_pair_dirs(spec)
    split_names = [s for s in ("train", "val", "test") if (image_dir / s).is_dir()]
    bands = band_spec(spec)
    if split_names:
        return {s: match_by_stem(image_dir / s, mask_dir / s, problems, bands) for s in split_names}
    pairs = match_by_stem(image_dir, mask_dir, problems, bands)
    return split_by_ratio(pairs, spec.val_ratio, spec.seed)


def _required_pair_dirs(spec: DatasetFile) -> tuple[Path, Path]:
    dirs = pair_dirs(spec.root, spec.images, spec.masks)
    if dirs is None:
        if spec.images or spec.masks:
            wanted = f"{spec.images or 'images'}/ and {spec.masks or 'masks'}/ folders"
        else:
            wanted = "images/ and masks/ (or image/ and label/) folders"
        raise SeglabError(f"{spec.root}: no {wanted}")
    return dirs


def _voc(spec: DatasetFile, problems: list[str]) -> dict[str, list[Pair]]:
    base = voc_root(spec.root) or spec.root
    pool = _voc_pool(spec)
    splits = {}
    for split in ("train", "val"):
        listing = base / "ImageSets" / "Segmentation" / f"{split}.txt"
        if listing.is_file():
            splits[split] = pairs_from_list(listing, pool, problems)
        else:
            problems.append(f"{listing}: missing split list")
            splits[split] = []
    return splits


def _voc_pool(spec: DatasetFile) -> dict[str, Pair]:
    """VOC's JPEGImages holds many images without masks: only the lists say which count."""
    base = voc_root(spec.root) or spec.root
    problems: list[str] = []
    images = files_by_stem(base / "JPEGImages", problems)
    masks = files_by_stem(base / "SegmentationClass", problems)
    return {stem: (images.get(stem), masks.get(stem)) for stem in images.keys() | masks.keys()}


def _cityscapes(spec: DatasetFile, problems: list[str]) -> dict[str, list[Pair]]:
    root, splits = spec.root, {}
    for split in ("train", "val", "test"):
        image_dir = root / "leftImg8bit" / split
        if not image_dir.is_dir() and split == "test":
            continue
        images = {
            p.name.removesuffix("_leftImg8bit.png"): p
            for p in sorted(image_dir.glob("*/*_leftImg8bit.png"))
        }
        masks = {
            p.name.removesuffix("_gtFine_labelIds.png"): p
            for p in sorted((root / "gtFine" / split).glob("*/*_gtFine_labelIds.png"))
        }
        splits[split] = pair_up(images, masks, problems)
    return splits


def pair_dirs(
    root: Path, images: str | None = None, masks: str | None = None
) -> tuple[Path, Path] | None:
    """The image and mask folders of a ``pairs`` dataset: those named, or the usual names."""
    candidates = (
        [(images or "images", masks or "masks")]
        if images or masks
        else [
            ("images", "masks"),
            ("image", "label"),
            ("images", "labels"),
            ("image", "mask"),
            ("images", "annotations"),
            ("img", "gt"),
        ]
    )
    for image_name, mask_name in candidates:
        if (root / image_name).is_dir() and (root / mask_name).is_dir():
            return root / image_name, root / mask_name
    return None


def voc_root(root: Path) -> Path | None:
    for base in (root, root / "VOC2012", root / "VOCdevkit" / "VOC2012"):
        if (base / "JPEGImages").is_dir() and (base / "SegmentationClass").is_dir():
            return base
    return None


# Detection tries them in this order.
LAYOUTS = {
    "camvid": Layout(
        lambda root: (root / "train").is_dir() and (root / "trainannot").is_dir(),
        _camvid,
        CAMVID,
    ),
    "voc": Layout(lambda root: voc_root(root) is not None, _voc, VOC, pool=_voc_pool),
    "cityscapes": Layout(
        lambda root: (root / "leftImg8bit").is_dir() and (root / "gtFine").is_dir(),
        _cityscapes,
        CITYSCAPES,
    ),
    "pairs": Layout(lambda root: pair_dirs(root) is not None, _pairs),
}
