"""The training sampler: a seeded order per epoch, balanced draws, disjoint DDP shares, a seed per sample,
and a mid-epoch resume that yields exactly the rest of the epoch."""

from __future__ import annotations

from collections import Counter

import pytest
from torch.utils.data import DistributedSampler

from dan.data.sampler import EpochSampler

LABELS = [0] * 700 + [1] * 200 + [2] * 80 + [3] * 20  # very unbalanced, like AffectNet


def _indices(sampler) -> list[int]:
    return [i for i, _ in sampler]


def test_draws_are_roughly_balanced_with_replacement() -> None:
    sampler = EpochSampler(LABELS, balanced=True, seed=1, num_replicas=1, rank=0)
    draws = _indices(sampler)
    assert len(draws) == len(sampler) == len(LABELS)
    freq = Counter(LABELS[i] for i in draws)
    assert all(200 <= freq[c] <= 300 for c in range(4)), freq  # 250 each expected, 700:20 in the data
    assert len(set(draws)) < len(draws)  # with replacement: rare samples repeat
    assert isinstance(sampler, DistributedSampler)  # Lightning leaves it alone under DDP


def test_seed_and_epoch() -> None:
    for balanced in (False, True):
        a, b = EpochSampler(LABELS, balanced=balanced, seed=3), EpochSampler(LABELS, balanced=balanced, seed=3)
        assert list(a) == list(b)
        first = list(a)
        a.set_epoch(1)
        assert list(a) != first
        assert list(EpochSampler(LABELS, balanced=balanced, seed=4)) != first
    shuffled = _indices(EpochSampler(LABELS, seed=0))
    assert sorted(shuffled) == list(range(len(LABELS))) and shuffled != sorted(shuffled)  # a permutation


def test_ddp_ranks_take_disjoint_shares_of_the_right_length() -> None:
    labels = LABELS[:999]  # not divisible by the number of ranks
    for balanced in (False, True):
        ranks = [EpochSampler(labels, balanced=balanced, num_replicas=2, rank=r, seed=7) for r in range(2)]
        for epoch in (0, 1):
            for s in ranks:
                s.set_epoch(epoch)
            draws = [list(s) for s in ranks]
            share = 500 if balanced else 499  # draws with replacement: rounded up; shuffled: the odd one dropped
            assert [len(d) for d in draws] == [share, share] == [len(s) for s in ranks]
            if not balanced:  # no sample twice in an epoch
                assert len({i for d in draws for i, _ in d}) == 998
            if balanced:
                assert set(i for i, _ in draws[0]).isdisjoint(i for i, _ in draws[1])
                freq = Counter(labels[i] for i, _ in draws[0] + draws[1])
                assert min(freq.values()) > 180 and max(freq.values()) < 330
            seeds = [seed for d in draws for _, seed in d]
            assert len(set(seeds)) == len(seeds)  # every sample of the epoch has its own seed, over all ranks
    with pytest.raises(ValueError, match="rank 2"):
        EpochSampler(labels, num_replicas=2, rank=2)


def test_resume_yields_exactly_the_rest_of_that_epoch() -> None:
    for balanced in (False, True):
        full = EpochSampler(LABELS, balanced=balanced, seed=5)
        full.set_epoch(2)
        whole = list(full)
        resumed = EpochSampler(LABELS, balanced=balanced, seed=5)
        resumed.resume(epoch=2, samples_done=96)
        resumed.set_epoch(1)
        assert len(list(resumed)) == len(LABELS)  # another epoch: untouched
        resumed.set_epoch(2)
        assert list(resumed) == whole[96:]  # the same indices and seeds as the uninterrupted epoch
        assert list(resumed) == whole  # once only
