import contextlib
import io
from pathlib import Path

import pytest

from seglab.deployment.formats import FORMATS


@pytest.fixture(scope="session")
def exported(tiny_runs, tmp_path_factory):
    """``exported(format)``: the tiny MobileNetV2 run exported in ``format`` (each once a
    session), measured on 2 validation images, as (path, card, progress lines). The ONNX file
    is written through the command line."""
    from seglab.cli import main
    from seglab.deployment.artifacts import read_card
    from seglab.deployment.export import export_artifact

    folder = tmp_path_factory.mktemp("exported")
    checkpoint = tiny_runs["mobilenet_v2"] / "best.pt"
    made = {}

    def get(format: str) -> tuple[Path, object, list[str]]:
        if format not in made:
            out = folder / f"model-{format}{FORMATS[format].suffix}"
            if format == "onnx":
                argv = ["export", "--checkpoint", str(checkpoint), "--out", str(out)]
                argv += ["--limit", "2", "--repeats", "2", "--no-progress"]
                stdout = io.StringIO()
                with contextlib.redirect_stdout(stdout):
                    assert main(argv) == 0
                made[format] = (out, read_card(out), stdout.getvalue().splitlines())
            else:
                lines = []
                result = export_artifact(
                    checkpoint,
                    out,
                    format,
                    limit=2,
                    repeats=2,
                    calibration=4,
                    report=lines.append,
                    progress=False,
                )
                made[format] = (out, result.card, lines)
        return made[format]

    return get
