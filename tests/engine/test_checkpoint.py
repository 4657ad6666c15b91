import os
import pickle

import pytest
import torch

from seglab.config import TrainConfig
from seglab.data.synthetic import INFO
from seglab.engine.checkpoint import Checkpoint, TrainingState, load_model
from seglab.errors import SeglabError
from seglab.models import build_model


@pytest.fixture
def model():
    return build_model("mobilenet_v2", num_classes=INFO.num_classes, encoder_weights=None).eval()


def make(model, metrics=None, **kwargs) -> Checkpoint:
    config = TrainConfig(lr=0.002, crop_size=(64, 64))
    return Checkpoint(model.spec, model.state_dict(), INFO, config, metrics or {}, **kwargs)


def test_a_checkpoint_rebuilds_the_model_from_its_path_alone(tmp_path, model):
    path = tmp_path / "best.pt"
    make(model, {"miou": 0.5}, epoch=3, step=12, resolved={"device": "cpu"}).save(path)
    loaded, checkpoint = load_model(path)
    x = torch.rand(1, 3, 64, 80)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert checkpoint.dataset == INFO
    assert checkpoint.config == TrainConfig(lr=0.002, crop_size=(64, 64))
    assert checkpoint.metrics == {"miou": 0.5}
    assert (checkpoint.epoch, checkpoint.step, checkpoint.training) == (3, 12, None)
    assert checkpoint.resolved == {"device": "cpu"}
    assert [p.name for p in tmp_path.iterdir()] == ["best.pt"]  # no temporary file left


def test_the_training_state_round_trips(tmp_path, model):
    state = TrainingState(step=7, epoch=2, elapsed=1.5, best_miou=0.25, rng={"python": (3, ())})
    make(model, training=state).save(tmp_path / "last.pt")
    assert Checkpoint.load(tmp_path / "last.pt").training == state


def test_a_failed_save_keeps_the_previous_checkpoint(tmp_path, model, monkeypatch):
    path = tmp_path / "last.pt"
    make(model, {"miou": 0.1}).save(path)
    before = path.read_bytes()
    temporary = []

    def crash(obj, f, *args, **kwargs):
        temporary.append(os.path.basename(f.name))
        f.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        make(model, {"miou": 0.9}).save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]
    assert temporary == [f".last.pt.{os.getpid()}.tmp"]  # two processes never share one


def test_a_truncated_checkpoint_is_a_clear_error(tmp_path, model):
    path = tmp_path / "best.pt"
    make(model).save(path)
    path.write_bytes(path.read_bytes()[:10000])
    with pytest.raises(SeglabError, match=r"best\.pt: not a seglab checkpoint \(damaged") as caught:
        Checkpoint.load(path)
    assert "weights_only" not in str(caught.value)


def test_random_bytes_never_suggest_the_unsafe_load(tmp_path):
    path = tmp_path / "model.pt"
    path.write_bytes(os.urandom(4096))
    with pytest.raises(SeglabError) as caught:
        Checkpoint.load(path)
    assert "weights_only" not in str(caught.value) and len(str(caught.value).splitlines()) == 1


class Payload:
    def __reduce__(self):
        return (print, ("code ran",))


class Shell:
    def __reduce__(self):
        return (os.system, ("echo code ran",))


def test_loading_runs_no_pickled_code(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    torch.save({"format": "seglab-checkpoint", "x": Payload()}, path)
    with pytest.raises(SeglabError, match=r"evil\.pt: holds pickled code"):
        Checkpoint.load(path)
    assert "code ran" not in capsys.readouterr().out
    torch.save({"format": "seglab-checkpoint", "x": Shell()}, path)
    with pytest.raises(SeglabError, match=r"evil\.pt: holds pickled code \(posix.system\)"):
        Checkpoint.load(path)
    with open(path, "wb") as f:
        pickle.dump({"format": "seglab-checkpoint", "x": Payload()}, f, protocol=2)
    with pytest.raises(SeglabError, match=r"evil\.pt"):
        Checkpoint.load(path)
    assert "code ran" not in capsys.readouterr().out


def test_foreign_files_are_refused(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save({"a": torch.zeros(1)}, path)
    with pytest.raises(SeglabError, match="not a seglab checkpoint"):
        Checkpoint.load(path)
    with pytest.raises(SeglabError, match="does not exist"):
        Checkpoint.load(tmp_path / "missing.pt")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p: p.pop("model"), "without its 'model' field"),
        (lambda p: p.pop("dataset"), "without its 'dataset' field"),
        (lambda p: p.update(model="unet"), "invalid field"),
        (lambda p: p.update(state_dict={"w": 3}), "state_dict is not a mapping of tensors"),
        (lambda p: p.update(metrics=[0.5]), "metrics is list, not a mapping"),
        (lambda p: p["config"].update(lr="fast"), "config: lr: 'fast' is not a number"),
    ],
)
def test_a_tagged_file_with_missing_or_bad_fields_is_one_line(tmp_path, model, change, message):
    path = tmp_path / "best.pt"
    make(model).save(path)
    payload = torch.load(path, weights_only=True)
    change(payload)
    torch.save(payload, path)
    with pytest.raises(SeglabError, match=message) as caught:
        load_model(path)
    assert str(path) in str(caught.value) and len(str(caught.value).splitlines()) == 1


def test_weights_that_do_not_fit_the_architecture_are_one_line(tmp_path, model):
    path = tmp_path / "best.pt"
    make(model).save(path)
    payload = torch.load(path, weights_only=True)
    payload["model"]["num_classes"] = 3
    torch.save(payload, path)
    with pytest.raises(SeglabError, match="weights do not match its model"):
        load_model(path)
