"""What every format shares: the overlap rule, the label map, the reports of what could not be
mapped, the refusal to overwrite, and the command from import to a trained step."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from PIL import Image

from seglab.cli import main
from seglab.data.dataset_file import read_dataset_file
from seglab.data.importing import import_dataset
from seglab.errors import SeglabError
from tests.data.importing.test_labelme import SCENE, write_labelme

BIG = [0, 0, 8, 0, 8, 8, 0, 8]  # 64 pixels: rows and columns 0-7
SMALL = [2, 2, 5, 2, 5, 5, 2, 5]  # 9 pixels: rows and columns 2-4


def _mask(out, name="a"):
    return np.asarray(Image.open(out / "masks" / f"{name}.png"))


@pytest.mark.parametrize(
    ("order", "rule", "small_on_top"),
    [
        ("big first", "later", True),
        ("big first", "smaller", True),
        ("small first", "later", False),  # the big one, drawn later, covers the small one
        ("small first", "smaller", True),
    ],
)
def test_overlap_rule(tmp_path, order, rule, small_on_top):
    shapes = [("lake", "polygon", BIG), ("boat", "polygon", SMALL)]
    write_labelme(tmp_path / "src", "a", shapes if order == "big first" else shapes[::-1])
    report = import_dataset("labelme", tmp_path / "src", tmp_path / "out", overlap=rule)
    boat, lake = report.classes.index("boat"), report.classes.index("lake")
    mask = _mask(tmp_path / "out")
    assert (mask[2:5, 2:5] == (boat if small_on_top else lake)).all()
    assert (mask[:8, :8] == lake).sum() == 64 - 9 * small_on_top
    assert (report.overlap_pixels, report.overlap_images) == (9, 1)
    record = json.loads((tmp_path / "out" / "import.json").read_text())
    assert record["overlap"]["rule"] == rule and record["overlap"]["pixels"] == 9
    assert f"--overlap {rule}" in (tmp_path / "out" / "dataset.yaml").read_text()


def test_label_map_merges_ignores_and_reports_unknown(tmp_path):
    shapes = [
        ("car", "polygon", [0, 0, 4, 0, 4, 4, 0, 4]),
        ("truck", "polygon", [4, 0, 8, 0, 8, 4, 4, 4]),
        ("tree", "polygon", [0, 4, 4, 4, 4, 8, 0, 8]),
        ("cat", "polygon", [4, 4, 8, 4, 8, 8, 4, 8]),
        ("car", "point", [1, 1]),
    ]
    write_labelme(tmp_path / "src", "a", shapes)
    label_map = tmp_path / "map.yaml"
    label_map.write_text("truck: vehicle\ncar: vehicle\ntree: ignore\nbus: vehicle\n")
    report = import_dataset("labelme", tmp_path / "src", tmp_path / "out", labels=label_map)
    assert report.classes == ["background", "vehicle"]
    assert report.unknown == {"cat": 1} and report.ignored == {"tree": 1}
    assert report.other == {"point": 1} and report.unused_map == ["bus"]
    mask = _mask(tmp_path / "out")
    assert (mask[0:4, 0:8] == 1).all()  # car and truck merged
    assert (mask[4:8, 0:8] == 255).all()  # tree by the map, cat as unknown
    assert (mask[8:] == 0).all() and (mask[:, 8:] == 0).all()
    lines = "\n".join(report.lines())
    assert "unknown labels (not in the label map), drawn as ignore (255): cat (1)" in lines
    assert "drawn as ignore (255) by the label map: tree (1)" in lines
    assert "shapes of other kinds, not drawn: point (1)" in lines
    assert "label map entries not used: bus" in lines
    record = json.loads((tmp_path / "out" / "import.json").read_text())
    assert record["unknown_labels"] == {"drawn_as": 255, "shapes": {"cat": 1}}
    assert record["other_shapes"] == {"point": 1}


def test_written_yaml_is_a_valid_dataset_file(tmp_path):
    write_labelme(tmp_path / "src", "a", SCENE)
    import_dataset("labelme", tmp_path / "src", tmp_path / "out")
    spec = read_dataset_file(tmp_path / "out" / "dataset.yaml")
    assert [c.name for c in spec.classes] == ["background", "building", "car"]
    assert spec.classes[0].color == (0, 0, 0) and spec.layout == "pairs"
    assert spec.mask_encoding == "index" and spec.ignore_index == 255
    assert yaml.safe_load((tmp_path / "out" / "dataset.yaml").read_text())["root"] == "."


def test_nothing_to_import_leaves_nothing(tmp_path):
    write_labelme(tmp_path / "src", "a", [])
    with pytest.raises(
        SeglabError, match=r"no image to import; 1 without annotations \(--keep-empty"
    ):
        import_dataset("labelme", tmp_path / "src", tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]  # no half-written folder


def test_missing_image_reported(tmp_path):
    write_labelme(tmp_path / "src", "a", SCENE)
    write_labelme(tmp_path / "src", "b", SCENE)
    (tmp_path / "src" / "b.png").unlink()
    report = import_dataset("labelme", tmp_path / "src", tmp_path / "out")
    assert report.images == {"": 1}
    assert report.problems == [f"{tmp_path / 'src' / 'b.png'}: image not found"]


def test_command_imports_checks_and_trains(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(5):
        write_labelme(src, f"frame{i}", SCENE, seed=i)
    out = tmp_path / "out"
    assert main(["data", "import", "labelme", str(src), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"imported 5 images from labelme {src}: 3 classes (background, building, car)" in printed
    assert "shapes of other kinds, not drawn: line (5), point (5)" in printed
    assert "no problems found" in printed  # the data check's verdict
    assert main(["data", "check", str(out / "dataset.yaml")]) == 0
    argv = ["train", "--data", str(out / "dataset.yaml"), "--weights", "none", "--iterations", "2"]
    argv += ["--workers", "0", "--no-progress", "--auto", "none", "--batch-size", "2"]
    argv += ["--out", str(tmp_path / "run")]
    assert main(argv) == 0


def test_command_refuses_an_existing_folder(tmp_path, capsys):
    write_labelme(tmp_path / "src", "a", SCENE)
    (tmp_path / "out").mkdir()
    argv = ["data", "import", "labelme", str(tmp_path / "src"), "--out", str(tmp_path / "out")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert (
        err == f"seglab: error: {tmp_path / 'out'} already exists; import writes a new "
        "folder, give another --out\n"
    )
    assert list((tmp_path / "out").iterdir()) == []


def test_command_lists_every_format():
    from seglab.cli import IMPORT_FORMATS
    from seglab.data.importing import FORMATS

    assert IMPORT_FORMATS == FORMATS
