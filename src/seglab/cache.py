"""Where seglab keeps what it can compute again: ``$SEGLAB_CACHE``, else ``~/.cache/seglab``
(``$XDG_CACHE_HOME/seglab`` where that is set). Nothing here imports torch."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    base = (
        os.environ.get("SEGLAB_CACHE")
        or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "seglab"
    )
    return Path(base)


def torch_hub_checkpoints() -> Path:
    """torch.hub's weights folder, as torch.hub.get_dir() finds it (``$TORCH_HOME/hub``, else
    ``$XDG_CACHE_HOME/torch/hub``, else ``~/.cache/torch/hub``), without importing torch."""
    home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "torch"
    )
    return Path(os.path.expanduser(home)) / "hub" / "checkpoints"
