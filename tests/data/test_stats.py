import numpy as np
import pytest

from seglab.config import TrainConfig
from seglab.data.dataset import open_data
from seglab.data.stats import class_weights
from seglab.errors import SeglabError
from tests.conftest import SHARED_DATASETS, needs_camvid


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
