"""Group-aware splits (a patient, a video sequence: no group in two splits), the leakage warning
when a validation group is also in training, and splits given as list files."""

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seglab.cli import main
from seglab.data.check import format_report
from seglab.data.dataset import open_data
from seglab.data.splits import group_of, split_by_groups
from seglab.errors import SeglabError
from tests.data.helpers import class_mask, write_image, write_mask

PATIENT = r"^(patient\d+)_"


def write_pairs(root: Path, names: list[str], images="images", masks="masks") -> None:
    for k, name in enumerate(names):
        write_image(root / images / f"{name}.png", seed=k)
        write_mask(root / masks / f"{name}.png", class_mask(seed=k))


def slices(patients: dict[int, int]) -> list[str]:
    """File stems patientNNN_sliceMMM for each patient and its number of slices."""
    return [f"patient{p:03d}_slice{s:03d}" for p, n in patients.items() for s in range(n)]


def yaml_file(root: Path, text: str) -> str:
    (root / "ds.yaml").write_text(text)
    return str(root / "ds.yaml")


def groups_in(data, split: str) -> set[str]:
    return {re.match(PATIENT, p[0].name).group(1) for p in data.split(split).pairs}


def test_split_by_groups_keeps_every_patient_in_one_split(tmp_path):
    write_pairs(tmp_path, slices({1: 3, 2: 2, 3: 4, 4: 1, 5: 2}))
    path = yaml_file(tmp_path, f"groups: '{PATIENT}'\nsplit_by: groups\nval_ratio: 0.4\nseed: 1\n")
    data = open_data(path, progress=False)
    train, val = groups_in(data, "train"), groups_in(data, "val")
    assert len(val) == 2 and not train & val and len(train | val) == 5
    assert len(data.split("train")) + len(data.split("val")) == 12
    again = open_data(path, progress=False)
    assert [p[0] for p in again.split("val").pairs] == [p[0] for p in data.split("val").pairs]
    assert data.report.warnings == [] and data.problems == []


def test_val_groups_names_the_held_out_groups(tmp_path):
    write_pairs(tmp_path, slices({1: 2, 2: 3, 17: 2}))
    path = yaml_file(tmp_path, f"groups: '{PATIENT}'\nsplit_by: groups\nval_groups: [patient017]\n")
    data = open_data(path, progress=False)
    assert groups_in(data, "val") == {"patient017"} and len(data.split("val")) == 2
    report = format_report(data.report)
    assert "train: 5 pairs" in report and "  2 groups: patient001 (2), patient002 (3)" in report
    assert "  1 group: patient017 (2)" in report and "warning" not in report


def test_a_misspelt_val_group_is_an_error(tmp_path):
    write_pairs(tmp_path, slices({1: 1, 2: 1}))
    path = yaml_file(tmp_path, f"groups: '{PATIENT}'\nsplit_by: groups\nval_groups: [patient01]\n")
    with pytest.raises(SeglabError) as caught:
        open_data(path, progress=False)
    assert str(caught.value) == (
        f"{path}: val_groups: no file is in group 'patient01'; did you mean patient001?"
    )


def test_a_val_group_also_in_train_is_a_warning_not_a_problem(tmp_path, capsys):
    write_pairs(tmp_path, slices({1: 2, 2: 1}), "images/train", "masks/train")
    write_pairs(tmp_path, ["patient002_slice007", "patient003_slice000"], "images/val", "masks/val")
    path = yaml_file(tmp_path, f"groups: '{PATIENT}'\n")
    assert main(["data", "check", path]) == 0
    out = capsys.readouterr().out
    warnings = [line for line in out.splitlines() if line.startswith("warning: ")]
    assert warnings == [
        "warning: val group patient002 also in train (1 train / 1 val images); val measures "
        "fit to seen groups, not new ones",
        f"warning: to keep each group in one split, add split_by: groups to {path}",
    ]
    assert "no problems found" in out


def test_the_warning_goes_once_the_split_is_by_group(tmp_path):
    write_pairs(tmp_path, slices({1: 2, 2: 1}), "images/train", "masks/train")
    write_pairs(tmp_path, ["patient002_slice007", "patient003_slice000"], "images/val", "masks/val")
    path = yaml_file(tmp_path, f"groups: '{PATIENT}'\nsplit_by: groups\nval_groups: [patient002]")
    data = open_data(path, progress=False)
    assert data.report.warnings == []
    assert [p[0].name for p in data.split("val").pairs] == [
        "patient002_slice000.png",
        "patient002_slice007.png",
    ]


def test_a_name_without_a_group_is_a_problem_naming_the_file(tmp_path):
    write_pairs(tmp_path, [*slices({1: 2, 2: 2}), "scan_extra"])
    path = yaml_file(tmp_path, f"groups: '{PATIENT}'\nsplit_by: groups\n")
    data = open_data(path, progress=False)
    assert data.problems == [
        f"{tmp_path / 'images' / 'scan_extra.png'}: name has no group (groups: '{PATIENT}' "
        f"in {path} does not match it)"
    ]


def test_many_groups_are_abbreviated(tmp_path):
    write_pairs(tmp_path, slices(dict.fromkeys(range(12), 1)), "images/train", "masks/train")
    write_pairs(tmp_path, slices({20: 1}), "images/val", "masks/val")
    report = format_report(
        open_data(yaml_file(tmp_path, f"groups: '{PATIENT}'"), progress=False).report
    )
    assert (
        "  12 groups: patient000 (1), patient001 (1), patient002 (1), patient003 (1), "
        "patient004 (1), patient005 (1), patient006 (1), patient007 (1) and 4 more"
    ) in report.splitlines()


def test_camvid_folders_pooled_and_split_by_sequence_test_untouched(tmp_path):
    frames = {"train": ["0001TP_0001", "0001TP_0002", "0016E5_0001", "0006R0_0001"]}
    frames |= {"val": ["0016E5_0002", "0016E5_0003"], "test": ["0001TP_0100"]}
    for split, stems in frames.items():
        for k, stem in enumerate(stems):
            write_image(tmp_path / split / f"{stem}.png", (48, 36), seed=k)
            write_mask(tmp_path / f"{split}annot" / f"{stem}.png", class_mask((48, 36), 12, k))
    path = yaml_file(tmp_path, "groups: '^([^_]+)_'\nsplit_by: groups\nval_groups: ['0006R0']\n")
    data = open_data(path, progress=False)
    assert data.report.source.layout == "camvid" and data.info.num_classes == 11
    assert [len(data.split(s)) for s in ("train", "val", "test")] == [5, 1, 1]
    assert dict(data.report.splits["train"].groups) == {"0001TP": 2, "0016E5": 3}
    assert data.report.warnings == [
        "test group 0001TP also in train (2 train / 1 test images); test measures fit to seen "
        "groups, not new ones"
    ]


def fake_pairs(groups: list[int], split: str) -> list:
    """Pairs named g<group>_<split><k>.png (no files needed: the split reads names only)."""
    names = [f"g{g}_{split}{k}.png" for k, g in enumerate(groups)]
    return [(Path("images", n), Path("masks", n)) for n in names]


@settings(max_examples=60, deadline=None)
@given(
    train=st.lists(st.integers(0, 9), max_size=30),
    val=st.lists(st.integers(0, 9), max_size=10),
    val_ratio=st.floats(0.01, 0.99),
    seed=st.integers(0, 2**31),
)
def test_no_group_is_ever_in_two_splits(train, val, val_ratio, seed):
    pattern = re.compile(r"^g(\d+)_")
    splits = {"train": fake_pairs(train, "train"), "val": fake_pairs(val, "val")}
    resplit = split_by_groups(splits, pattern, (), val_ratio, seed, "ds.yaml")
    groups = {s: {group_of(p, pattern) for p in pairs} for s, pairs in resplit.items()}
    assert not groups["train"] & groups["val"]
    everything = sorted(map(str, (p[0] for pairs in splits.values() for p in pairs)))
    assert sorted(map(str, (p[0] for pairs in resplit.values() for p in pairs))) == everything
    if len(groups["train"] | groups["val"]) >= 2:
        assert groups["train"] and groups["val"]  # never everything in one split


# --- splits from list files ----------------------------------------------------------------------


def test_splits_from_list_files(tmp_path):
    write_pairs(tmp_path / "data", ["a", "b", "c", "d"])
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "train.txt").write_text("a\nb.png\n\n# c is held back\n")
    (tmp_path / "lists" / "val.txt").write_text("/somewhere/else/d.png /x/d.png\n")
    path = yaml_file(tmp_path, "root: data\nsplits: {train: lists/train.txt, val: lists/val.txt}\n")
    data = open_data(path, progress=False)
    assert [p[0].name for p in data.split("train").pairs] == ["a.png", "b.png"]
    assert [p[1].name for p in data.split("val").pairs] == ["d.png"]
    assert data.problems == [] and set(data.report.splits) == {"train", "val"}


def test_a_listed_name_with_no_file_is_a_problem(tmp_path):
    write_pairs(tmp_path, ["a", "b", "c"])
    write_image(tmp_path / "images" / "lonely.png")
    (tmp_path / "train.txt").write_text("a\nb\nmissing\nlonely\n")
    (tmp_path / "val.txt").write_text("c\n")
    data = open_data(
        yaml_file(tmp_path, "splits: {train: train.txt, val: val.txt}\n"), progress=False
    )
    assert data.problems == [
        f"{tmp_path / 'train.txt'}:3: 'missing' is listed but no image has that name",
        f"{tmp_path / 'images' / 'lonely.png'}: image without a mask (listed in train.txt)",
    ]
    assert len(data.split("train")) == 2  # only whole pairs are trained on


def test_list_files_over_camvid_with_group_split(tmp_path):
    for k, stem in enumerate(["0001TP_1", "0001TP_2", "0006R0_1", "0016E5_1"]):
        split = "train" if k < 3 else "val"
        write_image(tmp_path / split / f"{stem}.png", (48, 36), seed=k)
        write_mask(tmp_path / f"{split}annot" / f"{stem}.png", class_mask((48, 36), 12, k))
    (tmp_path / "mine.txt").write_text("0001TP_1\n0016E5_1\n0006R0_1\n")
    path = yaml_file(
        tmp_path,
        "splits: {train: mine.txt}\ngroups: '^([^_]+)_'\nsplit_by: groups\nval_groups: ['0001TP']",
    )
    data = open_data(path, progress=False)
    assert [p[0].name for p in data.split("val").pairs] == ["0001TP_1.png"]
    assert len(data.split("train")) == 2 and data.problems == []
