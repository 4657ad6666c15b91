"""YOLO segment format: one ``.txt`` per image, a line per object, ``class x1 y1 x2 y2 ...`` with
coordinates normalised to [0, 1] by the image's width and height, and the class names in
``data.yaml`` (``names``: a list, or a mapping of ids to names) or ``classes.txt`` (one a line).

Labels sit in a ``labels`` folder mirroring ``images`` (``images/train/a.jpg`` ->
``labels/train/a.txt``, Ultralytics and Roboflow exports alike) or beside the image. A folder
named ``train``, ``val``/``valid`` or ``test`` on an image's path is its split. An image without
a label file, or with an empty one, has no annotations. A line of 4 numbers is a detection box
(``class cx cy w h``): counted, not drawn.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from seglab.data.importing.core import Item, Shape, Source, split_name
from seglab.data.importing.raster import polygon_mask
from seglab.data.io import IMAGE_SUFFIXES
from seglab.errors import SeglabError, first_line


def read(src: Path) -> Source:
    if not src.is_dir():
        raise SeglabError(f"{src}: yolo takes a folder (images, labels and data.yaml)")
    labels = _names(src)
    images = sorted(p for p in src.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise SeglabError(f"{src}: no images in it")
    items, problems = [], []
    for image in images:
        folders = image.relative_to(src).parts[:-1]
        split = next((s for s in map(split_name, folders) if s), None)
        item = Item(image, split)
        text_file = _label_file(image)
        if text_file.is_file():
            _read_lines(text_file, item, labels, problems)
        items.append(item)
    return Source("yolo", src, items, labels, problems)


def _names(src: Path) -> list[str]:
    for path in [src / "data.yaml", src / "dataset.yaml", *sorted(src.glob("*.yaml"))]:
        if path.is_file():
            try:
                names = (yaml.safe_load(path.read_text()) or {}).get("names")
            except (OSError, yaml.YAMLError, AttributeError) as err:
                raise SeglabError(f"{path}: not readable ({first_line(err)})") from None
            if isinstance(names, dict):
                return [str(names[k]) for k in sorted(names, key=int)]
            if isinstance(names, list):
                return [str(n) for n in names]
    for path in [src / "classes.txt", src / "labels" / "classes.txt"]:
        if path.is_file():
            return [line.strip() for line in path.read_text().splitlines() if line.strip()]
    raise SeglabError(f"{src}: no class names (data.yaml with names, or classes.txt)")


def _label_file(image: Path) -> Path:
    parts = list(image.parts)
    if "images" in parts:
        at = len(parts) - 1 - parts[::-1].index("images")
        parts[at] = "labels"
    return Path(*parts).with_suffix(".txt")


def _read_lines(path: Path, item: Item, labels: list[str], problems: list[str]) -> None:
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        try:
            cls, coords = int(fields[0]), [float(v) for v in fields[1:]]
        except ValueError:
            problems.append(f"{path}:{number}: not 'class x1 y1 x2 y2 ...'")
            continue
        if len(coords) == 4:
            item.other["box (detection format)"] += 1
            continue
        if len(coords) < 6 or len(coords) % 2:
            problems.append(f"{path}:{number}: {len(coords)} coordinates (pairs, at least 3)")
            continue
        label = labels[cls] if 0 <= cls < len(labels) else f"class {cls}"
        item.shapes.append(Shape(label, _normalised(coords), (number,)))


def _normalised(coords: list[float]):
    def draw(height: int, width: int):
        scaled = [v * (width if i % 2 == 0 else height) for i, v in enumerate(coords)]
        return polygon_mask(scaled, height, width)

    return draw
