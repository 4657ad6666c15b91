"""The format registry: every entry's module implements the same contract, so export, verify,
evaluate, predict, benchmark, serve and compare take a new format from one module and one
entry."""

import subprocess
import sys

import pytest

from seglab.deployment.backends import BACKENDS, FORMAT_OF_BACKEND
from seglab.deployment.card import Tolerances
from seglab.deployment.formats import (
    ARTIFACT_SUFFIXES,
    FORMATS,
    container,
    get_format,
    is_artifact,
)
from seglab.errors import SeglabError

CONTRACT = ("write", "load", "read_card_text", "write_card_text", "content_sha256")


@pytest.mark.parametrize("name", list(FORMATS))
def test_each_format_module_implements_the_contract(name):
    format = FORMATS[name]
    module = format.implementation()
    for function in CONTRACT:
        assert callable(getattr(module, function)), f"{format.module} lacks {function}"
    assert isinstance(module.TOLERANCES, Tolerances)
    assert isinstance(module.FIXED_SIZE, bool)
    assert module.CALIBRATION_METHOD is None or isinstance(module.CALIBRATION_METHOD, str)
    assert format.file_name.endswith(format.suffix) and format.suffix in ARTIFACT_SUFFIXES
    assert FORMAT_OF_BACKEND[format.backend] == name and format.backend in BACKENDS


def test_files_are_recognised_by_suffix():
    assert is_artifact("a/model.ONNX") and is_artifact("m.pte") and not is_artifact("best.pt")
    assert container("m.onnx") is FORMATS["onnx"].implementation()
    with pytest.raises(SeglabError, match=r"best\.pt is not an exported model"):
        container("best.pt")
    with pytest.raises(SeglabError, match="unknown format 'tflite'; choose from onnx"):
        get_format("tflite")


def test_the_registry_is_read_without_torch():
    """`seglab --help` lists the formats and backends: reading them must not import torch."""
    code = (
        "import sys; import seglab.deployment.formats, seglab.deployment.backends; "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_onnx_runtime_takes_the_process_threads(exported):
    """ONNX Runtime's intra-op threads follow the thread choice (torch's count when the
    session opens), as a busy machine's choice of fewer threads must hold for it too."""
    from seglab.deployment.formats.onnx_fp32 import OnnxSegmenter
    from seglab.engine.machine import torch_threads

    path, card, _ = exported("onnx")
    for threads in (1, 2):
        with torch_threads(threads):
            session = OnnxSegmenter(path, card.info).session
        options = session.get_session_options()
        assert options.intra_op_num_threads == threads
