"""One pass that reads every file of a dataset: sizes, whether it decodes, the mask values it holds.

Everything the data check and the class statistics need comes from this scan. It is cached per
file (path, size and modification time), so a second check of an unchanged dataset reads nothing
and an edited file is read again.
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from seglab.cache import cache_dir
from seglab.data.files import Pair
from seglab.data.io import image_channels, is_colour_mask, raw_mask_values
from seglab.errors import first_line

Record = dict  # JSON-able facts about one file


def scan_files(
    root: Path, splits: dict[str, list[Pair]], progress: bool = True
) -> dict[str, Record]:
    """A record per file path of the dataset at ``root`` (cached per file)."""
    files = sorted(
        {
            (str(p), kind)
            for pairs in splits.values()
            for pair in pairs
            for p, kind in zip(pair, ("image", "mask"))
            if p is not None
        }
    )
    cache_file = cache_dir() / "scans" / f"{hashlib.sha1(str(root).encode()).hexdigest()}.json"
    cached = _read_cache(cache_file)
    records: dict[str, Record] = {}
    todo = []
    for path, kind in files:
        key = _file_key(path)
        hit = cached.get(path)
        if hit is not None and hit.get("key") == key and hit.get("kind") == kind:
            records[path] = hit
        else:
            todo.append((path, kind, key))
    if todo:
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            jobs = pool.map(lambda job: _scan_file(*job), todo)
            for (path, _, _), record in tqdm(
                zip(todo, jobs),
                total=len(todo),
                desc=f"checking {root.name}",
                unit="file",
                disable=not progress,
                leave=False,
            ):
                records[path] = record
        _write_cache(cache_file, records)
    return records


def _scan_file(path: str, kind: str, key: str | None) -> Record:
    record: Record = {"key": key, "kind": kind}
    try:
        if kind == "image":
            with Image.open(path) as im:
                im.load()  # decodes everything: a truncated file fails here, not mid-training
                record.update(size=list(im.size), channels=image_channels(im.mode))
        else:
            with Image.open(path) as im:
                record["rgb"] = is_colour_mask(im)
                raw = raw_mask_values(im)
            values, counts = np.unique(raw, return_counts=True)
            record.update(
                size=[raw.shape[1], raw.shape[0]],
                values={str(v): int(c) for v, c in zip(values, counts)},
            )
    except Exception as err:  # any decoder failure means the file is unusable
        record["error"] = first_line(err)
    return record


def _file_key(path: str) -> str | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return f"{st.st_size}:{st.st_mtime_ns}"


def _read_cache(path: Path) -> dict[str, Record]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _write_cache(path: Path, records: dict[str, Record]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(records))
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only cache only costs speed
