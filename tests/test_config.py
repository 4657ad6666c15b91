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
