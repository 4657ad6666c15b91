"""One pass that reads every file of a dataset: sizes, whether it decodes, the mask values it holds,
and of images their bands, bit depth and per-band sums (what normalisation statistics need).

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
from seglab.data.io import decode_image, is_colour_mask, raw_mask_values, value_scale
from seglab.errors import first_line

Record = dict  # JSON-able facts about one file
# Part of every cached record's key: records of an older scan, which lack facts this one finds,
# are read again.
SCAN_VERSION = 2


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
            # decodes everything: a truncated file fails here, not mid-training
            record.update(image_facts(decode_image(path)))
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


def image_facts(bands: np.ndarray) -> Record:
    """Size (width, height, as Pillow gives it), number of bands, the type the file stores and,
    per band, the sum and the sum of squares of its values as the model takes them (see
    seglab.data.io): a split's mean and std are sums of these."""
    scale = value_scale(bands.dtype)
    sums = [band_sums(band, scale) for band in bands]
    return {
        "size": [int(bands.shape[2]), int(bands.shape[1])],
        "bands": int(bands.shape[0]),
        "dtype": str(bands.dtype),
        "band_sum": [total for total, _ in sums],
        "band_squares": [squares for _, squares in sums],
    }


def band_sums(band: np.ndarray, scale: float) -> tuple[float, float]:
    """The sum and the sum of squares of one band's values times ``scale``. 8- and 16-bit values
    are counted in a histogram first: exact, and many times faster than float arithmetic on
    every pixel (which would make the scan of a large dataset minutes longer)."""
    if band.dtype.kind == "u" and band.dtype.itemsize <= 2:
        counts = np.bincount(band.ravel()).astype(np.float64)
        values = np.arange(len(counts), dtype=np.float64) * scale
        return float(counts @ values), float(counts @ (values * values))
    values = np.nan_to_num(band.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0) * scale
    return float(values.sum()), float(np.vdot(values, values))


def _file_key(path: str) -> str | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return f"{SCAN_VERSION}:{st.st_size}:{st.st_mtime_ns}"


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
