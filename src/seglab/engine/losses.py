"""Losses for segmentation: cross-entropy, OHEM cross-entropy, Dice, focal, and weighted sums of
them, all ignoring the ignore index and (where it makes sense) taking per-class weights."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from seglab.config import LOSS_NAMES, parse_loss

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def cross_entropy(
    weight: torch.Tensor | None, ignore_index: int, label_smoothing: float = 0.0
) -> Loss:
    """Cross-entropy; with ``label_smoothing`` the target puts that much mass evenly on all
    classes, which keeps a model from growing over-confident on the few frames it has seen."""

    def loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(
            logits.float(),
            target,
            weight=weight,
            ignore_index=ignore_index,
            label_smoothing=label_smoothing,
        )

    return loss


def focal(weight: torch.Tensor | None, ignore_index: int, gamma: float = 2.0) -> Loss:
    """Focal loss (Lin et al. 2017): cross-entropy scaled by (1 - p_true)^gamma, so pixels the
    model already gets right count less."""

    def loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        nll = F.cross_entropy(logits.float(), target, ignore_index=ignore_index, reduction="none")
        valid = target != ignore_index
        ce = nll if weight is None else nll * weight[torch.where(valid, target, 0)]
        scaled = (1 - (-nll).exp()).pow(gamma) * ce  # zero where ignored
        return scaled.sum() / valid.sum().clamp(min=1)

    return loss


def ohem(
    weight: torch.Tensor | None,
    ignore_index: int,
    threshold: float = 0.7,
    min_kept: float = 1 / 16,
) -> Loss:
    """Cross-entropy over the hard pixels only (online hard example mining, as BiSeNet and
    MMSegmentation's OHEM sampler use it): pixels whose true-class probability is below
    ``threshold``, and never fewer than the ``min_kept`` fraction of valid pixels, hardest first.
    Easy road and sky stop drowning out poles and signs once the model has learnt them."""

    def loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        nll = F.cross_entropy(logits.float(), target, ignore_index=ignore_index, reduction="none")
        valid = target != ignore_index
        with torch.no_grad():
            # Masks, not boolean indexing: indexing costs more than the loss itself on CPU.
            # Ignored pixels have nll 0, so p_true 1: last in the order, and masked out below.
            p_true = (-nll).exp()
            kept = max(1, int(valid.sum().item() * min_kept))
            cutoff = p_true.flatten().kthvalue(kept).values.clamp(min=threshold)
            pixel_weight = ((p_true <= cutoff) & valid).float()
            if weight is not None:
                pixel_weight *= weight[torch.where(valid, target, 0)]
        return (nll * pixel_weight).sum() / pixel_weight.sum().clamp(min=1e-12)

    return loss


def dice(weight: torch.Tensor | None, ignore_index: int, eps: float = 1.0) -> Loss:
    """Soft Dice loss over the batch, 1 - mean over classes of 2|P∩T| / (|P| + |T|), counting only
    pixels that are not ignored; classes absent from the batch's truth are left out."""

    def loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        num_classes = logits.shape[1]
        probs = logits.float().softmax(1)
        valid = target != ignore_index
        classes = torch.where(valid, target, 0)
        # Per-class sums without a one-hot truth tensor, which costs more than the model's last
        # layers on CPU.
        p_true = (probs.gather(1, classes.unsqueeze(1)) * valid.unsqueeze(1)).flatten()
        intersection = p_true.new_zeros(num_classes).index_add(0, classes.flatten(), p_true)
        truth = torch.bincount(classes.flatten(), valid.flatten().float(), minlength=num_classes)
        predicted = (probs * valid.unsqueeze(1)).sum((0, 2, 3))
        score = (2 * intersection + eps) / (predicted + truth + eps)
        present = truth > 0
        per_class = (1 - score)[present]
        if weight is not None:
            w = weight[present]
            return (per_class * w).sum() / w.sum().clamp(min=1e-12)
        return per_class.mean() if per_class.numel() else logits.sum() * 0

    return loss


LOSSES = {"ce": cross_entropy, "ohem": ohem, "dice": dice, "focal": focal}
# The configuration declares the names (torch-free, for --help and its checks); a name it allows
# without a factory here fails at import, before any run, rather than in a test.
if set(LOSSES) != set(LOSS_NAMES):
    raise ImportError(f"seglab.config.LOSS_NAMES {LOSS_NAMES} and LOSSES {tuple(LOSSES)} differ")


def build_loss(
    spec: str,
    ignore_index: int,
    weight: torch.Tensor | None = None,
    focal_gamma: float = 2.0,
    label_smoothing: float = 0.0,
) -> Loss:
    """The loss ``spec`` names ("ce", "ce+dice", "ce:1,dice:0.5", ...) as one function."""
    options = {"focal": {"gamma": focal_gamma}, "ce": {"label_smoothing": label_smoothing}}
    parts = []
    for name, factor in parse_loss(spec):  # names checked by the configuration
        parts.append((LOSSES[name](weight, ignore_index, **options.get(name, {})), factor))

    def loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return sum(factor * term(logits, target) for term, factor in parts)

    return loss
