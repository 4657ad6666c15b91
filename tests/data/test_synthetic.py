import numpy as np
import pytest
import torch

from seglab.data.dataset import open_dataset
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


def test_open_dataset_by_name():
    assert isinstance(open_dataset("synthetic", "test"), SyntheticScenes)
    with pytest.raises(SeglabError, match="splits"):
        open_dataset("synthetic", "holdout")
    with pytest.raises(SeglabError, match="dataset nowhere does not exist"):
        open_dataset("nowhere", "train")
