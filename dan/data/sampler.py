"""The training sampler: a seeded order per epoch (shuffled, or class-balanced draws), sharded over DDP
ranks, with a seed for every sample, and resumable in the middle of an epoch.

- The order of epoch ``e`` depends only on ``(seed, e)``: shuffled indices, or, with ``balanced``,
  draws with replacement weighted by inverse class frequency (every class seen about equally often;
  one epoch has as many draws as the data set has samples, split over the ranks).
- Under DDP each rank takes its own disjoint share of the order (``DistributedSampler``'s
  ``num_replicas`` / ``rank``, passed in, so Lightning uses the sampler as it is). Shuffled, every rank
  gets ``len(labels) // num_replicas`` samples: the last ``len(labels) % num_replicas`` of each epoch's
  order are dropped (a different few each epoch) rather than others repeated, so no sample is seen
  twice in an epoch and every rank runs the same number of batches.
- It yields ``(index, sample_seed)`` pairs: the dataset seeds the sample's augmentation from
  ``sample_seed``, a function of ``(seed, epoch, position)``. Augmentations therefore do not depend on
  which worker process draws a sample or on what it drew before, which is what makes a resumed
  epoch give the same batches as an uninterrupted one.
- :meth:`resume` skips the first samples of one epoch (those a run had trained on before it was
  stopped); the skip applies to that epoch only.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler

__all__ = ["EpochSampler", "sample_seed"]

_MIX = 0x9E3779B97F4A7C15  # 64-bit golden-ratio constant for seed mixing


def sample_seed(seed: int, epoch: int, position: int) -> int:
    """A 32-bit seed for the sample at ``position`` of ``epoch``'s order (the same on every rank)."""
    h = (seed * _MIX + epoch * 1_000_003 + position * 2_654_435_761) & 0xFFFFFFFFFFFFFFFF
    h ^= h >> 31
    h = (h * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    return (h ^ (h >> 29)) & 0xFFFFFFFF


class EpochSampler(DistributedSampler):
    """Seeded, shardable, resumable training order (see the module docstring).

    Args:
        labels: The label of every sample in the data set.
        shuffle: Shuffle each epoch (else data set order).
        balanced: Draw with replacement by inverse class frequency instead of shuffling.
        seed: Base seed; every rank must use the same one.
        num_replicas: Number of ranks; default the process group's size (1 without one).
        rank: This rank; default the process group's rank (0 without one).
        num_samples: Draws per epoch over all ranks (balanced); default ``len(labels)``.

    Lightning calls :meth:`set_epoch` at the start of every epoch.
    """

    def __init__(
        self,
        labels: Sequence[int],
        shuffle: bool = True,
        balanced: bool = False,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
        num_samples: int | None = None,
    ) -> None:
        if num_replicas is None:
            num_replicas = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
        if rank is None:
            rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
        if len(labels) == 0:
            raise ValueError("EpochSampler needs at least one label")
        self.labels = torch.as_tensor(list(labels), dtype=torch.int64)
        super().__init__(
            self.labels,  # type: ignore[arg-type]  # torch annotates a Dataset; DistributedSampler only takes its len()
            num_replicas=num_replicas,
            rank=rank,
            shuffle=shuffle,
            seed=seed,
            drop_last=len(labels) >= num_replicas,  # equal shares without repeats (see the module docstring)
        )
        self.balanced = balanced
        if balanced:
            total = len(labels) if num_samples is None else int(num_samples)
            self.num_samples = math.ceil(total / num_replicas)
            self.total_size = self.num_samples * num_replicas
        self._skip: tuple[int, int] | None = None  # (epoch, samples of this rank to skip)

    def shard(self) -> torch.Tensor:
        """This rank's share of the data set indices this epoch (disjoint from every other rank's)."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(len(self.labels), generator=g) if self.shuffle else torch.arange(len(self.labels))
        # balanced: every rank draws from its own part of the data set; else pad to equal shares
        size = max(len(order), self.num_replicas) if self.balanced else self.total_size
        if len(order) < size:  # repeat, as DistributedSampler pads
            order = order.repeat(math.ceil(size / len(order)))
        return order[:size][self.rank :: self.num_replicas]

    def indices(self) -> list[int]:
        """The data set indices this rank visits this epoch, in order (length ``num_samples``)."""
        share = self.shard()
        if not self.balanced:
            return share.tolist()
        share_labels = self.labels[share]
        weights = 1.0 / torch.bincount(share_labels).to(torch.float64)[share_labels]
        g = torch.Generator().manual_seed((self.seed * 1_000_003 + self.epoch) * 1009 + self.rank + 1)
        picks = torch.multinomial(weights, self.num_samples, replacement=True, generator=g)
        return share[picks].tolist()

    def resume(self, epoch: int, samples_done: int) -> None:
        """Skip this rank's first ``samples_done`` samples when ``epoch`` is iterated (once)."""
        self._skip = (int(epoch), int(samples_done)) if samples_done > 0 else None

    def __iter__(self) -> Iterator[tuple[int, int]]:
        indices = self.indices()
        start = 0
        if self._skip is not None and self._skip[0] == self.epoch:
            start, self._skip = self._skip[1], None
        for j in range(start, len(indices)):  # global position rank + R * j: a seed unique over all ranks
            yield indices[j], sample_seed(self.seed, self.epoch, self.rank + self.num_replicas * j)

    def __len__(self) -> int:
        return self.num_samples
