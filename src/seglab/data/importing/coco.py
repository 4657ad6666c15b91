"""COCO instances: a JSON file (``images``, ``annotations``, ``categories``) and its images.

SRC is one JSON file or a folder holding several (one per split: ``instances_train2017.json``,
Roboflow's ``train/_annotations.coco.json``; the split comes from the file's or its folder's
name). Polygons (``segmentation`` a list of rings, their union) and RLE (``segmentation`` a dict,
``counts`` a list or a compressed string, decoded by pycocotools) are drawn, crowd annotations
(``iscrowd: 1``) as their class too. An annotation without a segmentation is counted (``bbox
only``). ``file_name`` is looked for beside the JSON file, in ``images/``, and in the folder the
file's name points to (``train2017/`` for ``instances_train2017.json``), there or one level up.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from seglab.data.importing.core import Item, Shape, Source, json_documents, split_name
from seglab.data.importing.raster import coco_rle, polygon_mask
from seglab.errors import SeglabError


def read(src: Path) -> Source:
    files = [src] if src.is_file() else sorted(src.rglob("*.json")) if src.is_dir() else []
    problems: list[str] = []
    docs = [
        (path, doc)
        for path, doc in json_documents(files, problems)
        if isinstance(doc, dict) and {"images", "annotations", "categories"} <= set(doc)
    ]
    if not docs:
        raise SeglabError(f"{src}: no COCO instances JSON (with images, annotations, categories)")
    splits = [_split(path) for path, _ in docs]
    if len(docs) > 1 and None in splits:
        unnamed = [str(p) for (p, _), s in zip(docs, splits) if s is None]
        raise SeglabError(
            f"{src}: {len(docs)} COCO files, and the split of {', '.join(unnamed)} is not in its "
            "name (train, val or test); import one file at a time or rename them"
        )
    if len(set(splits)) < len(splits):
        raise SeglabError(f"{src}: two COCO files for one split ({', '.join(map(str, files))})")
    categories: dict[int, str] = {}
    items = []
    for (path, doc), split in zip(docs, splits):
        for cat in doc["categories"]:
            categories.setdefault(int(cat["id"]), str(cat["name"]))
        items += _items(src, path, doc, split, problems)
    labels = list(dict.fromkeys(categories[i] for i in sorted(categories)))
    return Source("coco", src, items, labels, problems)


def _split(path: Path) -> str | None:
    return split_name(path.stem) or split_name(path.parent.name)


def _items(src: Path, path: Path, doc: dict, split: str | None, problems: list[str]) -> list[Item]:
    names = {int(c["id"]): str(c["name"]) for c in doc["categories"]}
    folders = _image_folders(src, path)
    items: dict[int, Item] = {}
    for image in doc["images"]:
        file_name = str(image["file_name"]).replace("\\", "/")
        found = next((f / file_name for f in folders if (f / file_name).is_file()), None)
        size = (int(image["height"]), int(image["width"]))
        items[int(image["id"])] = Item(found or folders[0] / file_name, split, size=size)
    for order, ann in enumerate(doc["annotations"]):
        item = items.get(int(ann["image_id"]))
        if item is None:
            problems.append(
                f"{path}: annotation {ann.get('id')} of image {ann['image_id']}, "
                "which is not in images"
            )
            continue
        category = int(ann["category_id"])
        label = names.get(category, f"category {category}")
        segmentation = ann.get("segmentation")
        if isinstance(segmentation, dict):
            height, width = item.size or (0, 0)
            if list(segmentation.get("size", ())) != [height, width]:
                item.other["RLE of another size than its image"] += 1
                continue
            item.shapes.append(Shape(label, _rle(segmentation), (order,)))
        elif isinstance(segmentation, list) and any(len(r) >= 6 for r in segmentation):
            rings = [r for r in segmentation if len(r) >= 6]
            item.shapes.append(Shape(label, _rings(rings), (order,)))
        else:
            item.other["bbox only (no segmentation)"] += 1
    return list(items.values())


def _image_folders(src: Path, path: Path) -> list[Path]:
    named = path.stem.split("_", 1)[-1]  # instances_train2017 -> train2017
    base = src if src.is_dir() else path.parent
    folders = [path.parent, path.parent / "images", path.parent / named, path.parent.parent / named]
    folders += [path.parent.parent / "images", base, base / "images", base / named]
    return list(dict.fromkeys(folders))


def _rle(segmentation: dict):
    return lambda height, width: coco_rle(segmentation, height, width)


def _rings(rings: list[list[float]]):
    def draw(height: int, width: int) -> np.ndarray:
        mask = np.zeros((height, width), dtype=bool)
        for ring in rings:
            mask |= polygon_mask(ring, height, width)
        return mask

    return draw
