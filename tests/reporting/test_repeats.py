"""Repeated runs: the folders compare plans for seeds and folds, runs trained apart gathered into
models by their set-up, and a comparison over seed x fold runs made separately (each a plain
seglab train), scoring every train+val image once per seed and resampling the runs."""

from pathlib import Path

import numpy as np
import pytest

import seglab.reporting.forms
from seglab.cli import main
from seglab.config import TrainConfig
from seglab.errors import SeglabError
from seglab.reporting.compare import compare
from seglab.reporting.repeats import group_runs, plan_runs, setup_key

BASE = TrainConfig(workers=0, progress=False)


def test_compare_plans_one_folder_per_seed_and_fold(tmp_path):
    single = plan_runs(["vgg19"], tmp_path, seeds=1, folds=0, base_seed=0)["vgg19"]
    assert [(r.folder, r.seed, r.fold) for r in single] == [(tmp_path / "runs/vgg19", 0, None)]
    repeated = plan_runs(["vgg19"], tmp_path, seeds=2, folds=3, base_seed=5)["vgg19"]
    assert [r.folder.name for r in repeated][:4] == [
        "seed5-fold1of3",
        "seed5-fold2of3",
        "seed5-fold3of3",
        "seed6-fold1of3",
    ]
    assert {(r.seed, r.fold) for r in repeated} == {
        (s, f"{i}/3") for s in (5, 6) for i in (1, 2, 3)
    }


def test_runs_are_one_model_when_only_seed_fold_and_machine_differ(tmp_path):
    a = TrainConfig(lr=0.01, seed=0, fold="1/2", workers=0, device="cpu")
    same = [a, TrainConfig(lr=0.01, seed=0, fold="2/2", workers=4, device="cuda")]
    other = TrainConfig(lr=0.02, seed=0)
    assert setup_key(same[0]) == setup_key(same[1]) != setup_key(other)
    folders = [tmp_path / "high" / "f1", tmp_path / "high" / "f2", tmp_path / "low" / "f1"]
    models = group_runs(folders, [*same, other], ["high/f1", "high/f2", "low/f1"])
    assert [(m.name, len(m.folders)) for m in models] == [("high", 2), ("low/f1", 1)]


def test_repeats_that_do_not_fit_together_are_refused(tmp_path):
    folders = [tmp_path / "a", tmp_path / "b"]
    twice = [TrainConfig(seed=1), TrainConfig(seed=1)]
    with pytest.raises(SeglabError, match=r"are the same run \(seed 1, fold none\)"):
        group_runs(folders, twice, ["a", "b"])
    gap = [TrainConfig(seed=0, fold="1/3"), TrainConfig(seed=0, fold="3/3")]
    with pytest.raises(SeglabError, match="the runs of seed 0 lack fold 2/3"):
        group_runs(folders, gap, ["a", "b"])


@pytest.fixture(scope="module")
def seed_fold_runs(tmp_path_factory) -> list[Path]:
    """Two set-ups (learning rates) x 2 seeds x 2 folds, each a plain `seglab train` run."""
    root = tmp_path_factory.mktemp("repeats")
    data = root / "tiny.yaml"
    data.write_text("layout: synthetic\nsize: [32, 40]\ntrain: 12\nval: 6\n")
    runs = []
    for lr in ("0.001", "0.01"):
        for seed in ("0", "1"):
            for fold in ("1/2", "2/2"):
                out = root / f"lr{lr}" / f"seed{seed}-fold{fold[0]}"
                argv = ["train", "--auto", "none", "--data", str(data), "--weights", "none"]
                argv += ["--iterations", "2", "--batch-size", "4", "--workers", "0"]
                argv += ["--lr", lr, "--seed", seed, "--fold", fold, "--no-progress"]
                assert main([*argv, "--out", str(out)]) == 0
                runs.append(out)
    return runs


def test_compare_gathers_seed_and_fold_runs_made_apart(seed_fold_runs, tmp_path, monkeypatch):
    # The repeats are what is tested: the PyTorch form alone, timed twice, and its memory taken
    # as given, not measured in fresh processes (tests/reporting/test_compare.py measures it).
    def memory(files, *args, **kwargs):
        return [(2.0, 1.0)] * len(files)

    monkeypatch.setattr(seglab.reporting.forms, "FORMS", (seglab.reporting.forms.PYTORCH,))
    monkeypatch.setattr(seglab.reporting.forms, "peak_inference_memories", memory)
    shuffled = [seed_fold_runs[k] for k in (5, 0, 3, 6, 1, 4, 7, 2)]
    out = tmp_path / "cmp"
    comparison = compare(BASE, runs=shuffled, out=out, report=lambda line: None, repeats=2)
    assert comparison.folds == 2
    assert comparison.images == 18  # every train+val image, scored by the fold that held it out
    assert [m.name for m in comparison.models] == ["lr0.01", "lr0.001"]  # as first given
    for model in comparison.models:
        assert [(r.seed, r.fold) for r in model.runs] == [
            (0, "1/2"),
            (0, "2/2"),
            (1, "1/2"),
            (1, "2/2"),
        ]
        assert model.seeds == 2 and model.miou_sd is not None
        per_seed = [np.mean([r.miou for r in model.runs if r.seed == s]) for s in (0, 1)]
        assert min(per_seed) - 0.2 <= model.miou <= max(per_seed) + 0.2
    difference = comparison.models[1].versus_first
    assert difference.runs == (2, 2) and difference.images == 18
    assert difference.seed_noise is None  # measured by the seeds, not estimated
    report = (out / "report.md").read_text()
    assert "seed1-fold2" in report  # every individual run is listed


def test_options_the_fingerprint_chose_per_fold_do_not_split_a_model():
    chosen = ("val_interval", "class_weights")
    fold1 = TrainConfig(fold="1/2", val_interval=3, class_weights="none", auto=chosen)
    fold2 = TrainConfig(fold="2/2", val_interval=4, class_weights="median_frequency", auto=chosen)
    given = TrainConfig(fold="1/2", val_interval=3, class_weights="none")
    assert setup_key(fold1) == setup_key(fold2) != setup_key(given)
