"""A run folder belongs to one run. A new run takes a folder that does not exist or is empty;
without --out it takes runs/ENCODER, or the first free runs/ENCODER-2, runs/ENCODER-3, ...
A lock held for the whole run makes a second process on the same folder fail at once, naming
the process that holds it. Opening a folder removes the temporary files that killed saves left
in it (their process is gone), saying so in one line."""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from seglab.errors import SeglabError
from seglab.outputs import check_output_folder, format_size, stale_temporaries

LOCK_NAME = ".seglab.lock"
# The model a run folder stands for: its best checkpoint by validation mIoU, else its latest.
MODEL_FILES = ("best.pt", "last.pt")


def default_run_folder(encoder: str, root: Path = Path("runs")) -> Path:
    """runs/ENCODER, or the first of runs/ENCODER-2, -3, ... that is free (absent or empty)."""
    for number in range(1, 10_000):
        candidate = root / (encoder if number == 1 else f"{encoder}-{number}")
        if not candidate.exists() or (candidate.is_dir() and not any(candidate.iterdir())):
            return candidate
    raise SeglabError(f"{root}: no free run folder for {encoder}; give --out")


def run_model_file(folder: Path) -> Path | None:
    """The checkpoint a run folder stands for: best.pt, else last.pt (a run stopped before its
    first validation); None when it holds neither."""
    return next((folder / name for name in MODEL_FILES if (folder / name).is_file()), None)


def model_file(path: Path, command: str) -> Path:
    """The model file ``path`` names for ``command``: a run folder's best.pt (else last.pt), a
    file as it is; one line naming the path when there is none."""
    if path.is_dir():
        found = run_model_file(path)
        if found is None:
            raise SeglabError(
                f"{command}: {path} holds no best.pt or last.pt (is it a seglab run?)"
            )
        return found
    if not path.exists():
        raise SeglabError(f"{command}: {path} does not exist")
    return path


@contextlib.contextmanager
def claim_run_folder(
    folder: Path, resume: bool, say: Callable[[str], None] = print
) -> Iterator[Path]:
    """Hold ``folder`` for this process for the duration of the block. A new run needs it absent
    or empty (nothing of another run is ever replaced); a resumed run needs its own files. Stale
    temporary files (of saves killed before their rename) are removed first, said through
    ``say``."""
    check_output_folder(folder, "run folder")
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    lock_file = open(folder / LOCK_NAME, "a+")  # noqa: SIM115 (held until the block ends)
    try:
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock_file.seek(0)
            holder = lock_file.read().strip() or "another process"
            raise SeglabError(
                f"run folder {folder} is in use by {holder}; wait for it to finish or choose "
                "another --out"
            ) from None
        remove_stale_temporaries(folder, say)
        others = sorted(p.name for p in folder.iterdir() if p.name != LOCK_NAME)
        if others and not resume:
            raise SeglabError(
                f"run folder {folder} already holds {', '.join(others[:3])}"
                f"{', ...' if len(others) > 3 else ''}; continue that run with --resume "
                f"{folder}, or choose another --out"
            )
        lock_file.seek(0)
        lock_file.truncate()
        lock_file.write(
            f"seglab process {os.getpid()} on {socket.gethostname()} since "
            f"{time.strftime('%Y-%m-%d %H:%M:%S')} ({' '.join(sys.argv[1:3])})"
        )
        lock_file.flush()
        yield folder
    except BaseException:
        lock_file.close()
        if created and not any(p.name != LOCK_NAME for p in folder.iterdir()):
            (folder / LOCK_NAME).unlink(missing_ok=True)
            folder.rmdir()  # a refused or failed start leaves nothing behind
        raise
    else:
        lock_file.close()


def remove_stale_temporaries(folder: Path, say: Callable[[str], None] = print) -> list[Path]:
    """Remove the temporary files in ``folder`` whose writing process is gone (a save killed
    before its rename: the complete files beside them are intact), with one line naming them;
    returns them."""
    stale = stale_temporaries(folder)
    if not stale:
        return []
    size = 0
    for path in stale:
        with contextlib.suppress(OSError):
            size += path.stat().st_size
            path.unlink()
    names = ", ".join(p.name for p in stale[:3]) + (", ..." if len(stale) > 3 else "")
    say(
        f"removed {len(stale)} temporary file(s) of interrupted saves from {folder} "
        f"({format_size(size)}): {names}"
    )
    return stale
