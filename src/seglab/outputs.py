"""Where outputs go by default, and checks that an output location can be written, made before
any work starts, so a mistake in ``--out`` is one line at once rather than a traceback after
minutes of work. No torch here."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from seglab.errors import SeglabError


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
