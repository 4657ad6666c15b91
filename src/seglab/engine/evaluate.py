"""Evaluation: the dataset-wide confusion matrix of a model's predictions, summarised."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from seglab.data.info import DatasetInfo
from seglab.engine.metrics import confusion_matrix, summarize


@torch.inference_mode()
def evaluate(
    model: torch.nn.Module,
    loader: DataLoader,
    info: DatasetInfo,
    device: torch.device,
    progress: bool = True,
) -> dict:
    model.eval()
    confusion = torch.zeros(info.num_classes, info.num_classes, dtype=torch.int64, device=device)
    for images, masks in tqdm(loader, desc="evaluate", leave=False, disable=not progress):
        images, masks = images.to(device), masks.to(device)
        pred = model(images).argmax(1)
        confusion += confusion_matrix(pred, masks, info.num_classes, info.ignore_index)
    return summarize(confusion, info.classes)
