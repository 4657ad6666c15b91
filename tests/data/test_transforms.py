import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from seglab.data.masks import IGNORE
from seglab.data.transforms import eval_transform, train_transform


@settings(max_examples=40, deadline=None)
@given(
    height=st.integers(8, 64),
    width=st.integers(8, 64),
    num_classes=st.integers(2, 12),
    crop=st.none() | st.tuples(st.integers(4, 80), st.integers(4, 80)),
    low=st.floats(0.3, 1.0),
    spread=st.floats(0.0, 1.5),
    class_crop=st.sampled_from([0.0, 0.5, 1.0]),
    seed=st.integers(0, 2**16),
)
def test_augmentation_never_invents_mask_values(
    height, width, num_classes, crop, low, spread, class_crop, seed
):
    g = torch.Generator().manual_seed(seed)
    mask = torch.randint(0, num_classes, (height, width), generator=g)
    mask[torch.rand(height, width, generator=g) < 0.1] = IGNORE
    image = torch.randint(0, 256, (3, height, width), generator=g, dtype=torch.uint8)
    torch.manual_seed(seed)
    augment = train_transform(crop, scale=(low, low + spread), class_crop=class_crop)
    out_image, out_mask = augment(image, mask)
    allowed = set(range(num_classes)) | {IGNORE}
    assert set(out_mask.unique().tolist()) <= allowed
    assert out_mask.dtype == torch.int64 and type(out_mask) is torch.Tensor
    assert out_image.dtype == torch.float32 and out_image.min() >= 0 and out_image.max() <= 1
    assert out_image.shape[-2:] == out_mask.shape == (crop or (height, width))


def test_padding_fills_the_mask_with_the_ignore_index():
    image = torch.full((3, 10, 10), 200, dtype=torch.uint8)
    mask = torch.zeros(10, 10, dtype=torch.int64)
    out_image, out_mask = train_transform((20, 20), scale=(1.0, 1.0), color_jitter=0)(image, mask)
    assert (out_mask == IGNORE).sum() == 400 - 100 and (out_mask == 0).sum() == 100
    assert (out_image[:, out_mask == IGNORE] == 0).all()


def test_flip_moves_image_and_mask_together():
    image = torch.zeros(1, 4, 6, dtype=torch.uint8)
    image[..., :2] = 255
    mask = torch.zeros(4, 6, dtype=torch.int64)
    mask[:, :2] = 1
    for seed in range(8):
        torch.manual_seed(seed)
        out_image, out_mask = train_transform(None, scale=(1.0, 1.0), color_jitter=0)(image, mask)
        assert torch.equal(out_image[0] > 0.5, out_mask == 1)


def test_evaluation_keeps_the_original_resolution():
    image = torch.randint(0, 256, (3, 37, 53), dtype=torch.uint8)
    mask = torch.randint(0, 3, (37, 53))
    out_image, out_mask = eval_transform(image, mask)
    assert out_image.shape == (3, 37, 53) and torch.equal(out_mask, mask)
    assert torch.allclose(out_image * 255, image.float())


def crops_holding(value: int, mask: torch.Tensor, class_crop: float, tries: int = 400) -> float:
    image = torch.zeros(3, *mask.shape, dtype=torch.uint8)
    augment = train_transform(
        (20, 20), scale=(1.0, 1.0), hflip=False, color_jitter=0, class_crop=class_crop
    )
    torch.manual_seed(0)
    return sum(bool((augment(image, mask)[1] == value).any()) for _ in range(tries)) / tries


def test_class_aware_crops_hold_a_small_class_as_often_as_a_large_one():
    mask = torch.zeros(100, 100, dtype=torch.int64)
    mask[90:93, 5:8] = 1  # a sign: 9 pixels of 10000
    anywhere = crops_holding(1, mask, class_crop=0.0)
    aimed = crops_holding(1, mask, class_crop=1.0)
    assert anywhere < 0.15  # about (20 + 2)^2 / 81^2 of uniform windows hold it
    assert 0.4 < aimed < 0.75  # half the crops aim at it (two classes), a few others hold it too

    # ignored pixels are never aimed at: with one class below an ignored band, every aimed crop
    # holds that class, while most crops placed anywhere hold none of it
    banded = torch.full((100, 100), IGNORE, dtype=torch.int64)
    banded[80:] = 0
    assert crops_holding(0, banded, class_crop=1.0) == 1.0
    assert crops_holding(0, banded, class_crop=0.0) < 0.5


def test_class_aware_crops_pad_smaller_images_with_the_ignore_index():
    image = torch.full((3, 10, 12), 200, dtype=torch.uint8)
    mask = torch.zeros(10, 12, dtype=torch.int64)
    mask[4, 4] = 2
    augment = train_transform((16, 16), scale=(1.0, 1.0), color_jitter=0, class_crop=1.0)
    out_image, out_mask = augment(image, mask)
    assert out_mask.shape == (16, 16) and (out_mask == IGNORE).sum() == 256 - 120
    assert (out_mask == 2).sum() == 1 and (out_image[:, out_mask == IGNORE] == 0).all()


def test_colour_jitter_takes_any_number_of_bands():
    image = torch.rand(5, 16, 16) * 0.05  # 12-bit values read from a 16-bit file
    mask = torch.zeros(16, 16, dtype=torch.int64)
    torch.manual_seed(0)
    augment = train_transform(None, scale=(1.0, 1.0), hflip=False, color_jitter=0.5)
    out, out_mask = augment(image, mask)
    assert out.shape == (5, 16, 16) and out.dtype == torch.float32 and torch.equal(out_mask, mask)
    assert not torch.allclose(out, image)
    # one brightness for every band, contrast about each band's own mean: the band means all
    # change by the same factor, and no value is clipped to an 8-bit range
    ratio = out.mean(dim=(1, 2)) / image.mean(dim=(1, 2))
    assert torch.allclose(ratio, ratio[0].expand(5), rtol=1e-4)
    eight_bit = torch.randint(0, 256, (4, 16, 16), dtype=torch.uint8)
    out, _ = augment(eight_bit, mask)
    assert out.shape == (4, 16, 16) and out.min() >= 0 and out.max() <= 1
