import pytest
import torch
import torch.nn.functional as F

from seglab.engine.losses import build_loss, parse_loss
from seglab.errors import SeglabError

IGNORE = 255


def batch(seed=0, classes=4):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, classes, 8, 9, generator=g)
    target = torch.randint(0, classes, (2, 8, 9), generator=g)
    target[:, :2] = IGNORE
    return logits, target


def test_cross_entropy_is_torchs_with_weights_and_ignore():
    logits, target = batch()
    weight = torch.tensor([1.0, 2.0, 0.5, 3.0])
    expected = F.cross_entropy(logits, target, weight=weight, ignore_index=IGNORE)
    assert build_loss("ce", IGNORE, weight)(logits, target) == pytest.approx(expected.item())


def test_focal_with_gamma_zero_is_cross_entropy_and_gamma_discounts_easy_pixels():
    logits, target = batch()
    ce = build_loss("ce", IGNORE)(logits, target)
    assert build_loss("focal", IGNORE, focal_gamma=0.0)(logits, target) == pytest.approx(ce.item())
    assert build_loss("focal", IGNORE, focal_gamma=2.0)(logits, target) < ce


def test_dice_is_zero_for_a_perfect_prediction_and_ignores_ignored_pixels():
    _, target = batch()
    perfect = F.one_hot(target.clamp(max=3), 4).permute(0, 3, 1, 2).float() * 100
    perfect[:, :, :2] = torch.randn(2, 4, 2, 9) * 100  # garbage where the truth is ignored
    assert build_loss("dice", IGNORE)(perfect, target).item() < 1e-3
    assert build_loss("dice", IGNORE)(-perfect, target).item() > 0.9


def test_weighted_sums_and_their_spelling():
    logits, target = batch()
    ce, dice = build_loss("ce", IGNORE)(logits, target), build_loss("dice", IGNORE)(logits, target)
    assert build_loss("ce+dice", IGNORE)(logits, target) == pytest.approx((ce + dice).item())
    assert build_loss("ce:1,dice:0.5", IGNORE)(logits, target) == pytest.approx(
        (ce + 0.5 * dice).item()
    )
    assert parse_loss("focal:2") == [("focal", 2.0)]
    with pytest.raises(SeglabError, match="unknown loss 'lovasz'"):
        parse_loss("ce+lovasz")


def test_losses_give_gradients():
    logits, target = batch()
    logits.requires_grad_(True)
    build_loss("ce+dice+focal", IGNORE)(logits, target).backward()
    assert logits.grad.abs().sum() > 0
    assert logits.grad[:, :, :2].abs().sum() == 0  # ignored pixels teach nothing
