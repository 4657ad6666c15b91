"""Where outputs go by default, checks that an output location can be written, made before any
work starts (a mistake in ``--out`` is one line at once rather than a traceback after minutes of
work), and the one atomic writer every file that must not be lost goes through: free space
checked first, a temporary file renamed over the old one, one clear line when the disk is full.
No torch here."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from seglab.errors import SeglabError, first_line


def check_output_folder(folder: str | os.PathLike, what: str) -> Path:
    """``folder`` is a folder that can be written in, or one that can be created (its nearest
    existing parent is a writable folder); nothing is created. ``what`` names it in the error,
    e.g. "predict: --out". Returns ``folder`` as a Path."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise SeglabError(f"{what} {folder} is a file, not a folder; choose a folder")
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise SeglabError(f"{what} {folder}: {existing} is a file, not a folder")
    _probe(existing, folder, what)
    return folder


def check_output_file(path: str | os.PathLike, what: str) -> Path:
    """``path`` can be written as a file: not a folder, in a folder that is or can be made
    writable. ``what`` names it in the error, e.g. "benchmark: --json". Returns it as a Path."""
    path = Path(path)
    if path.is_dir():
        raise SeglabError(f"{what} {path} is a folder; give a file name")
    check_output_folder(path.parent, what)
    if path.exists() and not os.access(path, os.W_OK):
        raise SeglabError(f"{what} {path} is read-only")
    return path


def _probe(existing: Path, folder: Path, what: str) -> None:
    """Create and delete a temporary file in ``existing``: the one test that holds for every
    user (root included) and file system (read-only mounts included)."""
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as err:
        raise SeglabError(
            f"{what} {folder} cannot be written ({err.strerror or type(err).__name__})"
        ) from None


def default_metrics_path(checkpoint: str | os.PathLike, split: str) -> Path:
    """Where `seglab evaluate` writes its metrics without --out: beside the model file,
    e.g. runs/x/best_val_metrics.json."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(f"{checkpoint.stem}_{split}_metrics.json")


def confusion_figure_path(metrics_path: str | os.PathLike) -> Path:
    """Where `seglab evaluate` draws the confusion matrix: beside its metrics JSON,
    e.g. runs/x/best_val_confusion.png."""
    metrics_path = Path(metrics_path)
    return metrics_path.with_name(f"{metrics_path.stem.removesuffix('_metrics')}_confusion.png")


# --- writing without loss: free space first, a temporary file, then one rename ---------------

# A file being written is a hidden temporary beside it, named by the writing process:
# .NAME.PID.tmp. A killed writer leaves it behind; stale_temporaries finds those.
TEMPORARY_SUFFIX = ".tmp"
# Room kept above a file's expected size: file-system blocks, the zip directory of a checkpoint.
SPACE_MARGIN = 1 << 20
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


class WriteError(SeglabError):
    """A file could not be written (a full disk, a read-only or failing one): the message names
    the file and what is needed; the file's previous version, if any, is intact and no partial
    file remains."""


def temporary_path(path: Path) -> Path:
    """The temporary file ``path`` is written to first, of this process: two processes never
    share one, and a killed writer's is recognised by its process id."""
    return path.with_name(f".{path.name}.{os.getpid()}{TEMPORARY_SUFFIX}")


def format_size(size: float) -> str:
    """Bytes as people read them: 812 KB, 80.1 MB, 1.20 GB."""
    if size < 1e6:
        return f"{size / 1e3:.0f} KB"
    if size < 1e9:
        return f"{size / 1e6:.1f} MB"
    return f"{size / 1e9:.2f} GB"


def check_free_space(path: Path, needed: int) -> None:
    """Raise WriteError when the file system of ``path``'s folder has less than ``needed`` bytes
    (plus a margin) free, before anything of it is written."""
    try:
        free = shutil.disk_usage(path.parent).free
    except OSError:  # the space cannot be asked for: the write itself will tell
        return
    if free < needed + SPACE_MARGIN:
        raise WriteError(
            f"cannot write {path}: {format_size(free)} free on its disk, it needs about "
            f"{format_size(needed + SPACE_MARGIN)}; free some space"
            + (f" (the previous {path.name} is kept)" if path.exists() else "")
        )


def write_atomic(path: str | os.PathLike, write: Callable[[BinaryIO], None], size: int = 0) -> None:
    """Write ``path`` through ``write`` (given the open file) without ever leaving it partial:
    the free space is checked against ``size`` (the expected bytes) first, the bytes go to a
    temporary file that is synced and renamed over ``path``, so a kill or a failure keeps the
    previous ``path`` intact. A failed write (a full disk, torch's "file write failed" included)
    removes the temporary file and raises one WriteError line."""
    path = Path(path)
    check_free_space(path, size)
    tmp = temporary_path(path)
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise _write_error(path, size, err.errno, err.strerror or first_line(err)) from None
    except RuntimeError as err:  # torch.save's writer: "[enforce fail at inline_container.cc]"
        tmp.unlink(missing_ok=True)
        if "inline_container" not in str(err) and "PytorchStreamWriter" not in str(err):
            raise
        raise _write_error(path, size, None, "write failed") from None
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """:func:`write_atomic` of a text file (UTF-8)."""
    data = text.encode()
    write_atomic(path, lambda f: f.write(data), len(data))


def _write_error(path: Path, size: int, number: int | None, reason: str) -> WriteError:
    try:
        free = shutil.disk_usage(path.parent).free
    except OSError:
        free = None
    full = number in DISK_FULL or (free is not None and free < size + SPACE_MARGIN)
    kept = f"; the previous {path.name} is kept" if path.exists() else ""
    if full:
        room = (
            ""
            if free is None
            else f" ({format_size(free)} free, it needs about {format_size(size)})"
        )
        return WriteError(f"cannot write {path}: the disk is full{room}; free some space{kept}")
    return WriteError(f"cannot write {path}: {reason}{kept}")


def stale_temporaries(folder: Path) -> list[Path]:
    """The temporary files in ``folder`` (.NAME.PID.tmp) whose writing process is no longer
    alive: what a killed save leaves behind."""
    stale = []
    for path in sorted(folder.glob(f".*.*{TEMPORARY_SUFFIX}")):
        pid = path.name.removesuffix(TEMPORARY_SUFFIX).rsplit(".", 1)[-1]
        if pid.isdigit() and path.is_file() and not _alive(int(pid)):
            stale.append(path)
    return stale


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
