"""Dataset layouts on disk: which files pair up into (image, mask) per split, the classes, and how
the masks encode them. A folder is recognised by its layout; a YAML file can say it all instead.

Layouts: ``camvid`` (SegNet tutorial), ``pairs`` (images/ + masks/), ``voc`` (Pascal VOC 2012),
``cityscapes`` (leftImg8bit/ + gtFine/).
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from seglab.data.info import DatasetInfo
from seglab.data.io import IMAGE_SUFFIXES
from seglab.data.masks import IGNORE, MaskEncoding, binary_encoding, index_encoding, rgb_encoding
from seglab.errors import SeglabError

Pair = tuple[Path | None, Path | None]  # (image, mask); None where one has no partner


@dataclass
class DatasetSource:
    """A dataset on disk, listed: its pairs per split and what its masks mean."""

    root: Path
    layout: str
    splits: dict[str, list[Pair]]
    info: DatasetInfo | None  # None until an auto-detected encoding is resolved from a scan
    encoding: MaskEncoding | None
    listing_problems: list[str] = field(default_factory=list)

    def pairs(self, split: str) -> list[Pair]:
        if split not in self.splits:
            raise SeglabError(f"{self.root}: no {split!r} split (has {', '.join(self.splits)})")
        return self.splits[split]


# --- built-in class tables ------------------------------------------------------------------

CAMVID_CLASSES = (
    "Sky",
    "Building",
    "Pole",
    "Road",
    "Pavement",
    "Tree",
    "SignSymbol",
    "Fence",
    "Car",
    "Pedestrian",
    "Bicyclist",
)
CAMVID_COLORS = (
    (128, 128, 128),
    (128, 0, 0),
    (192, 192, 128),
    (128, 64, 128),
    (60, 40, 222),
    (128, 128, 0),
    (192, 128, 128),
    (64, 64, 128),
    (64, 0, 128),
    (64, 64, 0),
    (0, 128, 192),
)
CAMVID_VOID = 11

VOC_CLASSES = (
    "background",
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)


def voc_colors(n: int = 21) -> tuple[tuple[int, int, int], ...]:
    """The Pascal VOC palette: class bits spread over the high bits of R, G and B."""
    colors = []
    for i in range(n):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        colors.append((r, g, b))
    return tuple(colors)


# Cityscapes: (label id, train id name, colour) of the 19 evaluated classes; every other id of
# 0..33 (and -1, licence plate) is ignored.
CITYSCAPES = (
    (7, "road", (128, 64, 128)),
    (8, "sidewalk", (244, 35, 232)),
    (11, "building", (70, 70, 70)),
    (12, "wall", (102, 102, 156)),
    (13, "fence", (190, 153, 153)),
    (17, "pole", (153, 153, 153)),
    (19, "traffic light", (250, 170, 30)),
    (20, "traffic sign", (220, 220, 0)),
    (21, "vegetation", (107, 142, 35)),
    (22, "terrain", (152, 251, 152)),
    (23, "sky", (70, 130, 180)),
    (24, "person", (220, 20, 60)),
    (25, "rider", (255, 0, 0)),
    (26, "car", (0, 0, 142)),
    (27, "truck", (0, 0, 70)),
    (28, "bus", (0, 60, 100)),
    (31, "train", (0, 80, 100)),
    (32, "motorcycle", (0, 0, 230)),
    (33, "bicycle", (119, 11, 32)),
)


def default_colors(n: int) -> tuple[tuple[int, int, int], ...]:
    """Colours for classes that come without any: the VOC palette (class 0 black)."""
    return voc_colors(n)


# --- opening a dataset -----------------------------------------------------------------------


def open_source(data: str | Path) -> DatasetSource:
    """The dataset named by a folder (layout recognised) or a YAML file."""
    path = Path(data)
    if not path.exists():
        raise SeglabError(
            f"dataset {path} does not exist (give a folder, a YAML file or 'synthetic')"
        )
    if path.is_file():
        if path.suffix.lower() not in (".yaml", ".yml"):
            raise SeglabError(f"{path}: a dataset file must be YAML (.yaml or .yml)")
        return _from_yaml(path)
    layout = detect_layout(path)
    if layout is None:
        raise SeglabError(
            f"{path}: layout not recognised; expected camvid (train/ trainannot/ ...), pairs "
            "(images/ + masks/), voc (JPEGImages/ + SegmentationClass/) or cityscapes "
            "(leftImg8bit/ + gtFine/), or describe it in a dataset YAML file"
        )
    return LAYOUTS[layout](path, {})


def detect_layout(root: Path) -> str | None:
    if (root / "train").is_dir() and (root / "trainannot").is_dir():
        return "camvid"
    if _voc_root(root) is not None:
        return "voc"
    if (root / "leftImg8bit").is_dir() and (root / "gtFine").is_dir():
        return "cityscapes"
    if _pair_dirs(root) is not None:
        return "pairs"
    return None


def _from_yaml(path: Path) -> DatasetSource:
    try:
        spec = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise SeglabError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(spec, dict):
        raise SeglabError(f"{path}: expected a mapping of keys (root, layout, classes, ...)")
    root = (path.parent / spec.get("root", ".")).resolve()
    if not root.is_dir():
        raise SeglabError(f"{path}: root {root} is not a folder")
    layout = spec.get("layout") or detect_layout(root)
    if layout not in LAYOUTS:
        raise SeglabError(f"{path}: layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    return LAYOUTS[layout](root, spec)


# --- layouts -----------------------------------------------------------------------------------


def _camvid(root: Path, spec: dict) -> DatasetSource:
    splits, problems = {}, []
    for split in ("train", "val", "test"):
        if (root / split).is_dir() or split != "test":
            splits[split] = _match_by_stem(root / split, root / f"{split}annot", problems)
    info = DatasetInfo("camvid", CAMVID_CLASSES, CAMVID_COLORS, 3, IGNORE)
    encoding = index_encoding(len(CAMVID_CLASSES), ignore_values=[CAMVID_VOID])
    return _with_spec(DatasetSource(root, "camvid", splits, info, encoding, problems), spec)


def _voc(root: Path, spec: dict) -> DatasetSource:
    base = _voc_root(root) or root
    problems: list[str] = []
    splits = {}
    for split in ("train", "val"):
        listing = base / "ImageSets" / "Segmentation" / f"{split}.txt"
        if not listing.is_file():
            problems.append(f"{listing}: missing split list")
            splits[split] = []
            continue
        ids = [line.strip() for line in listing.read_text().splitlines() if line.strip()]
        splits[split] = [
            (
                _existing(base / "JPEGImages" / f"{i}.jpg", listing, problems),
                _existing(base / "SegmentationClass" / f"{i}.png", listing, problems),
            )
            for i in ids
        ]
    info = DatasetInfo("voc", VOC_CLASSES, voc_colors(21), 3, IGNORE)
    encoding = index_encoding(21, ignore_values=[IGNORE])
    return _with_spec(DatasetSource(root, "voc", splits, info, encoding, problems), spec)


def _cityscapes(root: Path, spec: dict) -> DatasetSource:
    problems: list[str] = []
    splits = {}
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
        splits[split] = _pair_up(images, masks, problems)
    names = tuple(name for _, name, _ in CITYSCAPES)
    info = DatasetInfo("cityscapes", names, tuple(c for *_, c in CITYSCAPES), 3, IGNORE)
    mapping = {label_id: IGNORE for label_id in range(34)}
    mapping.update({label_id: train_id for train_id, (label_id, _, _) in enumerate(CITYSCAPES)})
    encoding = MaskEncoding("index", mapping)
    return _with_spec(DatasetSource(root, "cityscapes", splits, info, encoding, problems), spec)


def _pairs(root: Path, spec: dict) -> DatasetSource:
    dirs = _pair_dirs(root, spec.get("images"), spec.get("masks"))
    if dirs is None:
        raise SeglabError(f"{root}: no images/ and masks/ (or image/ and label/) folders")
    image_dir, mask_dir = dirs
    problems: list[str] = []
    split_names = [s for s in ("train", "val", "test") if (image_dir / s).is_dir()]
    if split_names:
        splits = {s: _match_by_stem(image_dir / s, mask_dir / s, problems) for s in split_names}
    else:
        pairs = _match_by_stem(image_dir, mask_dir, problems)
        splits = split_by_ratio(pairs, float(spec.get("val_ratio", 0.2)), int(spec.get("seed", 0)))
    source = DatasetSource(root, "pairs", splits, None, None, problems)
    return _with_spec(source, spec)


LAYOUTS = {"camvid": _camvid, "pairs": _pairs, "voc": _voc, "cityscapes": _cityscapes}


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


def _with_spec(source: DatasetSource, spec: dict) -> DatasetSource:
    """Apply what a YAML file says about classes, colours and mask encoding over the defaults."""
    if "splits" in spec:
        source.splits = {
            s: _match_by_stem(
                source.root / d["images"], source.root / d["masks"], source.listing_problems
            )
            for s, d in spec["splits"].items()
        }
    if "classes" not in spec and "mask_encoding" not in spec:
        return source
    names, colors = _classes_from_spec(spec, source)
    ignore = int(spec.get("ignore_index", IGNORE))
    kind = spec.get("mask_encoding", "index")
    if kind == "rgb":
        ignore_colors = [tuple(c) for c in spec.get("ignore_colors", [])]
        encoding = rgb_encoding(colors, ignore_colors)
    elif kind == "binary":
        encoding = binary_encoding()
    elif kind == "index":
        encoding = index_encoding(len(names), ignore_values=[ignore])
    else:
        raise SeglabError(f"mask_encoding must be index, rgb or binary, got {kind!r}")
    channels = source.info.in_channels if source.info else 3
    source.info = DatasetInfo(spec.get("name", source.root.name), names, colors, channels, IGNORE)
    source.encoding = encoding
    return source


def _classes_from_spec(spec: dict, source: DatasetSource):
    classes = spec.get("classes")
    if classes is None:
        if spec.get("mask_encoding") == "binary":
            classes = ["background", "foreground"]
        elif source.info is not None:
            return source.info.classes, source.info.colors
        else:
            raise SeglabError(f"{source.root}: the dataset YAML must list its classes")
    names, colors = [], []
    for i, entry in enumerate(classes):
        if isinstance(entry, dict):
            names.append(str(entry["name"]))
            colors.append(tuple(entry.get("color", default_colors(len(classes))[i])))
        else:
            names.append(str(entry))
            colors.append(None)
    given = spec.get("colors")
    fallback = default_colors(len(names))
    colors = [tuple(given[i]) if given else c or fallback[i] for i, c in enumerate(colors)]
    return tuple(names), tuple(colors)


def resolve_detected_encoding(
    source: DatasetSource, raw_values: set[int], channels: int, colour_masks: bool
) -> None:
    """For a pairs folder without YAML: 0/255 masks are binary; otherwise values 0..K are classes
    (255 ignored). Colour masks need their colours from a YAML file."""
    if source.encoding is not None:
        if source.info and source.info.in_channels != channels:
            source.info = DatasetInfo(
                source.info.name,
                source.info.classes,
                source.info.colors,
                channels,
                source.info.ignore_index,
            )
        return
    if colour_masks:
        raise SeglabError(
            f"{source.root}: masks are colour-coded RGB; write a dataset YAML with "
            "mask_encoding: rgb and the classes' colours"
        )
    if raw_values <= {0, 255} and 255 in raw_values:
        names, encoding = ("background", "foreground"), binary_encoding()
    else:
        top = max((v for v in raw_values if v != IGNORE), default=0)
        names = tuple(f"class{i}" for i in range(top + 1))
        encoding = index_encoding(len(names), ignore_values=[IGNORE])
    source.info = DatasetInfo(source.root.name, names, default_colors(len(names)), channels, IGNORE)
    source.encoding = encoding


# --- matching files --------------------------------------------------------------------------


def _pair_dirs(root: Path, images: str | None = None, masks: str | None = None):
    for image_name, mask_name in (
        [(images, masks)]
        if images
        else [
            ("images", "masks"),
            ("image", "label"),
            ("images", "labels"),
            ("image", "mask"),
            ("images", "annotations"),
            ("img", "gt"),
        ]
    ):
        if (root / image_name).is_dir() and (root / mask_name).is_dir():
            return root / image_name, root / mask_name
    return None


def _voc_root(root: Path) -> Path | None:
    for base in (root, root / "VOC2012", root / "VOCdevkit" / "VOC2012"):
        if (base / "JPEGImages").is_dir() and (base / "SegmentationClass").is_dir():
            return base
    return None


def _files_by_stem(folder: Path, problems: list[str]) -> dict[str, Path]:
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


def _match_by_stem(image_dir: Path, mask_dir: Path, problems: list[str]) -> list[Pair]:
    return _pair_up(
        _files_by_stem(image_dir, problems), _files_by_stem(mask_dir, problems), problems
    )


def _pair_up(images: dict[str, Path], masks: dict[str, Path], problems: list[str]) -> list[Pair]:
    pairs: list[Pair] = []
    for stem in sorted(images.keys() | masks.keys()):
        image, mask = images.get(stem), masks.get(stem)
        if mask is None:
            problems.append(f"{image}: image without a mask")
        if image is None:
            problems.append(f"{mask}: mask without an image")
        pairs.append((image, mask))
    return pairs


def _existing(path: Path, listing: Path, problems: list[str]) -> Path | None:
    if path.is_file():
        return path
    problems.append(f"{path}: listed in {listing.name} but missing")
    return None
