"""One pass that reads every file of a dataset: sizes, whether it decodes, the mask values it holds,
and of images their bands, bit depth and per-band sums (what normalisation statistics need). An
image stored as one file per band (a BandStack) is one record, as its multi-band file would be;
where its files do not make one image, the record says why (``problem``).

Everything the data check and the class statistics need comes from this scan. It is cached per
file, keyed on its path, size, modification time and a hash of its first and last 64 KiB (the
whole file, up to 128 KiB): a second check of an unchanged dataset decodes nothing, and a file
edited, or replaced by another of the same size with its modification time put back, is read
again. What the key leaves out is a change inside the middle of a file over 128 KiB that also
restores its modification time: hashing every byte would make each check read the whole dataset.
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
from seglab.data.io import (
    BandStack,
    StackProblem,
    decode_oriented,
    is_colour_mask,
    orientation,
    raw_mask_values,
    upright,
    value_scale,
)
from seglab.errors import first_line

Record = dict  # JSON-able facts about one file
# Part of every cached record's key: records of an older scan, which lack facts this one finds,
# are read again. 3: EXIF orientation applied and recorded, keys on content.
SCAN_VERSION = 3
KEY_BLOCK = 64 * 1024  # bytes hashed at each end of a file for its cache key


def scan_files(
    root: Path, splits: dict[str, list[Pair]], progress: bool = True
) -> dict[str, Record]:
    """A record per file path of the dataset at ``root`` (cached per file)."""
    files = sorted(
        {
            str(p): (p, kind)
            for pairs in splits.values()
            for pair in pairs
            for p, kind in zip(pair, ("image", "mask"))
            if p is not None
        }.items()
    )
    cache_file = cache_dir() / "scans" / f"{hashlib.sha1(str(root).encode()).hexdigest()}.json"
    cached = _read_cache(cache_file)
    records: dict[str, Record] = {}
    todo = []
    for path, (file, kind) in files:
        key = _stack_key(file) if isinstance(file, BandStack) else _file_key(path)
        hit = cached.get(path)
        if hit is not None and hit.get("key") == key and hit.get("kind") == kind:
            records[path] = hit
        else:
            todo.append((file, kind, key))
    if todo:
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            jobs = pool.map(lambda job: _scan_file(*job), todo)
            for (file, _, _), record in tqdm(
                zip(todo, jobs),
                total=len(todo),
                desc=f"checking {root.name}",
                unit="file",
                disable=not progress,
                leave=False,
            ):
                records[str(file)] = record
        _write_cache(cache_file, records)
    return records


def _scan_file(path: Path, kind: str, key: str | None) -> Record:
    record: Record = {"key": key, "kind": kind}
    try:
        if kind == "image":
            # decodes everything: a truncated file fails here, not mid-training
            bands, turn = decode_oriented(path)
            record.update(image_facts(bands))
        else:
            with Image.open(path) as im:
                record["rgb"] = is_colour_mask(im)
                turn = orientation(im)
                raw = raw_mask_values(upright(im, turn))
            values, counts = np.unique(raw, return_counts=True)
            record.update(
                size=[raw.shape[1], raw.shape[0]],
                values={str(v): int(c) for v, c in zip(values, counts)},
            )
    except StackProblem as err:  # band files that do not make one image
        record["problem"] = first_line(err)
        return record
    except Exception as err:  # any decoder failure means the file is unusable
        record["error"] = first_line(err)
        return record
    if turn != 1:  # the size as stored too: a mask drawn on the unturned pixels has that size
        width, height = record["size"]
        stored = [height, width] if turn >= 5 else [width, height]  # 5-8 turn by a quarter
        record.update(orientation=turn, stored_size=stored)
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
    """The scan's version, the file's size and modification time, and a hash of its first and
    last KEY_BLOCK bytes (see the module's docstring); None for a file that cannot be opened."""
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            digest = hashlib.sha256(f.read(KEY_BLOCK))  # the fastest here (CPU SHA instructions)
            if st.st_size > KEY_BLOCK:
                f.seek(max(KEY_BLOCK, st.st_size - KEY_BLOCK))
                digest.update(f.read(KEY_BLOCK))
    except OSError:
        return None
    return f"{SCAN_VERSION}:{st.st_size}:{st.st_mtime_ns}:{digest.hexdigest()[:32]}"


def _stack_key(stack: BandStack) -> str | None:
    """A band stack's key: its bands' names and files and each file's key (None: one cannot be
    opened); a missing band is part of it, so the stack is read again once its file is there."""
    keys = []
    for name, path in stack.band_files:
        key = "missing" if path is None else _file_key(str(path))
        if key is None:
            return None
        keys.append(f"{name}\t{path}\t{key}")
    digest = hashlib.sha256("\n".join(keys).encode()).hexdigest()[:32]
    return f"{SCAN_VERSION}:stack:{digest}"


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
