"""A form this machine cannot build (ExecuTorch not installed, say) is reported and left out; the
others are still measured."""

from seglab.data.dataset import open_data
from seglab.engine.checkpoint import Checkpoint
from seglab.engine.evaluate import evaluate_split
from seglab.engine.segmenter import checkpoint_segmenter
from seglab.errors import SeglabError
from seglab.reporting import forms
from seglab.reporting.forms import Form, Source, measure_forms


def test_a_form_that_cannot_be_built_here_is_reported_and_left_out(
    tiny_runs, tmp_path, monkeypatch
):
    def missing(source):
        raise SeglabError("ExecuTorch is not installed here")

    pytorch = forms.FORMS[0]
    monkeypatch.setattr(forms, "FORMS", (pytorch, Form("executorch", "", missing, pytorch.file)))
    path = tiny_runs["mobilenet_v2"] / "best.pt"
    checkpoint = Checkpoint.load(path)
    data = open_data(str(tiny_runs["data"]))
    segmenter = checkpoint_segmenter(checkpoint, "cpu")
    evaluation = evaluate_split(segmenter, data, "val", per_image=True, progress=False)
    lines = []
    source = Source("m", checkpoint, path, tmp_path, [], (64, 80))
    measured, unavailable = measure_forms(source, data, "val", evaluation, report=lines.append)
    assert [(r.model, r.form, r.miou) for r, _ in measured] == [
        ("m", "pytorch", evaluation.metrics["miou"])
    ]
    assert unavailable == {"executorch": "ExecuTorch is not installed here"}
    assert lines == ["m as executorch: not available here (ExecuTorch is not installed here)"]
