"""docs/tutorial.ipynb runs end to end as a reader runs it (a Jupyter kernel of this interpreter,
in a folder of its own, cell after cell), and is kept in the repository without outputs."""

import json
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[2] / "docs" / "tutorial.ipynb"
# A cell that takes this long has hung (the longest, the comparison, takes about half a minute).
CELL_TIMEOUT_S = 600


def kernel_of_this_interpreter(folder: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A kernel spec named python3 that runs this interpreter (this virtual environment), found
    before any python3 kernel installed on the machine."""
    spec = folder / "kernels" / "python3"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    kernel = {"argv": argv, "display_name": "Python 3", "language": "python"}
    (spec / "kernel.json").write_text(json.dumps(kernel))
    monkeypatch.setenv("JUPYTER_PATH", str(folder))
    return "python3"


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """The notebook executed in an empty folder (its working directory), with its outputs.
    The kernel sees no GPU, so the GPU section takes its CPU branch wherever the tests run; it
    inherits TORCH_HOME and SEGLAB_CACHE, each a folder of the test's own (conftest)."""
    work = tmp_path_factory.mktemp("tutorial")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TORCH_HOME", str(work / "torch_home"))
        patch.setenv("SEGLAB_CACHE", str(work / "seglab_cache"))
        patch.setenv("CUDA_VISIBLE_DEVICES", "")
        kernel = kernel_of_this_interpreter(tmp_path_factory.mktemp("jupyter"), patch)
        client = NotebookClient(
            notebook,
            timeout=CELL_TIMEOUT_S,
            kernel_name=kernel,
            resources={"metadata": {"path": str(work)}},
        )
        client.execute()  # a cell that raises fails the test (CellExecutionError, with its cell)
    return work, notebook


def outputs_text(notebook) -> str:
    """Everything the cells printed and showed, as text and HTML."""
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            data = output.get("data", {})
            parts += [data.get("text/plain", ""), data.get("text/html", "")]
    return "\n".join(parts)


def test_the_tutorial_runs_and_makes_what_it_says(executed):
    work, notebook = executed
    for run in ("mobilenet_v2", "vgg19"):
        assert (work / "runs" / run / "best.pt").is_file()
    assert (work / "runs" / "compare" / "report.html").is_file()
    onnx = work / "exports" / "mobilenet_v2.onnx"
    assert onnx.is_file() and onnx.with_name(onnx.name + ".card.json").is_file()
    shown = outputs_text(notebook)
    assert "verified against its card" in shown
    assert "image/png" in json.dumps([c.get("outputs", []) for c in notebook.cells])  # the plots
    assert "no GPU here" in shown  # the GPU section took its CPU branch


def test_the_committed_notebook_has_no_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code
    for cell in code:
        assert cell.outputs == [] and cell.execution_count is None, cell.source[:80]
    assert "widgets" not in notebook.metadata
