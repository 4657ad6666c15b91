import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seglab.data.synthetic import SyntheticScenes


def write_inputs(folder: Path, sizes=((64, 80), (50, 70))) -> Path:
    """Synthetic scenes as 8-bit PNGs: in0.png, in1.png, ..."""
    folder.mkdir(parents=True, exist_ok=True)
    for k, (h, w) in enumerate(sizes):
        image, _ = SyntheticScenes("test", size=(h, w))[k]
        Image.fromarray((image.permute(1, 2, 0).numpy() * 255).astype(np.uint8)).save(
            folder / f"in{k}.png"
        )
    return folder


def unwritable_folder(tmp_path: Path) -> Path:
    """A folder this process cannot create files in: a read-only one, or (as root, whom file
    modes do not stop) a read-only file system; the test is skipped where there is none."""
    candidates = [tmp_path / "read_only", Path("/sys")]
    candidates[0].mkdir()
    candidates[0].chmod(0o500)
    for folder in candidates:
        try:
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError:
            return folder
    if os.name == "posix":
        candidates[0].chmod(0o700)
    pytest.skip("no folder here refuses writes to this process")
