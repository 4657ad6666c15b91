"""A comparison of two tiny finished runs: every output and section, numbers that agree with the
evaluation and across outputs, every model measured in every form with a verdict written out, and
mistakes in --out, --budget or the models refused before any work."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import seglab.reporting.compare
from seglab.cli import main
from seglab.config import TrainConfig
from seglab.data.dataset import open_data
from seglab.data.show import colorize
from seglab.deployment.measure import evaluate_model
from seglab.errors import SeglabError
from seglab.reporting.compare import compare, no_verdict_reason, run_names
from seglab.reporting.forms import FORMS
from seglab.reporting.report import difference_lines, summary_table
from seglab.reporting.results import Flag
from tests.deployment.helpers import unwritable_folder
from tests.reporting.helpers import model as model_result

BASE = TrainConfig(workers=0, progress=False)
COMPARED_FORMS = tuple(form for form in FORMS if form.name in ("pytorch", "onnx"))
COMPARED = [form.name for form in COMPARED_FORMS]


@pytest.fixture(scope="module")
def compared(tiny_runs, tmp_path_factory):
    """The tiny runs compared. They trained 3 steps and predict one class everywhere, which
    compare rightly calls degenerate and gives no verdict for; these tests follow the verdict
    through to its exported file, so here the models are taken as sound. Each latency is the
    median of 2 runs (the tests check that it is measured, not how fast). One exported form,
    ONNX, beside PyTorch (--forms): compare treats every form alike, each costs this fixture an
    export, an evaluation and fresh processes per model (INT8 a calibration too, and the ExecuTorch
    forms minutes of lowering), and tests/deployment exports and runs every form."""
    out = tmp_path_factory.mktemp("compare") / "cmp"
    runs = [tiny_runs["vgg19"], tiny_runs["mobilenet_v2"]]
    export = out.parent / "ship"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(seglab.reporting.compare, "degenerate", lambda *args: None)
        return out, compare(
            BASE,
            runs=runs,
            out=out,
            examples=3,
            report=lambda line: None,
            export=export,
            repeats=2,
            forms=["onnx"],  # pytorch is always measured
        )


def test_no_verdict_when_every_model_is_degenerate():
    useless = [
        model_result(
            name,
            {"sky": 0.1, "road": 0.0},
            flags=[Flag("degenerate", f"predicts sky on {share}% of scored pixels")],
        )
        for name, share in (("vgg19", 99.9), ("mobilenet_v2", 100.0))
    ]
    reason = no_verdict_reason(useless)
    assert reason.startswith(
        "every compared model is degenerate (vgg19 predicts sky on 99.9% of scored pixels; "
        "mobilenet_v2 predicts sky on 100.0% of scored pixels)"
    )
    assert "Train longer" in reason


def test_every_output_and_section_is_there(compared):
    out, _ = compared
    assert {"report.html", "report.md", "results.json", "examples.png"} <= {
        p.name for p in out.iterdir()
    }
    html = (out / "report.html").read_text()
    for section in (
        "Verdict",
        "Summary",
        "Every model in every form",
        "Per-class IoU",
        "Confusion matrices",
        "Is the difference real?",
        "Setup",
        "Accuracy against cost",
        "Training curves",
        "Examples",
    ):
        assert f"<h2>{section}" in html, section
    assert html.count("src='data:image/png;base64,") == 5  # self-contained: no external files
    assert "**" not in html


def test_numbers_agree_with_the_evaluation_and_across_outputs(compared, tiny_runs):
    out, comparison = compared
    results = json.loads((out / "results.json").read_text())
    assert results == json.loads(json.dumps(comparison.to_dict()))
    vgg, mobilenet = results["models"]
    assert (vgg["name"], mobilenet["name"]) == ("vgg19", "mobilenet_v2")
    for model, run in ((vgg, tiny_runs["vgg19"]), (mobilenet, tiny_runs["mobilenet_v2"])):
        independent = evaluate_model(run / "best.pt", progress=False)
        assert model["metrics"]["miou"] == independent["miou"]
        assert model["metrics"]["per_class"] == independent["per_class"]
        assert model["metrics"]["confusion"] == independent["confusion"]  # the figure's numbers
        assert model["cost"]["gflops"] > 0 and model["cost"]["latency_ms"] > 0
        assert model["cost"]["peak_memory_mb"] > model["cost"]["model_memory_mb"] > 0
        assert model["cost"]["training_minutes"] > 0
        assert [p["step"] for p in model["history"]] == [3]
    assert vgg["cost"]["gflops"] > 5 * mobilenet["cost"]["gflops"]
    difference = mobilenet["versus_first"]["difference"]
    assert difference == pytest.approx(
        mobilenet["metrics"]["miou"] - vgg["metrics"]["miou"], abs=1e-9
    )
    assert vgg["versus_first"] is None
    markdown = (out / "report.md").read_text()
    header, rows = summary_table(comparison)
    for model, row in zip((vgg, mobilenet), rows):
        line = next(x for x in markdown.splitlines() if x.startswith(f"| {model['name']} |"))
        assert line == "| " + " | ".join(row) + " |"
        assert row[header.index("mIoU %")] == f"{100 * model['metrics']['miou']:.2f}"
    assert f"{100 * difference:+.2f}" in markdown
    assert difference_lines(comparison)[0].startswith(
        f"mobilenet_v2 - vgg19: {100 * difference:+.2f}"
    )
    assert re.search(r"\| sky \| [\d.*]+ \| [\d.*]+ \|", markdown)


def test_every_model_in_every_form_and_the_verdict_written_out(compared, tiny_runs):
    out, _ = compared
    results = json.loads((out / "results.json").read_text())
    forms = [(f["model"], f["form"]) for f in results["forms"]]
    assert forms == [(m, f.name) for m in ("vgg19", "mobilenet_v2") for f in COMPARED_FORMS]
    for measured in results["forms"]:
        model = next(m for m in results["models"] if m["name"] == measured["model"])
        if measured["form"] == "pytorch":  # the comparison's own evaluation and cost
            assert measured["miou"] == model["metrics"]["miou"]
            assert measured["latency_ms"] == model["cost"]["latency_ms"]
        else:  # the exported forms keep the model's accuracy
            assert measured["miou"] == pytest.approx(model["metrics"]["miou"], abs=0.05)
        assert measured["latency_ms"] > 0 and measured["model_memory_mb"] > 0
    verdict = results["verdict"]
    assert (verdict["chosen"]["model"], verdict["chosen"]["form"]) in forms
    assert verdict["rule"].startswith("the fastest of the model x forms as accurate as")
    shipped = Path(verdict["exported"])
    assert shipped.parent == out.parent / "ship" and shipped.is_file()
    card = json.loads(shipped.with_name(f"{shipped.name}.card.json").read_text())
    assert card["format"] == verdict["chosen"]["form"]
    run = tiny_runs[verdict["chosen"]["model"]]
    assert card["source"]["checkpoint"] == str(run / "best.pt")
    assert shipped.with_name(f"{shipped.name}.card.md").is_file()
    assert "- Choose " in (out / "report.md").read_text().split("## Summary")[0]


def test_budgets_are_checked_while_reading_the_flags(tmp_path, capsys, no_training):
    for flag, value, message in (
        ("--budget", "fast", "--budget: 'fast' is not an amount, e.g. 50ms or 0.2s"),
        ("--memory", "0MB", "--memory: '0MB' must be positive"),
    ):
        assert main(["compare", flag, value, "--out", str(tmp_path / "cmp")]) == 2
        assert capsys.readouterr().err.strip() == f"seglab: error: {message}"
    assert not (tmp_path / "cmp").exists()


def test_the_example_grid_shows_image_truth_and_predictions(compared, tiny_runs):
    out, comparison = compared
    picture = np.array(Image.open(out / "examples.png").convert("RGB"))
    scale, gap, (height, width) = 2, 6, comparison.eval_size  # 64-pixel images drawn twice as big
    assert picture.shape[1] == scale * (4 * width + 3 * gap)  # image, truth, 2 models
    assert picture.shape[0] > scale * (3 * height + 2 * gap)  # 3 rows, then the legend
    image, mask = open_data(str(tiny_runs["data"])).split("val")[comparison.examples[0]]
    cell = picture[: scale * height : scale, : scale * width : scale]
    assert np.abs(cell.astype(int) - (image.permute(1, 2, 0).numpy() * 255).round()).max() <= 1
    left = scale * (width + gap)
    truth = picture[: scale * height : scale, left : left + scale * width : scale]
    assert (truth == colorize(mask.numpy(), open_data("synthetic").info)).all()


def test_runs_are_named_by_their_folders_told_apart_when_alike(tmp_path):
    a, b, c = tmp_path / "a" / "mobilenet_v2", tmp_path / "b" / "mobilenet_v2", tmp_path / "vgg19"
    assert run_names([a, b, c]) == ["a/mobilenet_v2", "b/mobilenet_v2", "vgg19"]
    deep = [tmp_path / "x" / "same" / "run", tmp_path / "y" / "same" / "run"]
    assert run_names(deep) == ["x/same/run", "y/same/run"]
    with pytest.raises(SeglabError, match=r"names .*vgg19 twice"):
        run_names([c, a, tmp_path / "b" / ".." / "vgg19"])


@pytest.fixture
def no_training(monkeypatch):
    def train(config, **options):
        raise AssertionError("compare trained before checking what it was given")

    import seglab.engine.train

    monkeypatch.setattr(seglab.engine.train, "train", train)


def test_an_out_with_an_earlier_comparison_is_refused_before_training(compared, no_training):
    out, _ = compared
    with pytest.raises(SeglabError) as error:
        compare(BASE, encoders=["vgg19", "mobilenet_v2"], out=out)
    assert str(error.value) == (
        f"compare: --out {out} already holds a comparison (report.html, report.md, "
        "results.json); choose another --out"
    )


def test_an_out_that_cannot_be_written_is_refused_before_training(tmp_path, no_training):
    taken = tmp_path / "taken"
    taken.write_text("a file")
    with pytest.raises(SeglabError, match=rf"^compare: --out {taken} is a file"):
        compare(BASE, encoders=["vgg19", "mobilenet_v2"], out=taken)
    locked = unwritable_folder(tmp_path)
    with pytest.raises(SeglabError, match=rf"^compare: --out {locked / 'cmp'} cannot be written"):
        compare(BASE, encoders=["vgg19", "mobilenet_v2"], out=locked / "cmp")
    runs_only = tmp_path / "old"
    (runs_only / "runs" / "vgg19").mkdir(parents=True)
    with pytest.raises(SeglabError, match=r"already holds a comparison \(runs\)"):
        compare(BASE, encoders=["vgg19", "mobilenet_v2"], out=runs_only)


def test_the_models_are_checked_before_training(tmp_path, tiny_runs, no_training):
    out = tmp_path / "cmp"
    for encoders, message in (
        (["vgg19"], "at least two models"),
        (["vgg19", "vgg19"], "--encoders names vgg19 twice"),
        (["vgg19", "vgg91"], "unknown encoder 'vgg91'"),
    ):
        with pytest.raises(SeglabError, match=message):
            compare(BASE, encoders=encoders, out=out)
    with pytest.raises(SeglabError, match=r"has splits train, val, test, not 'tset'"):
        compare(BASE, encoders=["vgg19", "mobilenet_v2"], out=out, split="tset")
    with pytest.raises(SeglabError, match=r"at least two models"):
        compare(BASE, runs=[tiny_runs["vgg19"]], out=out)
    with pytest.raises(SeglabError, match=rf"{tmp_path}: no best.pt or last.pt"):
        compare(BASE, runs=[tiny_runs["vgg19"], tmp_path], out=out)
    both = [tiny_runs["vgg19"], tiny_runs["mobilenet_v2"]]
    with pytest.raises(SeglabError, match=r"--forms 'onx': choose from pytorch, .*mean onnx\?"):
        compare(BASE, runs=both, out=out, forms=["onx"])
    assert not out.exists()


def test_an_export_folder_that_holds_files_is_refused_before_training(tmp_path, no_training):
    taken = tmp_path / "ship"
    taken.mkdir()
    (taken / "model.onnx").write_text("an earlier model")
    with pytest.raises(SeglabError, match=rf"^compare: --export {taken} is not empty"):
        compare(BASE, encoders=["vgg19", "mobilenet_v2"], out=tmp_path / "cmp", export=taken)
