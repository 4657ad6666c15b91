"""Dataset YAML files are checked whole before any image is read: each mistake is one
SeglabError line naming the file, the key, the bad value and what is allowed."""

import numpy as np
import pytest

from seglab.cli import main
from seglab.data.dataset import open_data
from seglab.data.dataset_file import ClassSpec, ListSplit, read_dataset_file
from seglab.errors import SeglabError
from tests.data.helpers import class_mask, make_camvid, make_pairs, write_image, write_mask


def error_for(tmp_path, text: str) -> str:
    path = tmp_path / "ds.yaml"
    path.write_text(text)
    with pytest.raises(SeglabError) as caught:
        open_data(str(path), progress=False)
    message = str(caught.value)
    assert "\n" not in message
    return message.removeprefix(f"{path}: ")


@pytest.mark.parametrize(
    "text,message",
    [
        ("val_ratio: lots", "val_ratio must be a number between 0 and 1 (exclusive), got 'lots'"),
        ("val_ratio: 1.5", "val_ratio must be a number between 0 and 1 (exclusive), got 1.5"),
        ("val_ratio: 0", "val_ratio must be a number between 0 and 1 (exclusive), got 0"),
        ("seed: [1, 2]", "seed must be an integer, got [1, 2]"),
        ("seed: 1.5", "seed must be an integer, got 1.5"),
        (
            "classes: [{name: sky, color: grey}]",
            "classes[0].color must be three integers 0-255 (R, G, B), got 'grey'",
        ),
        (
            "classes: [a, {name: b, color: [300, 0, 0]}]",
            "classes[1].color must be three integers 0-255 (R, G, B), got [300, 0, 0]",
        ),
        ("classes: 5", "classes must be a list of names or {name, color} mappings, got 5"),
        ("classes: [a, b]\ncolors: [[0, 0, 0]]", "colors must be 2 colours, one a class, got"),
        ("classes: [a, a]", "classes: 'a' is named twice"),
        ("mask_encodng: rgb", "unknown key 'mask_encodng'; did you mean mask_encoding?"),
        ("layout: camvd", "layout must be one of camvid, pairs, voc, cityscapes, synthetic"),
        ("mask_encoding: colour", "mask_encoding must be one of index, rgb, binary, got"),
        (
            "mask_encoding: rgb\nclasses: [a, {name: b, color: [1, 2, 3]}]",
            "classes[0] (a) has no color; mask_encoding: rgb needs the colour of every class",
        ),
        ("classes: [{name: a, colour: [1, 2, 3]}]", "classes[0]: unknown key 'colour'; did you"),
        ("ignore_index: -1", "ignore_index must be an integer, got -1"),
        ("size: [64, 64]", "size applies only to layout synthetic"),
        ("layout: synthetic\nsize: [0, 64]", "size must be [height, width], two positive"),
    ],
)
def test_a_bad_value_names_the_file_the_key_and_what_is_allowed(tmp_path, text, message):
    assert error_for(tmp_path, text).startswith(message)


def test_an_unknown_key_far_from_any_lists_the_keys(tmp_path):
    assert error_for(tmp_path, "colour_jitter: 2").startswith(
        "unknown key 'colour_jitter' (one of layout, root, name, mask_encoding,"
    )


def test_a_misspelt_key_is_an_error_not_silently_ignored(tmp_path, capsys):
    make_pairs(tmp_path / "data", 4)
    (tmp_path / "ds.yaml").write_text("root: data\nmask_encodng: rgb\n")
    assert main(["data", "check", str(tmp_path / "ds.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("ds.yaml: unknown key 'mask_encodng'; did you mean mask_encoding?")
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize(
    "text,message",
    [
        ("groups: '^patient'", "groups must be a regular expression with one capture group"),
        ("groups: '(('", "groups must be a regular expression with one capture group"),
        ("groups: 5", "groups must be a regular expression with one capture group"),
        ("split_by: group", "split_by must be one of groups, got 'group'; did you mean groups?"),
        ("split_by: groups", "split_by: groups needs groups, a pattern"),
        ("val_groups: [a]", "val_groups needs split_by: groups"),
        ("val_groups: [a]\nval_ratio: 0.3", "val_groups and val_ratio both choose the val split"),
        (
            "groups: '(x)'\nsplit_by: groups\nval_groups: [0017]",
            "val_groups must be a list of group names (quote them: '0017'), got [15]",
        ),
        ("splits: {training: list.txt}", "splits: unknown split 'training'; did you mean train?"),
        ("splits: {train: {images: a}}", "splits.train must be a list file, or {images: FOLDER"),
    ],
)
def test_bad_group_and_split_options(tmp_path, text, message):
    assert error_for(tmp_path, text).startswith(message)


def test_a_missing_list_file_is_named_before_any_work(tmp_path):
    message = error_for(tmp_path, "splits: {train: lists/train.txt}")
    assert message == f"splits.train: list file {tmp_path / 'lists' / 'train.txt'} does not exist"


def test_a_good_file_reads_into_typed_fields(tmp_path):
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "val.txt").write_text("a\n")
    path = tmp_path / "ds.yaml"
    path.write_text(
        "classes: [bg, {name: road, color: [128, 64, 128]}]\nval_ratio: 0.25\nseed: 3\n"
        "groups: '^(p\\d+)_'\nsplit_by: groups\nsplits: {val: lists/val.txt}\n"
    )
    spec = read_dataset_file(path)
    assert spec.root == tmp_path and spec.layout is None and spec.path == path
    assert spec.classes == (ClassSpec("bg"), ClassSpec("road", (128, 64, 128)))
    assert (spec.val_ratio, spec.seed, spec.split_by) == (0.25, 3, "groups")
    assert spec.groups.search("p12_slice3.png").group(1) == "p12"
    assert spec.splits == {"val": ListSplit(tmp_path / "lists" / "val.txt")}


def test_a_colour_mask_in_an_index_dataset_says_so(tmp_path, capsys):
    make_camvid(tmp_path)
    grey = np.repeat(class_mask(size=(48, 36), num_classes=11)[..., None], 3, axis=2)
    bad = write_mask(tmp_path / "trainannot" / "f001.png", grey)  # class numbers saved as RGB
    assert main(["data", "check", str(tmp_path)]) == 1
    [line] = [x.strip() for x in capsys.readouterr().out.splitlines() if x.startswith("  /")]
    assert line.startswith(f"{bad}: a colour (RGB) mask, but this dataset's masks hold class ")
    assert "colours (1, 1, 1), (2, 2, 2), (3, 3, 3)" in line and "value 65793" not in line
    assert "set mask_encoding: rgb in a dataset YAML with the classes' colours" in line
    assert line.endswith("for class numbers stored as grey, save the mask with one channel")


def test_a_colour_mask_of_real_colours_gets_no_grey_hint(tmp_path, capsys):
    make_pairs(tmp_path / "data", {"train": 2, "val": 1})
    write_image(tmp_path / "data" / "images" / "val" / "c.png")
    write_mask(tmp_path / "data" / "masks" / "val" / "c.png", np.full((30, 40, 3), (255, 0, 0)))
    (tmp_path / "ds.yaml").write_text("root: data\nclasses: [a, b, c]\n")
    assert main(["data", "check", str(tmp_path / "ds.yaml")]) == 1
    out = capsys.readouterr().out
    assert "c.png: a colour (RGB) mask" in out and "colours (255, 0, 0)" in out
    assert "stored as grey" not in out
