"""Group-aware K-fold cross-validation: assign_folds, and open_data's fold (train on the other
folds of train+val pooled, validate on fold I; the test split untouched; the same folds whatever
the run's seed)."""

import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seglab.data.dataset import open_data
from seglab.data.splits import assign_folds
from seglab.errors import SeglabError
from tests.data.helpers import class_mask, write_image, write_mask

PATIENT = r"^(patient\d+)_"
SIZE = (20, 16)  # tiny images: (width, height)


def write_split(root: Path, split: str, names: list[str], seed: int = 0) -> None:
    """camvid-style folders: split/ and splitannot/, 3-class index masks."""
    for k, name in enumerate(names):
        write_image(root / split / f"{name}.png", SIZE, seed=seed + k)
        write_mask(root / f"{split}annot" / f"{name}.png", class_mask(SIZE, 3, seed + k))


def slices(patients: dict[int, int]) -> list[str]:
    return [f"patient{p:03d}_slice{s:03d}" for p, n in patients.items() for s in range(n)]


def patient_dataset(root: Path, groups: bool = True) -> str:
    """7 patients of 1-4 slices over train (12 images) and val (6; patient 2 in both), 2 test
    images, and a dataset YAML declaring the groups (or not)."""
    write_split(root, "train", slices({1: 3, 2: 2, 3: 4, 4: 1, 5: 2}))
    write_split(root, "val", ["patient002_slice009", *slices({6: 3, 7: 2})], seed=20)
    write_split(root, "test", slices({8: 2}), seed=40)
    text = "layout: camvid\nclasses: [a, b, c]\n" + (f"groups: '{PATIENT}'\n" if groups else "")
    (root / "ds.yaml").write_text(text)
    return str(root / "ds.yaml")


def names(data, split: str) -> list[str]:
    return [p[0].name for p in data.split(split).pairs]


def patient(name: str) -> str:
    return re.match(PATIENT, name).group(1)


# --- assign_folds -------------------------------------------------------------------------------


def test_items_of_a_group_share_a_fold_and_folds_are_balanced():
    groups = ["a"] * 5 + ["b"] * 3 + ["c"] * 3 + ["d"] * 2 + ["e"] * 2 + [None] * 3
    folds = assign_folds(groups, 3)
    for g in "abcde":
        assert len({f for f, h in zip(folds, groups) if h == g}) == 1
    # 18 items: largest first, each to the emptiest fold, gives 6 per fold
    assert sorted(Counter(folds).values()) == [6, 6, 6]
    assert assign_folds(groups, 3) == folds  # seeded: the same every time
    assert assign_folds(groups, 3, seed=0) == folds


def test_items_without_a_group_are_groups_of_their_own():
    folds = assign_folds([None] * 10, 5)
    assert sorted(Counter(folds).values()) == [2] * 5
    assert {tuple(assign_folds([None] * 10, 5, seed=s)) for s in range(6)} != {tuple(folds)}


def test_too_few_groups_or_items_for_the_folds_is_one_line():
    with pytest.raises(SeglabError) as caught:
        assign_folds(["a", "a", "b", "b", "b"], 3)
    assert str(caught.value) == "3 folds need at least 3 groups; there are 2"
    with pytest.raises(SeglabError, match=r"^5 folds need at least 5 items; there are 4$"):
        assign_folds([None] * 4, 5)


@settings(max_examples=60, deadline=None)
@given(
    groups=st.lists(st.one_of(st.none(), st.sampled_from("abcdefgh")), min_size=1, max_size=40),
    folds=st.integers(2, 6),
    seed=st.integers(0, 2**31),
)
def test_no_group_is_ever_in_two_folds(groups, folds, seed):
    distinct = len({g for g in groups if g is not None}) + groups.count(None)
    if distinct < folds:
        with pytest.raises(SeglabError):
            assign_folds(groups, folds, seed)
        return
    assigned = assign_folds(groups, folds, seed)
    assert len(assigned) == len(groups) and set(assigned) == set(range(folds))  # none empty
    for g in set(groups) - {None}:
        assert len({f for f, h in zip(assigned, groups) if h == g}) == 1


# --- folds of a dataset on disk -----------------------------------------------------------------


def test_every_train_val_image_is_validated_once_over_the_k_folds(tmp_path):
    path = patient_dataset(tmp_path)
    plain = open_data(path, progress=False)
    pooled = sorted(names(plain, "train") + names(plain, "val"))
    validated = []
    for i in (1, 2, 3):
        data = open_data(path, progress=False, fold=(i, 3))
        train, val = names(data, "train"), names(data, "val")
        assert sorted(train + val) == pooled and not set(train) & set(val)
        assert not {patient(n) for n in train} & {patient(n) for n in val}
        assert names(data, "test") == names(plain, "test")
        assert names(data, "test") == ["patient008_slice000.png", "patient008_slice001.png"]
        assert data.groups("val") == [patient(n) for n in val]
        validated += val
    assert sorted(validated) == pooled  # each image in exactly one validation fold


def test_folds_do_not_follow_the_run_seed(tmp_path):
    path = patient_dataset(tmp_path)
    for i in (1, 2):
        first = open_data(path, seed=0, progress=False, fold=(i, 2))
        second = open_data(path, seed=12345, progress=False, fold=(i, 2))
        assert names(first, "val") == names(second, "val")
        assert names(first, "train") == names(second, "train")


def test_a_folds_statistics_are_those_of_its_own_train_split(tmp_path):
    path = patient_dataset(tmp_path)
    data = open_data(path, progress=False, fold=(2, 3))
    assert names(data, "train") != names(open_data(path, progress=False), "train")
    train = data.split("train")
    masks = [train.load(i)[1].numpy() for i in range(len(train))]
    per_image = np.stack([np.bincount(m.ravel(), minlength=3) for m in masks])
    class_pixels, with_class = data.train_statistics()
    assert (class_pixels == per_image.sum(axis=0)).all()
    assert (with_class == ((per_image > 0) * SIZE[0] * SIZE[1]).sum(axis=0)).all()
    assert (data.image_class_pixels("train") == per_image).all()
    assert data.report.splits["train"].pairs == len(train)


def test_without_declared_groups_the_folds_are_by_image(tmp_path):
    path = patient_dataset(tmp_path, groups=False)
    sizes = [len(open_data(path, progress=False, fold=(i, 4)).split("val")) for i in (1, 2, 3, 4)]
    assert sorted(sizes) == [4, 4, 5, 5]  # 18 images, one group each
    assert open_data(path, progress=False, fold=(1, 4)).groups("train") is None


def test_too_few_groups_for_the_folds_names_the_dataset(tmp_path):
    write_split(tmp_path, "train", slices({1: 3}))
    write_split(tmp_path, "val", slices({2: 2}), seed=10)
    path = tmp_path / "ds.yaml"
    path.write_text(f"layout: camvid\nclasses: [a, b, c]\ngroups: '{PATIENT}'\n")
    with pytest.raises(SeglabError) as caught:
        open_data(str(path), progress=False, fold=(1, 3))
    assert str(caught.value) == f"{path}: fold 1/3: 3 folds need at least 3 groups; there are 2"


def test_a_fold_keeps_the_data_checks_problems(tmp_path):
    path = patient_dataset(tmp_path)
    write_image(tmp_path / "train" / "scan_extra.png", SIZE)
    write_mask(tmp_path / "trainannot" / "scan_extra.png", class_mask(SIZE, 5))  # values 3, 4
    plain = open_data(path, progress=False)
    data = open_data(path, progress=False, fold=(1, 3))
    assert len(plain.problems) == 2 and sorted(data.problems) == sorted(plain.problems)
    with pytest.raises(SeglabError, match="2 problem"):
        data.require_clean(path)
    in_fold = data.groups("train") + data.groups("val")
    assert in_fold.count("scan_extra.png") == 1  # its own group, named by its file


# --- folds of the generated dataset -------------------------------------------------------------


def synthetic_spec(tmp_path) -> str:
    spec = tmp_path / "tiny.yaml"
    spec.write_text("layout: synthetic\nsize: [16, 20]\ntrain: 7\nval: 3\ntest: 2\n")
    return str(spec)


def items(dataset) -> list[tuple[int, int]]:
    """(split id, index) of each generated item of a fold's split."""
    return [(scenes.split_id, index) for scenes, index in dataset.items]


def test_synthetic_folds_pool_train_and_val_items(tmp_path):
    spec = synthetic_spec(tmp_path)
    everything = sorted([(0, i) for i in range(7)] + [(1, i) for i in range(3)])
    validated = []
    for i in (1, 2, 3):
        data = open_data(spec, seed=3, fold=(i, 3))
        train, val = items(data.split("train")), items(data.split("val"))
        assert sorted(train + val) == everything and not set(train) & set(val)
        assert items(open_data(spec, seed=99, fold=(i, 3)).split("val")) == val
        assert len(data.split("test")) == 2 and data.split("test").split_id == 2
        assert data.groups("train") is None
        validated += val
    assert sorted(validated) == everything


def test_synthetic_fold_statistics_are_measured_on_its_train_items(tmp_path):
    data = open_data(synthetic_spec(tmp_path), fold=(1, 2))
    train = data.split("train")
    image, mask = train[0]
    assert image.shape == (3, 16, 20) and mask.shape == (16, 20)
    masks = [train.load(i)[1].numpy() for i in range(len(train))]
    expected = sum(np.bincount(m.ravel(), minlength=7) for m in masks)
    assert (data.train_statistics()[0] == expected).all()
    scenes, index = train.items[0]
    assert (train.load(0)[1] == scenes.load(index)[1]).all()
