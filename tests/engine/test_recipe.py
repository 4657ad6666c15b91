"""The recipe a dataset's fingerprint chooses: each choice on constructed fingerprints (tiny and
huge images, a rare thin foreground, many classes), the user's options winning, and a run from the
command line that prints, uses and records what was chosen."""

import dataclasses

import yaml

from seglab.cli import main
from seglab.config import RECIPE_OPTIONS, TrainConfig, load_config
from seglab.data.fingerprint import Fingerprint
from seglab.engine.recipe import (
    BASE_LR,
    DEFAULT_TIME_BUDGET,
    MAX_CROP,
    MIN_CROP,
    STEPS,
    WARMUP_STEPS,
    apply_recipe,
    choose_recipe,
    format_choices,
)

AUTO = TrainConfig(auto=RECIPE_OPTIONS)
AUTO_BUT_BATCH = tuple(o for o in RECIPE_OPTIONS if o != "batch_size")
AUTO_BUT_LENGTH = tuple(o for o in RECIPE_OPTIONS if o not in ("iterations", "time_budget"))


def fingerprint(
    size=(512, 512), images=24, shares=(0.78, 0.22), widths=(60.0, 7.5), sizes=None
) -> Fingerprint:
    smallest, largest = sizes or (size, size)
    return Fingerprint(
        train_images=images,
        val_images=6,
        image_size=size,
        smallest_size=smallest,
        largest_size=largest,
        channels=1,
        classes=tuple(f"class{i}" for i in range(len(shares))),
        class_shares=tuple(shares),
        ignored_share=0.0,
        widths=tuple(widths),
        groups=None,
        measured_masks=images,
    )


def chosen(fp: Fingerprint, config: TrainConfig = AUTO) -> dict:
    return {c.option: c.value for c in choose_recipe(fp, config)}


def test_tiny_images_train_whole_with_a_batch_that_keeps_four_steps_an_epoch():
    choices = chosen(fingerprint(size=(24, 32), images=40))
    assert choices["crop_size"] is None
    assert choices["batch_size"] == 10  # 40 images: at least 4 steps an epoch
    assert choices["iterations"] == STEPS and choices["time_budget"] == DEFAULT_TIME_BUDGET


def test_larger_images_are_cropped_to_about_half_their_side_rounded_to_the_stride():
    fp = fingerprint(size=(2000, 3000), sizes=((1500, 2000), (2400, 3600)))
    choices = chosen(fp)
    assert choices["crop_size"] == (MAX_CROP, MAX_CROP)
    assert choices["batch_size"] == 2
    middling = fingerprint(size=(584, 565), sizes=((584, 565), (584, 565)))
    assert chosen(middling)["crop_size"] == (MIN_CROP, MIN_CROP)
    assert chosen(middling)["batch_size"] == 8  # as many pixels a step as 2 whole 512x512
    wide = fingerprint(size=(1200, 1600), sizes=((1200, 1600), (1200, 1600)))
    assert chosen(wide)["crop_size"] == (512, 512)  # half of 1200, at most MAX_CROP
    narrow = fingerprint(size=(200, 1000), sizes=((200, 1000), (200, 1000)))
    assert chosen(narrow)["crop_size"] == (192, MIN_CROP)  # never taller than the images
    whole = fingerprint(size=(256, 200), sizes=((240, 200), (256, 256)))
    assert chosen(whole)["crop_size"] is None


def test_a_rare_thin_foreground_gets_dice_weights_but_no_full_resolution_skip():
    fp = fingerprint(shares=(0.98, 0.02), widths=(200.0, 3.0))
    choices = chosen(fp)
    assert choices["loss"] == "ce+dice"
    assert choices["class_weights"] == "sqrt_median_frequency"
    assert choices["full_res_skip"] == 0  # 2% of the pixels: not worth a slower step
    lines = format_choices(fp, choose_recipe(fp, AUTO))
    assert any("class1 is 2.0% of labelled pixels" in line for line in lines)
    assert any("class1 structures are thinner than 8 px but only 2.0%" in line for line in lines)


def test_thin_structures_with_a_large_share_of_the_pixels_get_a_full_resolution_skip():
    # the ISBI membranes' shape: one thin class, about a fifth of the pixels
    fp = fingerprint(shares=(0.78, 0.22), widths=(60.0, 7.5))
    assert chosen(fp)["full_res_skip"] == 16
    lines = format_choices(fp, choose_recipe(fp, AUTO))
    assert any("class1 structures are at most 7.5 px wide and 22%" in line for line in lines)
    # VGG19's first skip is at full resolution already
    assert chosen(fp, dataclasses.replace(AUTO, encoder="vgg19"))["full_res_skip"] == 0
    # several thin classes count together (CamVid's three are 2.6%: no skip; these are 6%)
    several = fingerprint(shares=(0.94, 0.03, 0.03), widths=(60.0, 3.0, 6.0))
    assert chosen(several)["full_res_skip"] == 16
    few = fingerprint(shares=(0.96, 0.02, 0.02), widths=(60.0, 3.0, 6.0))
    assert chosen(few)["full_res_skip"] == 0


def test_balanced_wide_classes_keep_the_plain_loss():
    choices = chosen(fingerprint(shares=(0.5, 0.5), widths=(100.0, 90.0)))
    assert choices["loss"] == "ce" and choices["class_weights"] == "none"
    assert choices["full_res_skip"] == 0


def test_thirty_classes_and_many_images_plan_at_least_thirty_epochs():
    shares = [0.5] + [0.5 / 29] * 29
    fp = fingerprint(size=(360, 480), images=3000, shares=shares, widths=[50.0] * 30)
    choices = chosen(fp)
    assert choices["crop_size"] == (MIN_CROP, MIN_CROP)
    assert choices["batch_size"] == 8  # 0.5 megapixels a step at 256x256
    assert choices["iterations"] == 30 * (3000 // 8)
    assert choices["loss"] == "ce+dice"  # each small class is 1.7%
    assert 1 <= choices["val_interval"] <= 2


def test_options_the_user_gave_are_never_chosen():
    fp = fingerprint()
    given = load_config(None, {"batch_size": "4", "loss": "focal", "iterations": "50"})
    choices = chosen(fp, given)
    assert not {"batch_size", "loss", "iterations", "time_budget"} & set(choices)
    config = apply_recipe(given, choose_recipe(fp, given))
    assert (config.batch_size, config.loss, config.iterations) == (4, "focal", 50)
    assert config.auto == tuple(choices)  # the record names what the fingerprint chose


def test_a_budget_given_alone_is_filled_rather_than_capped():
    config = load_config(None, {"time_budget": "4m"})
    choices = chosen(fingerprint(), config)
    assert "iterations" not in choices and "time_budget" not in choices
    assert config.fills_budget and config.planned_steps(10) is None


def test_a_config_file_means_exactly_what_it_says(tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_text("batch_size: 4\n")
    assert load_config(path, {}).auto == ()
    assert load_config(path, {"auto": "all"}).auto == tuple(
        o for o in RECIPE_OPTIONS if o != "batch_size"
    )


def test_the_default_command_prints_uses_and_records_its_recipe(tmp_path, capsys):
    data = tmp_path / "tiny.yaml"
    data.write_text("layout: synthetic\nsize: [64, 80]\ntrain: 32\nval: 8\n")
    out = tmp_path / "run"
    argv = ["train", "--data", str(data), "--weights", "none", "--workers", "0"]
    argv += ["--time-budget", "6s", "--no-progress", "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "recipe from the dataset's fingerprint (32 train / 8 val images of 64x80" in printed
    assert "as many steps of 8 images as fit the 0.1 min budget" in printed
    record = yaml.safe_load((out / "config.yaml").read_text())
    assert record["batch_size"] == 8 and record["crop_size"] is None  # what was used
    assert "iterations" not in record["auto"] and record["iterations"] is None
    assert [c["option"] for c in record["resolved"]["recipe"]] == record["auto"]
    assert record["resolved"]["fingerprint"]["train_images"] == 32
    assert record["resolved"]["minimum_steps"] >= 300


def test_the_learning_rate_follows_the_batch_and_warms_up_over_a_tenth_of_a_short_run():
    fp = fingerprint()
    choices = chosen(fp)  # 256x256 crops in batches of 8
    assert choices["batch_size"] == 8 and choices["lr"] == BASE_LR
    assert choices["warmup_iters"] == WARMUP_STEPS
    quarter = chosen(fp, dataclasses.replace(AUTO, batch_size=2, auto=AUTO_BUT_BATCH))
    assert quarter["lr"] == BASE_LR / 2  # Adam's square-root scaling: a quarter of the batch
    short = chosen(fp, dataclasses.replace(AUTO, iterations=60, auto=AUTO_BUT_LENGTH))
    assert short["warmup_iters"] == 6  # a tenth of 60 planned steps
    budget = dataclasses.replace(AUTO, time_budget=60.0, auto=AUTO_BUT_LENGTH)
    lines = format_choices(fp, choose_recipe(fp, budget))
    assert any("or the first quarter of the budget if that ends sooner" in line for line in lines)
    # SGD keeps the plain rate; a rate given wins
    assert "lr" not in chosen(fp, dataclasses.replace(AUTO, optimizer="sgd"))
    given = dataclasses.replace(AUTO, lr=0.01, auto=tuple(o for o in RECIPE_OPTIONS if o != "lr"))
    assert "lr" not in chosen(fp, given)
    lines = format_choices(fp, choose_recipe(fp, AUTO))
    assert any("lr             0.002: AdamW's rate for a batch of 8" in line for line in lines)
