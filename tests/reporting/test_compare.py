"""A report built from two tiny finished runs holds every section, with consistent numbers."""

import json
import re

import pytest

from seglab.cli import main
from seglab.engine.evaluate import evaluate_checkpoint


@pytest.fixture(scope="module")
def report(tiny_runs, tmp_path_factory):
    out = tmp_path_factory.mktemp("compare")
    argv = [
        "compare",
        "--runs",
        str(tiny_runs["vgg19"]),
        str(tiny_runs["mobilenet_v2"]),
        "--out",
        str(out),
        "--examples",
        "3",
        "--no-progress",
    ]
    assert main(argv) == 0
    return out


def test_every_output_and_section_is_there(report):
    assert {"report.html", "report.md", "results.json"} <= {p.name for p in report.iterdir()}
    html = (report / "report.html").read_text()
    for section in (
        "Summary",
        "Per-class IoU",
        "Is the difference real?",
        "Setup",
        "Accuracy against cost",
        "Training curves",
        "Examples",
    ):
        assert f"<h2>{section}" in html, section
    assert html.count("src='data:image/png;base64,") == 4  # self-contained: no external files
    assert "<img" in html and "src='per_class" not in html


def test_numbers_are_consistent_across_outputs(report, tiny_runs):
    results = json.loads((report / "results.json").read_text())
    vgg, mobilenet = results["models"]
    assert (vgg["name"], mobilenet["name"]) == ("vgg19", "mobilenet_v2")
    for model, run in ((vgg, tiny_runs["vgg19"]), (mobilenet, tiny_runs["mobilenet_v2"])):
        independent = evaluate_checkpoint(run / "best.pt", workers=0, progress=False)
        assert model["metrics"]["miou"] == pytest.approx(independent["miou"], abs=1e-9)
        assert model["cost"]["gflops"] > 0 and model["cost"]["latency_ms"] > 0
        assert model["cost"]["peak_memory_mb"] > model["cost"]["model_memory_mb"] > 0
    assert vgg["cost"]["gflops"] > 5 * mobilenet["cost"]["gflops"]
    difference = mobilenet["versus_first"]["difference"]
    assert difference == pytest.approx(
        mobilenet["metrics"]["miou"] - vgg["metrics"]["miou"], abs=1e-9
    )
    markdown = (report / "report.md").read_text()
    for model in (vgg, mobilenet):
        row = next(
            line for line in markdown.splitlines() if line.startswith(f"| {model['name']} |")
        )
        assert f"{100 * model['metrics']['miou']:.2f}" in row
    assert f"{100 * difference:+.2f}" in markdown
    assert re.search(r"\| sky \| [\d.*]+ \| [\d.*]+ \|", markdown)


def test_compare_needs_two_models(tiny_runs, tmp_path, capsys):
    assert main(["compare", "--runs", str(tiny_runs["vgg19"]), "--out", str(tmp_path)]) == 2
    assert "at least two models" in capsys.readouterr().err
