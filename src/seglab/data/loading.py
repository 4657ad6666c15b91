"""Data loaders whose every random draw is a function of (seed, epoch, index): the same run gives
the same batches and augmentations whatever the number of workers or processes, and a resumed run
continues exactly as if it had never stopped."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from seglab.data.dataset import pad_collate


class GlobalBatchSampler(Sampler[list[tuple[int, int]]]):
    """Batches of ``(epoch, index)``. Each epoch is a permutation drawn from ``seed + epoch`` (or,
    with ``weights``, as many draws with replacement), cut into global batches of
    ``batch_size * world_size``; process ``rank`` takes the ``rank``-th contiguous slice of each.
    So a global batch is the same set of images on 1 or N processes."""

    def __init__(
        self,
        length: int,
        batch_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        shuffle: bool = True,
        drop_last: bool = True,
        weights: torch.Tensor | None = None,
    ):
        self.length, self.batch_size, self.seed = length, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.shuffle, self.drop_last = shuffle, drop_last
        self.weights = weights  # per-item draw weights: an epoch is drawn with replacement
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            if self.weights is None:
                order = torch.randperm(self.length, generator=g).tolist()
            else:
                draws = torch.multinomial(self.weights, self.length, True, generator=g)
                order = draws.tolist()
        else:
            order = list(range(self.length))
        global_batch = self.batch_size * self.world_size
        for start in range(0, len(order), global_batch):
            chunk = order[start : start + global_batch]
            if self.drop_last and len(chunk) < global_batch:
                return
            mine = chunk[self.rank * self.batch_size : (self.rank + 1) * self.batch_size]
            if mine:
                yield [(self.epoch, i) for i in mine]

    def __len__(self) -> int:
        global_batch = self.batch_size * self.world_size
        if self.drop_last:
            return self.length // global_batch
        full, rest = divmod(self.length, global_batch)
        return full + (1 if rest > self.rank * self.batch_size else 0)


class SeededItems(Dataset):
    """Fetches ``(epoch, index)`` with torch's random state seeded from (seed, epoch, index), so
    an item's augmentation does not depend on which worker or process draws it."""

    def __init__(self, dataset: Dataset, seed: int):
        self.dataset, self.seed = dataset, seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]):
        epoch, index = key
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed((self.seed * 1_000_003 + epoch) * 10_000_019 + index)
            return self.dataset[index]


def make_loader(
    dataset: Dataset,
    batch_size: int,
    seed: int,
    ignore_index: int,
    *,
    train: bool,
    workers: int = 0,
    rank: int = 0,
    world_size: int = 1,
    pin_memory: bool = False,
    weights: torch.Tensor | None = None,
) -> DataLoader:
    """Batches of ``dataset``; a training loader shuffles each epoch, or with ``weights`` draws
    its items in proportion to them."""
    sampler = GlobalBatchSampler(
        len(dataset),
        batch_size,
        seed,
        rank,
        world_size,
        shuffle=train,
        drop_last=train,
        weights=weights if train else None,
    )
    return DataLoader(
        SeededItems(dataset, seed),
        batch_sampler=sampler,
        num_workers=workers,
        pin_memory=pin_memory,
        persistent_workers=workers > 0,
        collate_fn=pad_collate(ignore_index),
    )
