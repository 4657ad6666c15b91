"""What open_data makes of images beyond 8-bit RGB: the number of bands from the files, items with
every band at full precision, and the training split's per-band statistics for the model to
normalise by (8-bit RGB and grey keep the encoder weights' own)."""

import numpy as np
import pytest
import torch

from seglab.data.dataset import open_data
from seglab.errors import SeglabError
from tests.data.helpers import band_scene, make_band_pairs, make_pairs


def test_a_multi_band_dataset_gives_its_bands_and_training_statistics(tmp_path):
    data = open_data(str(make_band_pairs(tmp_path)), progress=False)
    assert data.info.in_channels == 5 and data.info.num_classes == 3
    image, mask = data.split("val")[2]
    stored, classes = band_scene(102)
    assert image.dtype == torch.float32 and image.shape == (5, 32, 32)
    assert torch.equal(image, torch.from_numpy(stored / np.float32(65535)))
    assert torch.equal(mask, torch.from_numpy(classes))
    train = np.stack([band_scene(i)[0] for i in range(8)]).astype(np.float64) / 65535
    assert data.info.input_mean == pytest.approx(train.mean(axis=(0, 2, 3)), rel=1e-6)
    assert data.info.input_std == pytest.approx(train.std(axis=(0, 2, 3)), rel=1e-6)


def test_16_bit_grey_images_are_normalised_by_their_own_statistics(tmp_path):
    data = open_data(
        str(make_band_pairs(tmp_path, bands=1, num_classes=2, suffix=".png")), progress=False
    )
    train = np.stack([band_scene(i, bands=1, num_classes=2)[0] for i in range(8)]) / 65535
    assert data.info.in_channels == 1
    assert data.info.input_mean == pytest.approx([train.mean()], rel=1e-6)
    assert data.info.input_std == pytest.approx([train.std()], rel=1e-6)
    # 12-bit values in a 16-bit file: far from ImageNet's grey mean of 0.449
    assert data.info.input_mean[0] < 0.05


@pytest.mark.parametrize("mode, bands", [("RGB", 3), ("L", 1)])
def test_8_bit_rgb_and_grey_keep_the_encoder_weights_statistics(tmp_path, mode, bands):
    data = open_data(str(make_pairs(tmp_path, {"train": 3, "val": 2}, mode=mode)), progress=False)
    assert data.info.in_channels == bands and data.info.input_mean is None


def test_a_model_of_other_bands_is_refused_by_name(tmp_path):
    data = open_data(str(make_band_pairs(tmp_path)), progress=False)
    with pytest.raises(
        SeglabError, match=r"^best\.pt takes 3-band images, DATA has 5-band images \(only grey"
    ):
        data.with_bands(3, "best.pt", "DATA")


def test_grey_data_feeds_a_colour_model_and_colour_data_a_grey_one(tmp_path):
    grey = open_data(str(make_pairs(tmp_path / "grey", {"train": 3, "val": 2}, mode="I;16")))
    as_colour = grey.with_bands(3, "--in-channels 3", "grey")
    assert as_colour.info.in_channels == 3 and grey.with_bands(1, "m", "grey") is grey
    assert as_colour.info.input_mean == pytest.approx(grey.info.input_mean * 3)
    one, three = grey.split("val")[0][0], as_colour.split("val")[0][0]
    assert one.shape[0] == 1 and three.shape[0] == 3 and torch.equal(three, one.expand(3, -1, -1))
    scenes = open_data("synthetic").with_bands(1, "--in-channels 1", "synthetic")
    image = scenes.split("val")[0][0]
    reference = open_data("synthetic").split("val")[0][0]
    assert image.shape[0] == 1 and torch.allclose(image[0], reference.mean(0), atol=1 / 255)
