"""The Python API is the command line's equal: the same options checked the same way, and the
same numbers and masks as `seglab train`, `evaluate`, `predict` and `export` give."""

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

import seglab
from seglab.cli import main
from seglab.config import RECIPE_OPTIONS
from seglab.errors import SeglabError, SeglabWarning
from tests.data.helpers import class_mask, write_image, write_mask
from tests.reporting.helpers import comparison

TINY = "layout: synthetic\nsize: [32, 32]\ntrain: 8\nval: 4\n"
CLASSES = ("sky", "ground", "building", "tree", "car", "pole", "sign")
# The two-step model is meant to be useless; where its warnings matter, the tests catch them.
pytestmark = pytest.mark.filterwarnings("ignore:.* is (a useless model|undertrained)")
QUICK = dict(weights="none", iterations=2, batch_size=4, workers=0, progress=False, auto="none")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One run trained through the API on a tiny synthetic dataset."""
    root = tmp_path_factory.mktemp("api")
    data = root / "tiny.yaml"
    data.write_text(TINY)
    with pytest.MonkeyPatch.context() as patch:  # no cache outside the test's folder
        patch.setenv("SEGLAB_CACHE", str(root / "cache"))
        patch.setenv("TORCH_HOME", str(root / "torch_home"))
        return seglab.train(data=data, encoder="mobilenet_v2", out=root / "run", **QUICK)


@pytest.fixture
def pictures(tmp_path):
    """Two RGB images of 40x48 (not the training size) in a folder, and one more alone."""
    rng = np.random.default_rng(0)
    folders = {"pair": tmp_path / "pair", "single": tmp_path / "single"}
    for folder in folders.values():
        folder.mkdir()
    for path in (folders["pair"] / "a.png", folders["pair"] / "b.png", folders["single"] / "c.png"):
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(path)
    return folders


def predicted_by_the_command_line(model, folder, out, *extra):
    assert (
        main(["predict", "--checkpoint", str(model), str(folder), "--out", str(out), *extra]) == 0
    )
    return {p.stem: np.asarray(Image.open(p)) for p in sorted(out.glob("?.png"))}


def test_train_returns_its_folder_and_the_metrics_it_wrote(run):
    assert (run.folder / "best.pt").is_file()
    assert run.metrics == json.loads((run.folder / "metrics.json").read_text())
    assert 0 <= run.metrics.miou <= 1 and tuple(run.metrics.iou) == CLASSES
    assert run.model.path == run.folder / "best.pt" and run.model.classes == CLASSES


def test_train_returns_what_the_command_prints_and_warns_what_matters(tmp_path, capsys):
    data = tmp_path / "tiny.yaml"
    data.write_text(TINY)
    options = {**QUICK, "iterations": 1}
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        run = seglab.train(data=data, out=tmp_path / "quiet", **options)
    assert capsys.readouterr().out == ""  # nothing printed: the log is returned
    assert any("best" in line and "mIoU" in line for line in run.log)
    ours = [str(w.message) for w in said if issubclass(w.category, SeglabWarning)]
    assert [line for line in ours if "fewer than" in line]  # 1 planned step: too few, said
    loud = seglab.train(data=data, out=tmp_path / "loud", verbose=True, **options)
    printed = capsys.readouterr().out
    assert loud.log and all(line in printed for line in loud.log)


def test_train_builds_the_configuration_the_command_line_builds(tmp_path, monkeypatch):
    """With no recipe option and no file, the fingerprint chooses (auto: all), as on the command
    line; a file means what it says; given options are never chosen."""
    made = []
    monkeypatch.setattr(
        "seglab.engine.train.train", lambda config, resume=None: made.append(config)
    )
    monkeypatch.setattr("seglab.api.train_model", lambda config, **_: made.append(config) or {})
    (tmp_path / "exp.yaml").write_text("lr: 0.01\nbatch_size: 2\n")
    out = str(tmp_path / "run")
    cases = [
        ({}, []),
        (
            {"crop_size": (16, 16), "time_budget": "2m"},
            ["--crop-size", "16x16", "--time-budget", "2m"],
        ),
        (
            {"config": tmp_path / "exp.yaml", "iterations": 3},
            ["--config", str(tmp_path / "exp.yaml"), "--iterations", "3"],
        ),
    ]
    for options, flags in cases:
        seglab.train(data="synthetic", out=out, **options)
        assert main(["train", "--data", "synthetic", "--out", out, *flags]) == 0
        api, cli = made[-2:]
        assert api == cli
    assert made[0].auto == RECIPE_OPTIONS
    assert "crop_size" not in made[2].auto and "time_budget" not in made[2].auto
    assert made[2].crop_size == (16, 16) and made[2].time_budget == 120
    assert made[4].auto == () and (made[4].lr, made[4].batch_size) == (0.01, 2)


def test_a_misspelt_or_bad_option_is_one_line_before_anything_is_written(tmp_path):
    with pytest.raises(SeglabError, match=r"unknown option 'bach_size'; did you mean batch_size\?"):
        seglab.train(data="synthetic", bach_size=4, out=tmp_path / "run")
    with pytest.raises(SeglabError, match="batch_size: 0 must be at least 1"):
        seglab.train(data="synthetic", batch_size=0, out=tmp_path / "run")
    with pytest.raises(SeglabError, match="margin 150 must be from 0 to 100"):
        seglab.compare(runs=[tmp_path / "a", tmp_path / "b"], margin=150, out=tmp_path / "cmp")
    assert list(tmp_path.iterdir()) == []


def test_load_takes_a_run_folder_or_its_checkpoint(run, tmp_path):
    by_folder, by_file = seglab.load(run.folder), seglab.load(run.folder / "best.pt", "cpu")
    assert by_folder.path == by_file.path == run.folder / "best.pt"
    assert by_file.form == "checkpoint" and by_file.encoder == "mobilenet_v2"
    assert by_file.record["miou"] == run.metrics.miou
    with pytest.raises(SeglabError, match=r"holds no best\.pt or last\.pt"):
        seglab.load(tmp_path)


def test_predict_gives_the_masks_seglab_predict_writes(run, pictures, tmp_path):
    checkpoint = run.folder / "best.pt"
    model = seglab.load(checkpoint, "cpu")
    cli = predicted_by_the_command_line(
        checkpoint, pictures["pair"], tmp_path / "o1", "--probabilities"
    )
    a, b = pictures["pair"] / "a.png", pictures["pair"] / "b.png"
    for pair in (
        [a, str(b)],
        [Image.open(a), np.asarray(Image.open(b))],
        [torch.from_numpy(np.asarray(Image.open(a)).copy()).permute(2, 0, 1), b],
        [np.asarray(Image.open(p)).astype(np.float32) / 255 for p in (a, b)],
    ):
        masks = model.predict(pair)
        assert [m.shape for m in masks] == [(40, 48), (40, 48)]
        assert np.array_equal(masks[0], cli["a"]) and np.array_equal(masks[1], cli["b"])
    classes, probabilities = model.predict([a, b], probabilities=True)[0]
    assert probabilities.shape == (7, 40, 48) and np.array_equal(classes, cli["a"])
    stored = np.load(tmp_path / "o1" / "a_probabilities.npy")
    assert np.allclose(probabilities, stored, atol=1e-3)
    # one image gives one mask, as seglab predict gives a folder of that one image
    single = predicted_by_the_command_line(checkpoint, pictures["single"], tmp_path / "o2")
    with pytest.warns(SeglabWarning, match="is undertrained: ran 2 steps"):  # as the CLI says
        alone = model.predict(Image.open(pictures["single"] / "c.png"))
    assert np.array_equal(alone, single["c"])
    with pytest.raises(SeglabError, match="give a list for several images"):
        model.predict(np.zeros((2, 8, 8, 3), np.uint8))


def test_evaluate_gives_the_numbers_seglab_evaluate_writes(run, tmp_path):
    checkpoint = run.folder / "best.pt"
    out = tmp_path / "metrics.json"
    argv = ["evaluate", "--checkpoint", str(checkpoint), "--out", str(out), "--workers", "0"]
    argv += ["--threads", "1"]  # given: auto's reason, recorded too, says how busy the cores were
    assert main([*argv, "--device", "cpu", "--flip", "--scales", "0.75,1"]) == 0
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        metrics = seglab.load(checkpoint, "cpu").evaluate(
            flip=True, scales=(0.75, 1), workers=0, threads=1, progress=False
        )
    assert metrics == json.loads(out.read_text())
    assert metrics["evaluation"]["scales"] == [0.75, 1.0]
    ours = [str(w.message) for w in said if issubclass(w.category, SeglabWarning)]
    assert len([line for line in ours if "useless" in line]) == bool(metrics["degenerate"])


def test_export_gives_the_exported_model_with_its_card(run, pictures, tmp_path):
    model = seglab.load(run.folder, "cpu")
    exported = model.export("onnx", tmp_path / "m.onnx", limit=2, repeats=2, progress=False)
    assert exported.form == "onnx" and exported.card.measured is not None
    assert (tmp_path / "m.onnx.card.json").is_file()
    a = pictures["single"] / "c.png"
    agree = np.mean(exported.predict(a) == model.predict(a))
    assert agree > 0.99  # ONNX Runtime fp32 against PyTorch fp32
    assert "onnx" in exported._repr_html_() and "sky" in exported._repr_html_()
    with pytest.raises(SeglabError, match="already an exported onnx model"):
        exported.export("onnx", tmp_path / "again.onnx")
    verified = exported.verify(repeats=2, progress=False)  # the card's 2 images, as seglab verify
    assert verified.passed and "verified against its card" in verified._repr_html_()
    timed = exported.benchmark(repeats=2, limit=1)
    assert [r.backend for r in timed.results] == ["onnx (file)", "eager"]
    assert "<table>" in timed._repr_html_() and "onnx (file)" in timed._repr_html_()
    with pytest.raises(SeglabError, match="is a checkpoint; verify checks an exported file"):
        model.verify()


def test_check_gives_what_seglab_data_check_prints(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SEGLAB_CACHE", str(tmp_path / "cache"))
    for split, i in (("train", 0), ("train", 1), ("val", 2)):
        write_image(tmp_path / "data" / "images" / split / f"{i}.png", seed=i)
        write_mask(tmp_path / "data" / "masks" / split / f"{i}.png", class_mask(seed=i))
    wrong = write_mask(tmp_path / "data" / "masks" / "train" / "1.png", class_mask((20, 30)))
    found = seglab.check(tmp_path / "data", progress=False)
    assert not found.ok and found.fingerprint is None
    assert [p for p in found.problems if str(wrong) in p and "20" in p]
    assert main(["data", "check", str(tmp_path / "data")]) == 1
    assert capsys.readouterr().out == f"{found}\n"
    write_mask(wrong, class_mask(seed=1))
    found = seglab.check(tmp_path / "data", progress=False)
    assert found.ok and found.fingerprint.train_images == 2 and "ok" in repr(found)
    assert main(["data", "check", str(tmp_path / "data")]) == 0
    assert capsys.readouterr().out == f"{found}\n" and "<pre>" in found._repr_html_()


def test_compare_asks_what_seglab_compare_asks(tmp_path, monkeypatch):
    """The same comparison requested from Python and from the command line reaches the library
    with the same configuration and options (everything but where progress lines go)."""
    import inspect

    import seglab.reporting.compare

    asked, signature = [], inspect.signature(seglab.reporting.compare.compare)

    class Asked(Exception):
        pass

    def record(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        asked.append({k: v for k, v in bound.arguments.items() if k != "report"})
        raise Asked

    monkeypatch.setattr("seglab.reporting.compare.compare", record)
    monkeypatch.setattr("seglab.api.compare_models", record)
    runs, out = [str(tmp_path / "a"), str(tmp_path / "b")], str(tmp_path / "cmp")
    with pytest.raises(Asked):
        seglab.compare(
            runs=runs, out=out, budget="50ms", memory="1.5GB", margin=2, forms=["onnx-int8"]
        )
    argv = ["compare", "--runs", *runs, "--out", out, "--budget", "50ms", "--memory", "1.5GB"]
    with pytest.raises(Asked):
        main([*argv, "--margin", "2", "--forms", "onnx-int8"])
    api, cli = asked
    assert api == cli and api["forms"] == ["onnx-int8"] and api["margin"] == 0.02


def test_each_result_shows_itself_in_jupyter(run):
    model_html, metrics_html = run.model._repr_html_(), run.metrics._repr_html_()
    for name in CLASSES:
        assert f">{name}<" in metrics_html and name in model_html
    assert "mIoU" in metrics_html and "mobilenet_v2" in model_html
    assert "ground" in str(run.metrics)  # print: the command line's table
    shown = seglab.Comparison(comparison(), run.folder)._repr_html_()
    assert "a/mobilenet_v2" in shown and "b/mobilenet_v2" in shown and "<table>" in shown


def test_import_seglab_loads_no_torch():
    """The API is imported on first use, so `import seglab` (and `seglab --help`) stays instant."""
    code = "import sys, seglab; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr
    assert seglab.train is seglab.api.train and seglab.Model is seglab.api.Model
