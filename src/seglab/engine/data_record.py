"""What a run records of its data, so that the model and the run can find the same data again
from any folder: the dataset as a resolved (absolute) path, and its files' fingerprint (how many,
their bytes, and a digest of their names and sizes). Whoever later uses the recorded data
(`seglab evaluate`, ``--resume``) checks it first and says in one line when it has moved or
changed, rather than reading whatever a relative path names from the current folder.

Records from before (a relative ``data``, no fingerprint) keep working: the path is read from
the current folder as it always was, with a warning saying so."""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path
from typing import Any

from seglab.data.dataset_file import dataset_file
from seglab.data.layouts import list_files
from seglab.errors import SeglabError, SeglabWarning
from seglab.outputs import format_size

# Where a run's config.yaml and checkpoints keep the fingerprint, beside what else was resolved.
RECORD_KEY = "data_files"


class DataRecordWarning(SeglabWarning):
    """Recorded data that cannot be checked (an older record, a relative path)."""


def resolve_data(data: str) -> str:
    """``data`` as a run records it: a path made absolute (symbolic links resolved), a name
    (``synthetic``) as it is."""
    path = Path(data)
    if data == "synthetic" or not path.exists():
        return data
    return str(path.resolve())


def data_files(data: str) -> dict[str, Any] | None:
    """The fingerprint of the files ``data`` names: their count, their bytes and a digest of
    each one's name (relative to the dataset) and size, the dataset file's own bytes included;
    None for the generated ``synthetic``. Only names and sizes are read: it takes a listing,
    not a pass over the images."""
    if data == "synthetic":
        return None
    spec = dataset_file(data)
    files: set[Path] = set()
    if spec.path is not None:
        files.add(spec.path)
    if spec.layout != "synthetic":
        for pairs in list_files(spec).splits.values():
            files.update(p for pair in pairs for p in pair if p is not None)
    base = spec.root if spec.layout != "synthetic" else Path(data).parent
    digest, total = hashlib.sha256(), 0
    for path in sorted(files):
        size = path.stat().st_size
        total += size
        digest.update(f"{_relative(path, base)}\t{size}\n".encode())
    if spec.path is not None:  # what the dataset file says (classes, splits), not just its size
        digest.update(spec.path.read_bytes())
    return {"files": len(files), "bytes": total, "sha256": digest.hexdigest()}


def describe(record: dict[str, Any]) -> str:
    """A fingerprint as people read it: "24 files, 1.2 MB"."""
    return f"{record['files']} files, {format_size(record['bytes'])}"


def check_recorded_data(
    data: str, record: dict[str, Any] | None, owner: str, fix: str, refusing: str = ""
) -> str:
    """``data``, as ``owner`` (a run folder or a checkpoint, for messages) records it, when it
    is still there with the same files. Moved or changed data is one SeglabError line, starting
    with ``refusing`` (e.g. "cannot resume runs/x: ") and ending with ``fix`` (what the user can
    do). A relative path from an older record is read from the current folder, with a warning."""
    if data == "synthetic":
        return data
    if not Path(data).is_absolute():
        warnings.warn(
            f"{owner} records its data as {data}, relative to the folder it was trained from "
            f"(an older seglab): reading {Path(data).absolute()}; {fix} if that is not it",
            DataRecordWarning,
            stacklevel=2,
        )
        return data
    trained = f"{refusing}{owner} was trained on {data}, which"
    if not Path(data).exists():
        raise SeglabError(f"{trained} is no longer there (moved or deleted); {fix}")
    if record is None:
        return data
    now = data_files(data)
    if now is not None and now["sha256"] != record["sha256"]:
        raise SeglabError(
            f"{trained} has changed since ({describe(record)} then, {describe(now)} now); {fix}"
        )
    return data


def _relative(path: Path, base: Path) -> str:
    try:
        return str(path.resolve().relative_to(base.resolve()))
    except ValueError:
        return str(path.resolve())


def recorded_data(data: str, resolved: dict[str, Any], owner: str) -> str:
    """The data a model file records (its config's ``data`` and its ``resolved`` record), checked
    as :func:`check_recorded_data` does: what `seglab evaluate` scores without --data."""
    fix = "give --data with where it is now"
    return check_recorded_data(data, resolved.get(RECORD_KEY), owner, fix)
