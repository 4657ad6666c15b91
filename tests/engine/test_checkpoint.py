import pickle

import pytest
import torch

from seglab.data.synthetic import INFO
from seglab.engine.checkpoint import load_checkpoint, load_model, save_checkpoint
from seglab.errors import SeglabError
from seglab.models import build_model


@pytest.fixture
def model():
    return build_model("mobilenet_v2", num_classes=INFO.num_classes, encoder_weights=None).eval()


def test_a_checkpoint_rebuilds_the_model_from_its_path_alone(tmp_path, model):
    path = tmp_path / "best.pt"
    save_checkpoint(path, model, INFO, {"lr": 0.001}, {"miou": 0.5}, epoch=3)
    loaded, payload = load_model(path)
    x = torch.rand(1, 3, 64, 80)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert payload["dataset"]["classes"] == list(INFO.classes)
    assert payload["dataset"]["colors"][0] == list(INFO.colors[0])
    assert payload["dataset"]["ignore_index"] == 255
    assert payload["config"] == {"lr": 0.001} and payload["metrics"] == {"miou": 0.5}
    assert payload["epoch"] == 3
    assert [p.name for p in tmp_path.iterdir()] == ["best.pt"]  # no temporary file left


def test_a_failed_save_keeps_the_previous_checkpoint(tmp_path, model, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint(path, model, INFO, {}, {"miou": 0.1})
    before = path.read_bytes()

    def crash(obj, f, *args, **kwargs):
        f.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, model, INFO, {}, {"miou": 0.9})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_a_truncated_checkpoint_is_a_clear_error(tmp_path, model):
    path = tmp_path / "best.pt"
    save_checkpoint(path, model, INFO, {}, {})
    path.write_bytes(path.read_bytes()[:10000])
    with pytest.raises(SeglabError, match=r"best\.pt is damaged or not a checkpoint"):
        load_checkpoint(path)


class Payload:
    def __reduce__(self):
        return (print, ("code ran",))


def test_loading_runs_no_pickled_code(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"format": "seglab-checkpoint", "x": Payload()}, f, protocol=2)
    with pytest.raises(SeglabError, match=r"evil\.pt"):
        load_checkpoint(path)
    assert "code ran" not in capsys.readouterr().out


def test_foreign_files_are_refused(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save({"a": torch.zeros(1)}, path)
    with pytest.raises(SeglabError, match="not a seglab checkpoint"):
        load_checkpoint(path)
    with pytest.raises(SeglabError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
