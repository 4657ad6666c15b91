"""CVAT for images 1.1: ``annotations.xml`` (SRC is the file, or the folder holding it) and the
images, looked for in ``images/`` beside it or beside it directly.

``<polygon>``, ``<box>`` (turned by its ``rotation``) and ``<mask>`` (CVAT's row-major RLE over
the box ``left``/``top``/``width``/``height``) are drawn; other elements (``polyline``,
``points``, ``ellipse``, ``cuboid``, ``skeleton``, ``tag``) are counted by kind. The labels are
those of ``<meta>``, in its order. ``later`` means CVAT's ``z_order`` first, then the file's
order. An image's ``subset`` (Train, Validation, Test) is its split.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from seglab.data.importing.core import Item, Shape, Source, split_name
from seglab.data.importing.raster import box_polygon, cvat_rle, polygon_mask
from seglab.errors import SeglabError, first_line

DRAWN = ("polygon", "box", "mask")


def read(src: Path) -> Source:
    path = src / "annotations.xml" if src.is_dir() else src
    if not path.is_file():
        raise SeglabError(f"{src}: no CVAT annotations.xml")
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as err:
        raise SeglabError(f"{path}: not readable XML ({first_line(err)})") from None
    if root.tag != "annotations":
        raise SeglabError(f"{path}: not a CVAT for images file (<annotations> expected)")
    labels = [str(e.findtext("name")) for e in root.iterfind("meta/*/labels/label")]
    images = root.findall("image")
    if not images and root.findall("track"):
        raise SeglabError(f"{path}: CVAT for video (tracks); export as CVAT for images 1.1")
    folders = [path.parent / "images", path.parent]
    items, problems = [], []
    for image in images:
        name = image.get("name", "")
        found = next((f / name for f in folders if (f / name).is_file()), folders[0] / name)
        item = Item(found, split_name(image.get("subset") or ""), size=_size(image))
        for order, element in enumerate(image):
            try:
                shape = _shape(element, order)
            except (TypeError, ValueError) as err:
                problems.append(f"{path}: image {name}: a <{element.tag}> unreadable ({err})")
                continue
            if shape is None:
                item.other[element.tag] += 1
            else:
                item.shapes.append(shape)
        items.append(item)
    return Source("cvat", path, items, labels or None, problems)


def _size(image: ET.Element) -> tuple[int, int] | None:
    height, width = image.get("height"), image.get("width")
    return (int(height), int(width)) if height and width else None


def _shape(element: ET.Element, order: int) -> Shape | None:
    label = element.get("label", "")
    z = int(element.get("z_order", "0"))
    if element.tag == "polygon":
        points = [float(c) for p in element.get("points", "").split(";") for c in p.split(",")]
        if len(points) < 6:
            return None
        return Shape(label, lambda h, w: polygon_mask(points, h, w), (z, order))
    if element.tag == "box":
        corners = [float(element.get(k, "")) for k in ("xtl", "ytl", "xbr", "ybr")]
        points = box_polygon(*corners, rotation=float(element.get("rotation", "0")))
        return Shape(label, lambda h, w: polygon_mask(points, h, w), (z, order))
    if element.tag == "mask":
        counts = [int(c) for c in element.get("rle", "").split(",")]
        box = [int(float(element.get(k, ""))) for k in ("left", "top", "width", "height")]
        piece = cvat_rle(counts, box[3], box[2])
        return Shape(label, lambda h, w: _placed(piece, box, h, w), (z, order))
    return None


def _placed(piece: np.ndarray, box: list[int], height: int, width: int) -> np.ndarray:
    """A mask's box placed on the image (the parts outside it cut off)."""
    left, top = box[0], box[1]
    mask = np.zeros((height, width), dtype=bool)
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + piece.shape[0], height), min(left + piece.shape[1], width)
    if y0 < y1 and x0 < x1:
        mask[y0:y1, x0:x1] = piece[y0 - top : y1 - top, x0 - left : x1 - left]
    return mask
