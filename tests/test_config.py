from pathlib import Path

import pytest
import yaml

from seglab.config import TrainConfig, load_config, save_config
from seglab.errors import SeglabError
from seglab.models.encoders import ENCODERS

RECIPES = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


def test_flags_override_the_file_which_overrides_the_defaults(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("encoder: vgg19\nlr: 0.01\ncrop_size: [256, 320]\nepochs: 5\n")
    config = load_config(path, {"lr": 0.002, "epochs": None})
    assert config.encoder == "vgg19" and config.crop_size == (256, 320)
    assert config.lr == 0.002  # the flag wins
    assert config.epochs == 5  # a flag not given leaves the file's value
    assert config.batch_size == TrainConfig().batch_size


def test_the_saved_configuration_loads_back_identically(tmp_path):
    config = TrainConfig(encoder="resnet34", crop_size=(128, 128), time_budget=60.0)
    save_config(config, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml", {}) == config


def test_unknown_options_are_named_with_a_suggestion(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("lerning_rate: 0.1\n")
    with pytest.raises(SeglabError, match=r"exp\.yaml: unknown option 'lerning_rate'"):
        load_config(path, {})
    path.write_text("bach_size: 4\n")
    with pytest.raises(SeglabError, match="did you mean batch_size"):
        load_config(path, {})
    with pytest.raises(SeglabError, match="cannot read config"):
        load_config(tmp_path / "missing.yaml", {})


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.name)
def test_shipped_recipes_are_valid(recipe):
    config = load_config(recipe, {})
    # camvid_unet_vgg19.yaml may train vgg19 or its BatchNorm variant vgg19_bn
    assert config.encoder.startswith(recipe.stem.removeprefix("camvid_unet_"))
    assert config.encoder in ENCODERS and "camvid" in config.data
    assert config.time_budget and config.crop_size
    assert set(yaml.safe_load(recipe.read_text())) <= set(TrainConfig().to_dict())


def test_recipes_exist_for_the_founding_study():
    assert {p.name for p in RECIPES} >= {"camvid_unet_vgg19.yaml", "camvid_unet_mobilenet_v2.yaml"}


BAD_FILE_VALUES = [
    ("batch_size: two", "batch_size: 'two' is not an integer"),
    ("crop_size: 64", "crop_size: 64 is not HEIGHTxWIDTH"),
    ("epochs: [1]", r"epochs: \[1\] is not an integer"),
    ('lr: "fast"', "lr: 'fast' is not a number"),
    ("hflip: maybe", "hflip: 'maybe' is not true or false"),
    ("schedule: linear", "schedule: 'linear' is not one of poly, cosine, constant"),
    ("loss: ce+dise", "unknown loss 'dise'.*did you mean dice"),
    ("precision: bf61", "did you mean bf16"),
    ("scale: [2, 1]", "needs 0 < MIN <= MAX"),
    ("time_budget: soon", "'soon' is not a duration"),
    ("device: gpu", "'gpu' is not one of auto, cpu, cuda, cuda:N"),
    ("encoder: vgg91", "unknown encoder 'vgg91'; did you mean vgg19"),
]


@pytest.mark.parametrize(("line", "message"), BAD_FILE_VALUES)
def test_a_bad_value_in_a_file_names_the_file_the_option_and_what_is_allowed(
    tmp_path, line, message
):
    path = tmp_path / "exp.yaml"
    path.write_text(line + "\n")
    with pytest.raises(SeglabError, match=message) as caught:
        load_config(path, {})
    assert str(caught.value).startswith(f"{path}: ")
    assert len(str(caught.value).splitlines()) == 1


BAD_FLAGS = [
    ({"batch_size": "0"}, "--batch-size: 0 must be at least 1"),
    ({"batch_size": "-1"}, "--batch-size: -1 must be at least 1"),
    ({"lr": "nan"}, "--lr: 'nan' is not a finite number"),
    ({"lr": "-1"}, "--lr: -1.0 must be greater than 0"),
    ({"epochs": "0"}, "--epochs: 0 must be at least 1"),
    ({"schedule": "linear"}, "--schedule: 'linear' is not one of poly, cosine, constant"),
    ({"crop_size": "64"}, "--crop-size: '64' is not HEIGHTxWIDTH"),
    ({"momentum": "1"}, "--momentum: 1.0 must be less than 1"),
]


@pytest.mark.parametrize(("flags", "message"), BAD_FLAGS)
def test_a_bad_flag_is_named_as_typed(flags, message):
    with pytest.raises(SeglabError, match=message):
        load_config(None, flags)


def test_values_written_as_text_are_converted():
    config = load_config(None, {"crop_size": "256x320", "time_budget": "2m", "lr": "1e-3"})
    assert config.crop_size == (256, 320) and config.time_budget == 120.0 and config.lr == 0.001
    assert TrainConfig(crop_size=[64, 96]).crop_size == (64, 96)  # built in code: checked too
    with pytest.raises(SeglabError, match="batch_size: 0 must be at least 1"):
        TrainConfig(batch_size=0)


def test_a_run_record_loads_back_as_its_configuration(tmp_path):
    config = TrainConfig(encoder="vgg19", weights="none", device="cpu", precision="fp32")
    path = tmp_path / "config.yaml"
    extension = {"at_step": 8, "changes": {"epochs": [10, 12]}}
    save_config(config, path, {"device": "cpu", "precision_reason": "requested"}, [extension])
    record = yaml.safe_load(path.read_text())
    assert record["resolved"]["device"] == "cpu" and record["extensions"] == [extension]
    assert load_config(path, {}) == config  # a run's config.yaml works as an experiment file


def test_every_option_has_help_written_once_with_its_default():
    from seglab.config import describe_options

    described = {name: text for name, text, _ in describe_options()}
    assert set(described) == set(TrainConfig().to_dict())
    assert "(default 8)" in described["batch_size"]
    assert "poly, cosine, constant" in described["schedule"]
