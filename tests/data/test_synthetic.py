import numpy as np
import pytest
import torch

from seglab.data.dataset import open_data
from seglab.data.synthetic import INFO, SyntheticScenes
from seglab.errors import SeglabError


def test_items_are_deterministic_from_the_seed():
    a, b = SyntheticScenes("train", seed=3), SyntheticScenes("train", seed=3)
    for i in (0, 17):
        assert torch.equal(a[i][0], b[i][0]) and torch.equal(a[i][1], b[i][1])
    assert not torch.equal(a[0][0], SyntheticScenes("train", seed=4)[0][0])
    assert not torch.equal(a[0][0], SyntheticScenes("val", seed=3)[0][0])


def test_items_have_the_dataset_contract():
    ds = SyntheticScenes("val", size=(72, 100))
    image, mask = ds[0]
    assert image.dtype == torch.float32 and image.shape == (3, 72, 100)
    assert mask.dtype == torch.int64 and mask.shape == (72, 100)
    assert image.min() >= 0 and image.max() <= 1
    assert len(ds) == 96 and ds.info.num_classes == len(ds.info.colors) == 7
    with pytest.raises(IndexError):
        ds[96]


def test_every_class_appears_and_classes_are_imbalanced():
    ds = SyntheticScenes("train")
    masks = torch.stack([ds[i][1] for i in range(64)])
    share = torch.bincount(masks.flatten(), minlength=INFO.num_classes).double() / masks.numel()
    assert (share > 0).all()
    assert share.max() > 0.25 and share.min() < 0.02  # large regions and thin, small objects


def test_textures_not_colours_tell_classes_apart():
    # Cars come in any colour: their mean colour varies a lot across images.
    ds = SyntheticScenes("train")
    car_colours = []
    for i in range(64):
        image, mask = ds[i]
        if (mask == 4).sum() > 50:
            car_colours.append(image[:, mask == 4].mean(1).numpy())
    assert len(car_colours) > 10
    assert np.std(car_colours, axis=0).mean() > 0.1


def test_open_data_by_name():
    data = open_data("synthetic")
    assert data.report is None and data.info == INFO
    test = data.split("test")
    assert isinstance(test, SyntheticScenes) and len(test) == 96
    with pytest.raises(SeglabError, match="splits"):
        data.split("holdout")
    with pytest.raises(SeglabError, match="dataset nowhere does not exist"):
        open_data("nowhere")


def test_synthetic_is_a_layout_of_a_dataset_file(tmp_path):
    (tmp_path / "tiny.yaml").write_text("layout: synthetic\nsize: [24, 40]\ntrain: 5\n")
    data = open_data(str(tmp_path / "tiny.yaml"), seed=3)
    train, val = data.split("train"), data.split("val")
    assert len(train) == 5 and len(val) == 96  # lengths not given keep their defaults
    assert train[0][0].shape == (3, 24, 40)
    assert torch.equal(train[1][0], SyntheticScenes("train", (24, 40), seed=3)[1][0])
    (tmp_path / "odd.yaml").write_text("layout: synthetic\nclasses: [a, b]\n")
    with pytest.raises(SeglabError, match="classes does not apply to layout synthetic"):
        open_data(str(tmp_path / "odd.yaml"))
