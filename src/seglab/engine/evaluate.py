"""Evaluation: the dataset-wide confusion matrix of a segmenter's predictions, summarised. The
one evaluation loop of seglab: training's validation, ``seglab evaluate`` (checkpoints and exported
files alike, see seglab.deployment.measure), the benchmark's per-backend mIoU, export's and
verify's measurements and the comparison all run it. Under DDP each process evaluates its share and
the confusion matrices are summed across processes."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import Subset
from tqdm.auto import tqdm

from seglab.data.dataset import Data
from seglab.data.loading import make_loader
from seglab.engine.distributed import Dist, all_reduce_sum
from seglab.engine.inference import predict_probabilities
from seglab.engine.machine import ThreadChoice, resolve_threads, torch_threads
from seglab.engine.metrics import confusion_matrix, summarize
from seglab.engine.segmenter import Segmenter


@dataclass(frozen=True)
class EvalOptions:
    """How a model is run when it is scored: test-time augmentation (horizontal flip, several
    scales), a sliding window for large images, and batching. ``batch_size`` None: the caller's
    default (a checkpoint's training batch size, 1 for exported files). ``threads`` (torch's
    intra-op threads; None: as they are) and ``workers`` (data-loading processes) may be
    "auto": chosen from the cores free as the evaluation starts (engine.machine.choose_threads).
    """

    flip: bool = False
    scales: tuple[float, ...] = (1.0,)
    window: tuple[int, int] | None = None
    batch_size: int | None = None
    workers: int | str = 0
    threads: int | str | None = None

    def to_dict(self) -> dict[str, Any]:
        """What an evaluation record states it did (batch size as resolved by the caller)."""
        return {
            "flip": self.flip,
            "scales": list(self.scales),
            "window": list(self.window) if self.window else None,
            "batch_size": self.batch_size,
        }


@dataclass
class Evaluation:
    """What one evaluation found. ``metrics``: JSON-ready scores (fractions, see
    seglab.engine.metrics.summarize). With ``per_image``: ``confusions``, N x K x K int64 (one
    confusion matrix per image, summing to ``confusion``), and ``predictions``, each image's
    scored prediction (uint8 class indices, ``ignore_index`` where the truth is ignored or
    padded), in loader order."""

    metrics: dict[str, Any]
    confusion: torch.Tensor  # K x K int64, rows truth, columns prediction
    confusions: np.ndarray | None = None
    predictions: list[np.ndarray] | None = None
    threads: ThreadChoice | None = None  # the threads and loader workers it ran with


@torch.inference_mode()
def evaluate(
    segmenter: Segmenter,
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    options: EvalOptions = EvalOptions(),
    *,
    progress: bool = True,
    dist: Dist | None = None,
    per_image: bool = False,
) -> Evaluation:
    """Scores ``segmenter`` on the (images, masks) batches of ``loader`` against its classes
    (``segmenter.info``: classes and ignore index), with the test-time augmentation of
    ``options`` (its batching is the loader's). Under DDP (``dist``) the confusion matrix is
    summed over processes; the per-image results are this process's images only."""
    info = segmenter.info
    classes, ignore = info.num_classes, info.ignore_index
    confusion = torch.zeros(classes, classes, dtype=torch.int64, device=segmenter.device)
    confusions, predictions = [], []
    with reproducible(segmenter.device):
        for images, masks in tqdm(loader, desc="evaluate", leave=False, disable=not progress):
            images = images.to(segmenter.device, non_blocking=True)
            masks = masks.to(segmenter.device, non_blocking=True)
            predicted = predict_probabilities(
                segmenter,
                images,
                flip=options.flip,
                scales=options.scales,
                window=options.window,
            ).argmax(1)
            if not per_image:
                confusion += confusion_matrix(predicted, masks, classes, ignore)
                continue
            for pred, mask in zip(predicted, masks):
                image_confusion = confusion_matrix(pred, mask, classes, ignore)
                confusion += image_confusion
                confusions.append(image_confusion.cpu().numpy())
                scored = pred.masked_fill((mask < 0) | (mask >= classes) | (mask == ignore), ignore)
                predictions.append(scored.to(torch.uint8).cpu().numpy())
    all_reduce_sum(confusion, dist or Dist())
    return Evaluation(
        summarize(confusion, info.classes),
        confusion.cpu(),
        np.stack(confusions) if per_image and confusions else None,
        predictions if per_image else None,
    )


def reproducible(device: torch.device) -> contextlib.AbstractContextManager:
    """On a GPU, cuDNN's deterministic convolution algorithms (chosen without timing runs) in
    true fp32 (no TF32): the same weights then give the same scores in every process, so
    ``seglab evaluate`` reproduces the metrics training's validation stored. Nothing on a CPU."""
    if device.type != "cuda":
        return contextlib.nullcontext()
    return torch.backends.cudnn.flags(
        enabled=True, benchmark=False, deterministic=True, allow_tf32=False
    )


def evaluate_split(
    segmenter: Segmenter,
    data: Data,
    split: str = "val",
    options: EvalOptions = EvalOptions(),
    *,
    limit: int | None = None,
    progress: bool = True,
    per_image: bool = False,
) -> Evaluation:
    """:func:`evaluate` on ``split`` of ``data`` (its first ``limit`` images when given), at the
    original resolution, in batches of ``options.batch_size`` (1 when None; images of different
    sizes are padded, and padding is never scored). ``data`` must hold the segmenter's classes."""
    dataset = data.split(split)
    if limit:
        dataset = Subset(dataset, range(min(limit, len(dataset))))
    threads = evaluation_threads(options, segmenter.device)
    loader = make_loader(
        dataset,
        options.batch_size or 1,
        0,
        segmenter.info.ignore_index,
        train=False,
        workers=threads.workers,
        pin_memory=segmenter.device.type == "cuda",
    )
    with torch_threads(threads.threads):
        result = evaluate(segmenter, loader, options, progress=progress, per_image=per_image)
    result.threads = threads
    return result


def evaluation_threads(options: EvalOptions, device: torch.device) -> ThreadChoice:
    """The threads and loader workers ``options`` ask for, "auto" chosen from the cores free
    now; threads None keeps torch's as they are."""
    threads = torch.get_num_threads() if options.threads is None else options.threads
    return resolve_threads("evaluation", threads, options.workers, accelerator=device.type != "cpu")
