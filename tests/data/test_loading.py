"""The training loader's draws: reproducible per (seed, epoch), the same global batches on any
number of processes, shuffled or drawn by weight."""

from collections import Counter

import torch

from seglab.data.loading import GlobalBatchSampler


def epoch_items(sampler: GlobalBatchSampler, epoch: int) -> list[int]:
    sampler.set_epoch(epoch)
    return [index for batch in sampler for _, index in batch]


def test_without_weights_an_epoch_is_a_permutation():
    items = epoch_items(GlobalBatchSampler(12, 4, seed=3), epoch=1)
    assert sorted(items) == list(range(12))


def test_weighted_draws_follow_the_weights_and_repeat_per_epoch():
    weights = torch.tensor([0.7, 0.1, 0.1, 0.1], dtype=torch.float64)
    sampler = GlobalBatchSampler(4000, 8, seed=0, weights=torch.cat([weights, torch.zeros(3996)]))
    items = epoch_items(sampler, epoch=2)
    assert len(items) == 4000 and set(items) <= {0, 1, 2, 3}
    assert abs(Counter(items)[0] / len(items) - 0.7) < 0.03
    assert items == epoch_items(sampler, epoch=2)
    assert items != epoch_items(sampler, epoch=3)


def test_weighted_global_batches_are_the_same_on_one_or_two_processes():
    weights = torch.linspace(1, 2, 16, dtype=torch.float64)
    one = epoch_items(GlobalBatchSampler(16, 4, seed=1, weights=weights), epoch=1)
    ranks = [
        epoch_items(GlobalBatchSampler(16, 2, 1, rank, 2, weights=weights), epoch=1)
        for rank in (0, 1)
    ]
    together = [i for k in range(0, 16, 2) for i in ranks[0][k : k + 2] + ranks[1][k : k + 2]]
    assert together == one
