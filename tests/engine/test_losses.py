import pytest
import torch
import torch.nn.functional as F

from seglab.config import LOSS_NAMES, parse_loss
from seglab.engine.losses import LOSSES, build_loss, ohem
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


def dice_by_definition(logits, target, weight=None, eps=1.0):
    """1 - 2|P∩T| / (|P| + |T|) per class present in the truth, with one-hot tensors."""
    valid = (target != IGNORE).unsqueeze(1)
    probs = logits.softmax(1) * valid
    onehot = F.one_hot(target.clamp(max=logits.shape[1] - 1), logits.shape[1])
    onehot = onehot.permute(0, 3, 1, 2) * valid
    inter, card = (probs * onehot).sum((0, 2, 3)), (probs + onehot).sum((0, 2, 3))
    per_class = 1 - (2 * inter + eps) / (card + eps)
    present = onehot.sum((0, 2, 3)) > 0
    w = torch.ones(logits.shape[1]) if weight is None else weight
    return (per_class * w)[present].sum() / w[present].sum()


@pytest.mark.parametrize("weight", [None, torch.tensor([1.0, 2.0, 0.5, 3.0])])
def test_dice_matches_its_definition_with_a_class_absent(weight):
    logits, target = batch(seed=3)
    target[target == 2] = 1  # class 2 absent from the truth: left out of the mean
    expected = dice_by_definition(logits, target, weight)
    assert build_loss("dice", IGNORE, weight)(logits, target).item() == pytest.approx(
        expected.item(), rel=1e-5
    )


def test_weighted_sums_and_their_spelling():
    logits, target = batch()
    ce, dice = build_loss("ce", IGNORE)(logits, target), build_loss("dice", IGNORE)(logits, target)
    assert build_loss("ce+dice", IGNORE)(logits, target) == pytest.approx((ce + dice).item())
    assert build_loss("ce:1,dice:0.5", IGNORE)(logits, target) == pytest.approx(
        (ce + 0.5 * dice).item()
    )
    assert parse_loss("focal:2") == [("focal", 2.0)]
    assert set(LOSS_NAMES) == set(LOSSES)  # every loss the configuration allows exists
    with pytest.raises(SeglabError, match="unknown loss 'lovasz'"):
        parse_loss("ce+lovasz")


def test_losses_give_gradients():
    logits, target = batch()
    logits.requires_grad_(True)
    build_loss("ce+ohem+dice+focal", IGNORE)(logits, target).backward()
    assert logits.grad.abs().sum() > 0
    assert logits.grad[:, :, :2].abs().sum() == 0  # ignored pixels teach nothing


def test_ohem_is_weighted_cross_entropy_when_every_pixel_is_hard():
    logits, target = batch()
    weight = torch.tensor([1.0, 2.0, 0.5, 3.0])
    expected = F.cross_entropy(logits, target, weight=weight, ignore_index=IGNORE)
    loss = ohem(weight, IGNORE, threshold=1.0)
    assert loss(logits, target).item() == pytest.approx(expected.item(), rel=1e-5)


def test_ohem_leaves_out_pixels_the_model_already_gets_right():
    logits, target = batch()
    easy = torch.zeros_like(target, dtype=torch.bool)
    easy[:, 4:] = True  # rows 4-7: the true class gets a large margin
    sure = F.one_hot(target.clamp(max=3), 4).permute(0, 3, 1, 2).float() * 20
    logits = torch.where(easy.unsqueeze(1), sure, logits * 0.1)  # elsewhere p_true < 0.7
    hard_only = torch.where(easy, IGNORE, target)
    expected = F.cross_entropy(logits, hard_only, ignore_index=IGNORE)
    got = ohem(None, IGNORE, threshold=0.7, min_kept=0.01)(logits, target)
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)


def test_ohem_keeps_the_hardest_fraction_when_everything_is_easy():
    _, target = batch()
    sure = F.one_hot(target.clamp(max=3), 4).permute(0, 3, 1, 2).float()
    logits = sure * (5 + torch.rand(target.shape).unsqueeze(1))  # margins 5 to 6: all easy
    per_pixel = F.cross_entropy(logits, target, ignore_index=IGNORE, reduction="none")
    valid = per_pixel[target != IGNORE]
    hardest = valid.sort(descending=True).values[: valid.numel() // 4]
    got = ohem(None, IGNORE, threshold=0.7, min_kept=0.25)(logits, target)
    assert got.item() == pytest.approx(hardest.mean().item(), rel=1e-5)
    assert got > valid.mean()


def test_label_smoothing_is_torchs():
    logits, target = batch()
    smoothed = build_loss("ce", IGNORE, label_smoothing=0.1)(logits, target)
    expected = torch.nn.functional.cross_entropy(
        logits, target, ignore_index=IGNORE, label_smoothing=0.1
    )
    assert smoothed.item() == pytest.approx(expected.item(), rel=1e-6)
    assert smoothed.item() != pytest.approx(build_loss("ce", IGNORE)(logits, target).item())
