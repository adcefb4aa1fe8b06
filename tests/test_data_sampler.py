"""The class-balanced sampler: balanced draws, one epoch = data set size, disjoint DDP shares."""

from __future__ import annotations

from collections import Counter

import pytest
from torch.utils.data import DistributedSampler

from dan.data.sampler import BalancedSampler

LABELS = [0] * 700 + [1] * 200 + [2] * 80 + [3] * 20  # very unbalanced, like AffectNet


def test_draws_are_roughly_balanced_with_replacement() -> None:
    sampler = BalancedSampler(LABELS, num_replicas=1, rank=0, seed=1)
    draws = list(sampler)
    assert len(draws) == len(sampler) == len(LABELS)
    freq = Counter(LABELS[i] for i in draws)
    assert all(200 <= freq[c] <= 300 for c in range(4)), freq  # 250 each expected, 700:20 in the data
    assert len(set(draws)) < len(draws)  # with replacement: rare samples repeat
    assert isinstance(sampler, DistributedSampler)  # Lightning leaves it alone under DDP


def test_seed_and_epoch() -> None:
    a, b = BalancedSampler(LABELS, 1, 0, seed=3), BalancedSampler(LABELS, 1, 0, seed=3)
    assert list(a) == list(b)
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first
    assert list(BalancedSampler(LABELS, 1, 0, seed=4)) != first


def test_ddp_ranks_draw_disjoint_shares_of_the_right_length() -> None:
    labels = LABELS[:999]  # not divisible by the number of ranks
    ranks = [BalancedSampler(labels, num_replicas=2, rank=r, seed=7) for r in range(2)]
    for epoch in (0, 1):
        for s in ranks:
            s.set_epoch(epoch)
        draws = [list(s) for s in ranks]
        assert [len(d) for d in draws] == [500, 500] == [len(s) for s in ranks]
        assert set(draws[0]).isdisjoint(draws[1])
        assert set(ranks[0].shard().tolist()).isdisjoint(ranks[1].shard().tolist())
        freq = Counter(labels[i] for i in draws[0] + draws[1])
        assert min(freq.values()) > 180 and max(freq.values()) < 330
    with pytest.raises(ValueError, match="rank 2"):
        BalancedSampler(labels, num_replicas=2, rank=2)
