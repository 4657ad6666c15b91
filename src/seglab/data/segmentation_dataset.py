"""The base class of every dataset and the shape of its transforms. It sits below both the
datasets on disk (dataset.py) and the generated one (synthetic.py), so imports flow one way:
dataset.py opens synthetic.py, which needs nothing from dataset.py."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils.data import Dataset

from seglab.data.info import DatasetInfo
from seglab.data.io import fit_bands
from seglab.data.transforms import eval_transform

Transform = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


class SegmentationDataset(Dataset):
    """Items are ``(image, mask)``: float C x H x W (in [0, 1] from integer files, as stored from
    float ones; see seglab.data.io) and int64 H x W class indices
    (``info.ignore_index`` where ignored), after the dataset's ``transform``."""

    info: DatasetInfo
    transform: Transform | None = None

    def load(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The item as stored: image uint8 or float, mask int64."""
        raise NotImplementedError

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self.load(index)
        if image.shape[0] != self.info.in_channels:  # data given to a model of other bands
            image = fit_bands(image, self.info.in_channels, f"item {index}")
        return (self.transform or eval_transform)(image, mask)
