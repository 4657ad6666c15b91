"""Labelling tools' exports to the ``pairs`` layout: ``import_dataset("coco", src, out)``.

One module per format reads its files into a :class:`~seglab.data.importing.core.Source`
(images with labelled shapes); :mod:`~seglab.data.importing.core` resolves the classes, draws
the masks (:mod:`~seglab.data.importing.raster`: pixel centres, COCO's convention) and writes
the folder, its ``dataset.yaml`` and ``import.json``.
"""

from __future__ import annotations

import os
from pathlib import Path

from seglab.data.importing import coco, cvat, labelme, yolo
from seglab.data.importing.core import OVERLAP_RULES, ImportReport, read_label_map, write_import
from seglab.errors import SeglabError

READERS = {"labelme": labelme.read, "coco": coco.read, "cvat": cvat.read, "yolo": yolo.read}
FORMATS = tuple(READERS)

__all__ = ["FORMATS", "OVERLAP_RULES", "ImportReport", "import_dataset"]


def import_dataset(
    format: str,
    src: str | os.PathLike,
    out: str | os.PathLike,
    labels: str | os.PathLike | None = None,
    overlap: str = "later",
    keep_empty: bool = False,
    link: bool = False,
) -> ImportReport:
    """Read ``src`` (a ``format`` export) and write it to the new folder ``out`` in the ``pairs``
    layout, with ``dataset.yaml`` and ``import.json``; ``labels`` is a label map file."""
    if format not in READERS:
        raise SeglabError(f"unknown import format {format!r} (one of {', '.join(FORMATS)})")
    if Path(out).exists():
        raise SeglabError(f"{out} already exists; import writes a new folder, give another --out")
    src = Path(src)
    if not src.exists():
        raise SeglabError(f"{src} does not exist")
    label_map = read_label_map(labels) if labels is not None else None
    return write_import(
        READERS[format](src),
        out,
        label_map=label_map,
        overlap=overlap,
        keep_empty=keep_empty,
        link=link,
        label_map_path=None if labels is None else str(labels),
    )
