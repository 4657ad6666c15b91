import numpy as np
import pytest

from seglab.config import TrainConfig
from seglab.data.dataset import open_data
from seglab.data.stats import class_balanced_weights, class_weights
from seglab.errors import SeglabError
from tests.conftest import SHARED_DATASETS, needs_camvid
from tests.data.helpers import make_pairs


def test_median_frequency_by_hand():
    # class 0: 80 px over images totalling 100 px; class 1: 20 px over 100; class 2: 5 px over 50
    pixels, with_class = np.array([80, 20, 5]), np.array([100, 100, 50])
    freq = np.array([0.8, 0.2, 0.1])
    expected = 0.2 / freq
    assert class_weights("median_frequency", pixels, with_class) == pytest.approx(expected)
    assert class_weights("sqrt_median_frequency", pixels, with_class) == pytest.approx(
        np.sqrt(expected)
    )


def test_inverse_frequency_has_mean_one_and_unseen_classes_get_zero():
    weights = class_weights("inverse_frequency", np.array([75, 25, 0]))
    assert weights[2] == 0
    assert weights[:2] == pytest.approx(np.array([4 / 3, 4]) / np.mean([4 / 3, 4]))
    assert class_weights("none", np.array([1, 2])) is None
    with pytest.raises(ValueError, match="unknown class weighting 'rare'"):
        class_weights("rare", np.array([1, 2]))  # a user's choice is checked by TrainConfig
    with pytest.raises(SeglabError, match="class_weights: 'rare' is not one of none"):
        TrainConfig(class_weights="rare")


@needs_camvid
def test_camvid_median_frequency_weights_follow_segnets():
    # SegNet's published weights (segnet_train.prototxt); computed on its own frame list, so the
    # values differ a little, the ordering and magnitudes must not.
    segnet = np.array(
        [0.2595, 0.1826, 4.5640, 0.1417, 0.9051, 0.3826, 9.6446, 1.8418, 0.6823, 6.2478, 7.3614]
    )
    train = open_data(str(SHARED_DATASETS / "camvid"), progress=False).report.splits["train"]
    ours = class_weights("median_frequency", train.class_pixels, train.pixels_of_images_with_class)
    assert np.corrcoef(np.log(ours), np.log(segnet))[0, 1] > 0.95
    assert ours[[0, 1, 3]].max() < 0.3 and ours[[2, 9, 10]].min() > 4


def test_class_balanced_weights_by_hand():
    # class 0 everywhere; class 1 only in image 2 (20 px): balanced draws pick a class, then an
    # image by its share of that class's pixels
    pixels = np.array([[100, 0], [100, 0], [80, 20]])
    balanced = np.array([100 / 280, 100 / 280, 80 / 280 + 1]) / 2
    assert class_balanced_weights(pixels, 1.0) == pytest.approx(balanced)
    assert class_balanced_weights(pixels, 0.5) == pytest.approx(0.5 / 3 + 0.5 * balanced)
    assert class_balanced_weights(pixels, 0.0) == pytest.approx(np.full(3, 1 / 3))
    assert class_balanced_weights(pixels, 0.7).sum() == pytest.approx(1)


def test_class_balanced_weights_ignore_classes_absent_from_training():
    pixels = np.array([[10, 0, 0], [30, 5, 0]])  # class 2 never occurs
    weights = class_balanced_weights(pixels, 1.0)
    assert np.isfinite(weights).all()
    assert weights == pytest.approx([(10 / 40) / 2, (30 / 40 + 1) / 2])


def test_image_class_pixels_follow_the_masks_in_split_order(tmp_path):
    make_pairs(tmp_path, {"train": 3, "val": 1})
    data = open_data(str(tmp_path), progress=False)
    train = data.split("train")
    expected = [np.bincount(train.load(i)[1].numpy().ravel(), minlength=3) for i in range(3)]
    assert (data.image_class_pixels("train") == np.stack(expected)).all()


def test_image_class_pixels_of_generated_data_are_measured(tmp_path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text("layout: synthetic\nsize: [32, 40]\ntrain: 5\nval: 2\n")
    data = open_data(str(spec))
    pixels = data.image_class_pixels("train")
    assert pixels.shape == (5, data.info.num_classes)
    assert (pixels.sum(axis=1) <= 32 * 40).all() and pixels.sum() > 0


def test_class_sampling_is_a_share():
    assert TrainConfig(class_sampling=0.5).class_sampling == 0.5
    with pytest.raises(SeglabError, match=r"class_sampling: 1\.5 is a share, from 0 to 1"):
        TrainConfig(class_sampling=1.5)
