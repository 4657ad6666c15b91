import os
import pickle
import shutil
import warnings
from pathlib import Path

import pytest
import torch

from seglab.config import TrainConfig
from seglab.data.synthetic import INFO
from seglab.engine.checkpoint import (
    MIGRATIONS,
    VERSION,
    Checkpoint,
    CheckpointWarning,
    TrainingState,
    load_model,
    migrate_1_to_2,
)
from seglab.errors import SeglabError
from seglab.models import build_model

# Committed files of earlier seglabs (see make_fixtures.py there): every later seglab loads them
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "checkpoints"


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


# --- checkpoints of other seglab versions --------------------------------------------------------


def copy_fixture(name: str, tmp_path: Path) -> Path:
    """A copy of a committed fixture, for tests that change it (the committed file never is)."""
    return Path(shutil.copy(FIXTURES / name, tmp_path / name))


def load_quietly(path: Path) -> tuple[torch.nn.Module, Checkpoint]:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails: these files must load cleanly
        return load_model(path)


@pytest.mark.parametrize("name", ["current.pt", "extra_option.pt", "version1.pt"])
def test_every_committed_checkpoint_loads_and_runs(name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CheckpointWarning)  # extra_option.pt's, tested below
        model, checkpoint = load_model(FIXTURES / name)
    with torch.no_grad():
        out = model(torch.rand(1, 3, 64, 80))
    assert out.shape == (1, checkpoint.spec.num_classes, 64, 80)
    assert torch.isfinite(out).all()
    assert checkpoint.dataset.classes == ("background", "road", "car")
    assert (checkpoint.epoch, checkpoint.step, checkpoint.training) == (1, 4, None)
    assert checkpoint.config.crop_size == (64, 64) and checkpoint.config.lr == 0.002


def test_the_fixtures_stay_small():
    for name in ("current.pt", "extra_option.pt", "version1.pt"):
        assert (FIXTURES / name).stat().st_size < 300_000


def test_the_current_fixture_loads_without_a_warning():
    _, checkpoint = load_quietly(FIXTURES / "current.pt")
    assert checkpoint.resolved["weights_source"] == "random initialisation"


def test_an_unknown_config_option_is_left_out_with_a_warning_naming_it_and_the_file():
    path = FIXTURES / "extra_option.pt"
    with pytest.warns(CheckpointWarning) as caught:
        _, checkpoint = load_model(path)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert str(path) in message and "retired_option" in message
    assert len(message.splitlines()) == 1
    assert checkpoint.config == Checkpoint.load(FIXTURES / "current.pt").config


def test_every_unknown_option_is_named_once(tmp_path, model):
    path = tmp_path / "best.pt"
    make(model).save(path)
    payload = torch.load(path, weights_only=True)
    payload["config"].update(old_b=1, old_a="x")
    torch.save(payload, path)
    with pytest.warns(CheckpointWarning, match=r"left out: old_a, old_b$"):
        Checkpoint.load(path)


def test_a_bad_value_of_a_known_option_is_still_one_line_with_unknown_options_beside(tmp_path):
    path = copy_fixture("extra_option.pt", tmp_path)
    payload = torch.load(path, weights_only=True)
    payload["config"]["batch_size"] = 0
    torch.save(payload, path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a refused file is one error, without a warning first
        with pytest.raises(SeglabError, match=r"config: batch_size: 0 must be at least 1") as err:
            Checkpoint.load(path)
    assert str(path) in str(err.value) and len(str(err.value).splitlines()) == 1


def test_a_version_1_file_is_migrated():
    _, checkpoint = load_quietly(FIXTURES / "version1.pt")
    # encoder_weights None under weights "auto": recorded as training has recorded it since
    assert checkpoint.resolved == {
        "weights": "none",
        "weights_source": "random initialisation (auto: ImageNet weights not available)",
    }
    assert checkpoint.config.weights == "none"
    # what the loader fills in itself: options added since keep their defaults
    assert checkpoint.config.ema is None and checkpoint.config.label_smoothing == 0.0
    assert checkpoint.spec.full_res_skip == 0 and checkpoint.spec.input_norm == "dataset"


def test_the_earliest_version_1_files_load_too(tmp_path):
    """The first seglab (87dc11a) wrote no step and a config of 12 options, with tuples."""
    path = copy_fixture("version1.pt", tmp_path)
    payload = torch.load(path, weights_only=True)
    del payload["step"]
    first = ("data", "encoder", "weights", "epochs", "batch_size", "lr", "weight_decay")
    first += ("workers", "seed", "device", "out", "progress")
    payload["config"] = {k: payload["config"][k] for k in first}
    payload["encoder_weights"] = "imagenet"
    torch.save(payload, path)
    _, checkpoint = load_quietly(path)
    assert checkpoint.step == 0 and checkpoint.config.crop_size is None
    assert checkpoint.config.weights == "imagenet"
    assert checkpoint.resolved["weights_source"] == "ImageNet weights"


@pytest.mark.parametrize(
    ("requested", "used", "weights", "source"),
    [
        ("none", None, "none", "random initialisation"),
        ("auto", None, "none", "random initialisation (auto: ImageNet weights not available)"),
        ("auto", "imagenet", "imagenet", "ImageNet weights"),
        ("imagenet", "imagenet", "imagenet", "ImageNet weights"),
        ("enc.pth", "enc.pth", "enc.pth", "weights from enc.pth"),
    ],
)
def test_migration_1_to_2_records_what_the_encoder_weights_resolved_to(
    requested, used, weights, source
):
    old = {"version": 1, "config": {"weights": requested, "lr": 0.1}, "encoder_weights": used}
    new = migrate_1_to_2(old)
    assert new["resolved"] == {"weights": weights, "weights_source": source}
    assert new["config"] == {"weights": weights, "lr": 0.1}
    assert "encoder_weights" not in new and "encoder_weights" in old  # the input is unchanged


def test_migration_1_to_2_leaves_a_file_without_encoder_weights_alone():
    old = {"version": 1, "config": {"weights": "auto"}}
    assert migrate_1_to_2(old) == old


def test_every_older_version_has_its_migration():
    assert sorted(MIGRATIONS) == list(range(1, VERSION))


@pytest.mark.parametrize(
    ("version", "message"),
    [
        (VERSION + 1, rf"needs a newer seglab \(format {VERSION + 1}\)"),
        (0, "unknown format version 0"),
        ("2", "unknown format version '2'"),
        (None, "unknown format version None"),
    ],
)
def test_a_file_of_a_newer_or_unknown_version_is_refused_in_one_line(tmp_path, version, message):
    path = copy_fixture("current.pt", tmp_path)
    payload = torch.load(path, weights_only=True)
    payload["version"] = version
    torch.save(payload, path)
    with pytest.raises(SeglabError, match=message) as caught:
        Checkpoint.load(path)
    assert str(path) in str(caught.value) and len(str(caught.value).splitlines()) == 1
