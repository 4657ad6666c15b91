"""`seglab data review`: the ranking of a dataset where one mask is known to be wrong (a model
that is always right: a stub reading the class off the image), the command end to end on a tiny
dataset, and its page in a real browser. The scores themselves: test_label_scores.py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from seglab.cli import main
from seglab.config import TrainConfig
from seglab.data.dataset import open_data
from seglab.data.info import DatasetInfo
from seglab.engine.checkpoint import Checkpoint
from seglab.models.unet import build_model
from seglab.reporting.label_scores import disagreement_regions, image_score
from seglab.reporting.review import (
    Scorer,
    out_of_fold_probabilities,
    score_labelled,
    scorer_for,
)
from tests.serving.test_page_browser import chromium

SIZE = (30, 40)  # height, width
LEVEL = 100  # the red value of class c is c * LEVEL: what the stub model reads


# --- the ranking where one mask is known wrong --------------------------------------------------


class ClassFromRed:
    """A model that is always right on the dataset below: the class is the red value / LEVEL."""

    name, kind, device = "stub", "torch", torch.device("cpu")

    def __init__(self, info: DatasetInfo):
        self.info = info

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        classes = (images[:, 0] * 255 / LEVEL).round().long().clamp(0, self.info.num_classes - 1)
        return 8.0 * torch.nn.functional.one_hot(classes, self.info.num_classes).permute(0, 3, 1, 2)


def scene(seed: int) -> np.ndarray:
    """H x W classes 0-2 in 10 x 10 blocks."""
    blocks = np.random.default_rng(seed).integers(0, 3, (SIZE[0] // 10, SIZE[1] // 10))
    return np.kron(blocks, np.ones((10, 10), np.int64))


def write_dataset(root: Path, counts: dict[str, int], wrong: tuple[str, int] | None) -> Path:
    """images/ + masks/ per split; the image's red channel says its class; the mask of image
    ``wrong`` (split, index) has a 6 x 8 block relabelled (class + 1)."""
    for split, count in counts.items():
        for i in range(count):
            classes = scene(100 * len(split) + i)
            rgb = np.random.default_rng(i).integers(0, 60, (*SIZE, 3)).astype(np.uint8)
            rgb[..., 0] = classes * LEVEL
            mask = classes.copy()
            if wrong == (split, i):
                mask[12:18, 22:30] = (mask[12:18, 22:30] + 1) % 3
            for folder, array in (("images", rgb), ("masks", mask.astype(np.uint8))):
                (root / folder / split).mkdir(parents=True, exist_ok=True)
                Image.fromarray(array).save(root / folder / split / f"img{i:03d}.png")
    return root


def test_the_image_with_a_flipped_region_ranks_first_and_its_region_is_reported(tmp_path):
    root = write_dataset(tmp_path / "d", {"train": 4, "val": 3}, wrong=("val", 1))
    data = open_data(str(root), progress=False)
    trained = {str((root / "images/train/img000.png").resolve())}
    scorers = [Scorer(ClassFromRed(data.info), trained, "stub")]
    suspects, drawn, classes = score_labelled(
        scorers, data, str(root), ["train", "val"], 2, 3, False
    )
    assert len(suspects) == 7 and len(drawn) == 2
    first = suspects[0]
    assert (first.split, first.name, first.trained_on) == ("val", "img001.png", False)
    assert first.score > 0 and all(s.score == 0 for s in suspects[1:])
    assert first.regions[0].box == (22, 12, 30, 18) and first.regions[0].area == 48
    assert first.pictures["mask"].startswith("pictures/001-val-img001")
    assert [s.trained_on for s in suspects if s.name == "img000.png" and s.split == "train"] == [
        True
    ]
    assert sum(c["contradicted"] > 0 for c in classes.values()) >= 1


def test_each_image_is_scored_by_a_model_not_trained_on_it_where_there_is_one(tmp_path):
    root = write_dataset(tmp_path / "d", {"train": 2, "val": 2}, wrong=("val", 1))
    data = open_data(str(root), progress=False)
    train = {str((root / f"images/train/img{i:03d}.png").resolve()) for i in range(2)}
    wrong = str((root / "images/val/img001.png").resolve())
    first = Scorer(ClassFromRed(data.info), train | {wrong}, "first")
    second = Scorer(ClassFromRed(data.info), train, "second")
    unknown = Scorer(ClassFromRed(data.info), None, "unknown")
    assert scorer_for(wrong, [first, second]) == 1  # out of fold
    assert scorer_for(wrong, [first, unknown]) == 1  # not known beats trained on
    assert scorer_for(next(iter(train)), [first, second]) == 0  # trained on by all: the first
    suspects, _, _ = score_labelled([first, second], data, str(root), ["train", "val"], 0, 2, False)
    by_name = {(s.split, s.name): (s.model, s.trained_on) for s in suspects}
    assert by_name == {
        ("train", "img000.png"): ("first", True),
        ("train", "img001.png"): ("first", True),
        ("val", "img000.png"): ("first", False),
        ("val", "img001.png"): ("second", False),
    }
    assert suspects[0].name == "img001.png" and suspects[0].model == "second"


# --- the command end to end ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def reviewed(tmp_path_factory) -> dict[str, Path]:
    """`seglab data review` once, with an untrained checkpoint of the tiny dataset's classes
    and an unlabelled folder holding two copies of one image."""
    root = tmp_path_factory.mktemp("review")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SEGLAB_CACHE", str(root / "cache"))
        env.setenv("TORCH_HOME", str(root / "torch_home"))
        data = write_dataset(root / "data", {"train": 3, "val": 2}, wrong=("train", 2))
        model = build_model("mobilenet_v2", 3, encoder_weights=None)
        info = open_data(str(data), progress=False).info
        config = TrainConfig(data=str(data.resolve()), encoder="mobilenet_v2", weights="none")
        Checkpoint(model.spec, model.state_dict(), info, config, {}).save(root / "best.pt")
        unlabelled = root / "unlabelled"
        unlabelled.mkdir()
        for name in ("a.png", "a_copy.png"):
            shutil.copy(data / "images/val/img000.png", unlabelled / name)
        shutil.copy(data / "images/val/img001.png", unlabelled / "b.png")
        argv = ["data", "review", "--checkpoint", str(root / "best.pt"), "--data", str(data)]
        argv += ["--unlabelled", str(unlabelled), "--out", str(root / "out"), "--top", "3"]
        assert main([*argv, "--no-progress", "--device", "cpu"]) == 0
    return {"out": root / "out", "argv": argv}


def test_the_command_writes_the_ranked_lists_and_a_page_of_pictures(reviewed):
    out = reviewed["out"]
    found = json.loads((out / "review.json").read_text())
    assert found["splits"] == ["train", "val"] and len(found["suspects"]) == 5
    assert {s["trained_on"] for s in found["suspects"]} == {True, False}
    assert [s["rank"] for s in found["suspects"]] == [1, 2, 3, 4, 5]
    scores = [s["score"] for s in found["suspects"]]
    assert scores == sorted(scores, reverse=True)
    drawn = [s for s in found["suspects"] if s["pictures"]]
    assert len(drawn) == 3 and all(
        (out / p).is_file() for s in drawn for p in s["pictures"].values()
    )
    picks = [c["name"] for c in found["label_next"]]
    assert sorted(picks) == ["a.png", "a_copy.png", "b.png"]
    assert {"a.png", "a_copy.png"} != set(picks[:2])  # the copy comes after the other image
    page = (out / "review.html").read_text()
    assert 'name="viewport"' in page and "pictures/001-" in page


def test_out_of_fold_probabilities_are_what_the_review_scored(reviewed):
    checkpoint, data = reviewed["argv"][3], reviewed["argv"][5]
    found = json.loads((reviewed["out"] / "review.json").read_text())
    scored = {(s["split"], s["image"]): (s["score"], s["trained_on"]) for s in found["suspects"]}
    dataset = open_data(data, progress=False)
    for split, count in (("train", 3), ("val", 2)):
        masks = {
            str(Path(image).resolve()): mask
            for (image, _), (_, mask) in zip(dataset.split(split).pairs, dataset.split(split))
        }
        got = list(out_of_fold_probabilities([checkpoint], data, split, device="cpu"))
        assert len(got) == count
        for key, probs, trained in got:
            assert probs.shape == (3, *SIZE) and np.allclose(probs.sum(axis=0), 1, atol=1e-4)
            regions, _ = disagreement_regions(probs, masks[key].numpy(), 255)
            score, trained_on = scored[(split, key)]
            assert (image_score(regions), trained) == (pytest.approx(score, abs=1e-6), trained_on)


def test_an_existing_out_is_refused_in_one_line(reviewed, capsys):
    capsys.readouterr()
    assert main(reviewed["argv"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("seglab: error: review: --out") and "already exists" in error
    assert "\n" not in error


def test_what_a_user_gets_wrong_is_one_line_and_writes_nothing(reviewed, tmp_path, capsys):
    checkpoint, data = reviewed["argv"][3], reviewed["argv"][5]
    (tmp_path / "empty").mkdir()
    out = ["--out", str(tmp_path / "o")]
    cases = {
        "does not exist": ["--checkpoint", str(tmp_path / "no.pt"), "--data", data],
        "was trained on 3 classes": ["--checkpoint", checkpoint, "--data", "synthetic"],
        "holds no images": ["--checkpoint", checkpoint, "--data", data, "--unlabelled",
                            str(tmp_path / "empty")],
        "no labelled split 'test'": ["--checkpoint", checkpoint, "--data", data, "--split",
                                     "test"],
    }  # fmt: skip
    for said, argv in cases.items():
        capsys.readouterr()
        assert main(["data", "review", *argv, *out, "--no-progress"]) == 2
        error = capsys.readouterr().err.strip()
        assert said in error and "\n" not in error
        assert not (tmp_path / "o").exists()


# --- the page in a real browser -----------------------------------------------------------------


def test_the_page_opens_from_the_disk_shows_its_pictures_and_sorts(reviewed):
    browser_path = chromium()
    from playwright.sync_api import sync_playwright

    problems = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=browser_path, headless=True)
        try:
            page = browser.new_page(viewport={"width": 390, "height": 800})  # a phone
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.goto((reviewed["out"] / "review.html").resolve().as_uri())
            sizes = page.locator("#suspects img").evaluate_all(
                "images => images.map(i => i.complete ? i.naturalWidth : 0)"
            )
            assert len(sizes) == 9 and all(width == SIZE[1] for width in sizes)
            ranks = "rows => rows.map(r => r.cells[0].textContent)"
            assert page.locator("#suspects tr.row").evaluate_all(ranks) == list("12345")
            page.click("#suspects th:has-text('#')")
            assert page.locator("#suspects tr.row").evaluate_all(ranks) == list("54321")
            page.click("#suspects th:has-text('split')")
            splits = page.locator("#suspects tr.row").evaluate_all(
                "rows => rows.map(r => r.cells[2].textContent)"
            )
            assert splits == sorted(splits)
            assert page.locator("#label-next tr.row").count() == 3
        finally:
            browser.close()
    assert problems == []


def test_a_loaded_model_reviews_as_the_command_does(reviewed, tmp_path):
    import seglab

    model = seglab.load(reviewed["argv"][3], device="cpu")
    found = model.review(reviewed["argv"][5], tmp_path / "api", splits=["val"], top=1)
    assert [s.split for s in found.suspects] == ["val", "val"] and found.candidates is None
    assert json.loads((tmp_path / "api" / "review.json").read_text())["label_next"] is None


def test_the_fold_runs_of_a_cross_validation_review_every_image_out_of_fold(reviewed, tmp_path):
    data = reviewed["argv"][5]
    model = build_model("mobilenet_v2", 3, encoder_weights=None)
    info = open_data(data, progress=False).info
    folds = []
    for fold in ("1/2", "2/2"):
        config = TrainConfig(data=data, encoder="mobilenet_v2", weights="none", fold=fold)
        folds.append(tmp_path / f"fold{fold[0]}.pt")
        Checkpoint(model.spec, model.state_dict(), info, config, {}).save(folds[-1])
    argv = ["data", "review", "--checkpoint", *map(str, folds), "--data", data]
    assert main([*argv, "--out", str(tmp_path / "out"), "--no-progress", "--device", "cpu"]) == 0
    found = json.loads((tmp_path / "out" / "review.json").read_text())
    assert len(found["suspects"]) == 5
    assert {s["trained_on"] for s in found["suspects"]} == {False}
    assert {s["model"] for s in found["suspects"]} == set(map(str, folds))
    assert "scored by" in (tmp_path / "out" / "review.html").read_text()
