"""LabelMe: a folder of JSON files beside the images (``imagePath`` relative to the JSON file).

Polygons and rectangles are drawn; every other ``shape_type`` (point, line, linestrip, circle,
mask, ...) is counted by kind. ``imageData`` (the image embedded in the JSON) is not read: the
image file must exist. JSON files under ``train/``, ``val/`` or ``test/`` (at any depth) keep
that split.
"""

from __future__ import annotations

from pathlib import Path

from seglab.data.importing.core import Item, Shape, Source, json_documents, split_name
from seglab.data.importing.raster import box_polygon, polygon_mask
from seglab.errors import SeglabError

DRAWN = ("polygon", "rectangle")


def read(src: Path) -> Source:
    if not src.is_dir():
        raise SeglabError(f"{src}: labelme takes a folder of LabelMe JSON files")
    files = sorted(src.rglob("*.json"))
    if not files:
        raise SeglabError(f"{src}: no LabelMe JSON files (*.json) in it")
    items, problems = [], []
    for path, doc in json_documents(files, problems):
        if not isinstance(doc, dict) or "shapes" not in doc or "imagePath" not in doc:
            problems.append(f"{path}: not a LabelMe file (no shapes and imagePath)")
            continue
        items.append(_item(path, doc, src))
    return Source("labelme", src, items, None, problems)


def _item(path: Path, doc: dict, src: Path) -> Item:
    image = path.parent / str(doc["imagePath"]).replace("\\", "/")
    folders = path.relative_to(src).parts[:-1]
    split = next((s for s in map(split_name, folders) if s), None)
    height, width = doc.get("imageHeight"), doc.get("imageWidth")
    size = (int(height), int(width)) if height and width else None
    item = Item(image=image, split=split, size=size)
    for i, shape in enumerate(doc["shapes"] or []):
        kind = shape.get("shape_type") or "polygon"
        points = [c for point in shape.get("points") or [] for c in point]
        label = str(shape.get("label", ""))
        if kind == "rectangle" and len(points) == 4:
            item.shapes.append(Shape(label, _polygon(box_polygon(*points)), (i,)))
        elif kind == "polygon" and len(points) >= 6:
            item.shapes.append(Shape(label, _polygon(points), (i,)))
        else:
            item.other[kind if kind not in DRAWN else f"{kind} (too few points)"] += 1
    return item


def _polygon(points: list[float]):
    return lambda height, width: polygon_mask(points, height, width)
