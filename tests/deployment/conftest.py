import contextlib
import io
from pathlib import Path

import pytest

from seglab.deployment.formats import FORMATS

# The tiny run each format is exported from. ExecuTorch INT8 takes the VGG19 run: lowering time
# follows the number of graph nodes (about 200 in its U-Net, 600 in MobileNetV2's), and it was
# the slowest fixture of the suite. fp32 ExecuTorch stays on MobileNetV2, the phone model: its
# one-partition check must cover depthwise convolutions, ReLU6 and residual adds.
SOURCES = {"onnx": "mobilenet_v2", "onnx-int8": "mobilenet_v2", "executorch": "mobilenet_v2"}


def source(format: str) -> str:
    """The encoder of the tiny run that ``exported(format)`` comes from (a key of tiny_runs)."""
    return SOURCES.get(format, "vgg19")


@pytest.fixture(scope="session")
def exported(tiny_runs, tmp_path_factory):
    """``exported(format)``: a tiny run (``source(format)``'s) exported in ``format`` (each once
    a session), measured on 2 validation images, as (path, card, progress lines). The ONNX file
    is written through the command line."""
    from seglab.cli import main
    from seglab.deployment.artifacts import read_card
    from seglab.deployment.export import export_artifact

    folder = tmp_path_factory.mktemp("exported")
    made = {}

    def get(format: str) -> tuple[Path, object, list[str]]:
        if format not in made:
            checkpoint = tiny_runs[source(format)] / "best.pt"
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
