"""Class-balanced sampling that also works under DDP.

:class:`BalancedSampler` draws indices with replacement, each with probability proportional to the
inverse frequency of its class, so every class is seen about equally often; one epoch has as many
draws as the data set has samples (split over the ranks). Under DDP each rank first takes its own
disjoint share of the (epoch-shuffled) indices and draws only from that share, so no two ranks ever
return the same sample in an epoch. It subclasses :class:`torch.utils.data.DistributedSampler`, so
Lightning uses it as is instead of wrapping it in another distributed sampler.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler

__all__ = ["BalancedSampler"]


class BalancedSampler(DistributedSampler):
    """Inverse-class-frequency sampler with replacement, sharded over DDP ranks.

    Args:
        labels: The label of every sample in the data set.
        num_replicas: Number of ranks; default the process group's size (1 without one).
        rank: This rank; default the process group's rank (0 without one).
        seed: Base seed; every rank must use the same one.
        num_samples: Draws per epoch over all ranks; default ``len(labels)``.

    Call :meth:`set_epoch` at the start of every epoch (Lightning does) for fresh draws.
    """

    def __init__(
        self,
        labels: Sequence[int],
        num_replicas: int | None = None,
        rank: int | None = None,
        seed: int = 0,
        num_samples: int | None = None,
    ) -> None:  # DistributedSampler.__init__ is not called: it needs a process group and a dataset
        if num_replicas is None:
            num_replicas = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
        if rank is None:
            rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is outside 0..{num_replicas - 1}")
        if len(labels) == 0:
            raise ValueError("BalancedSampler needs at least one label")
        self.labels = torch.as_tensor(list(labels), dtype=torch.int64)
        self.dataset = self.labels  # what DistributedSampler users may look at
        self.num_replicas, self.rank, self.seed, self.epoch = num_replicas, rank, seed, 0
        self.shuffle, self.drop_last = True, False
        total = len(labels) if num_samples is None else int(num_samples)
        self.num_samples = math.ceil(total / num_replicas)
        self.total_size = self.num_samples * num_replicas

    def shard(self) -> torch.Tensor:
        """This rank's share of the data set indices this epoch (disjoint from every other rank's)."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(len(self.labels), generator=g)
        if len(order) < self.num_replicas:  # fewer samples than ranks: share by repeating
            order = order.repeat(math.ceil(self.num_replicas / len(order)))
        return order[self.rank :: self.num_replicas]

    def __iter__(self) -> Iterator[int]:
        share = self.shard()
        share_labels = self.labels[share]
        counts = torch.bincount(share_labels).to(torch.float64)
        weights = 1.0 / counts[share_labels]
        g = torch.Generator().manual_seed((self.seed * 1_000_003 + self.epoch) * 1009 + self.rank + 1)
        picks = torch.multinomial(weights, self.num_samples, replacement=True, generator=g)
        return iter(share[picks].tolist())

    def __len__(self) -> int:
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        """Use the draws of ``epoch`` (same on every rank)."""
        self.epoch = int(epoch)
