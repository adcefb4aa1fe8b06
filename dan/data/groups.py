"""Seeded, stratified assignment of groups of samples to folds: no group is ever split.

A data set without an official split whose samples come in groups that must stay together (ExpW's
faces of one photo, CK+'s frames of one subject) is split by group. :func:`deal_groups` orders the
groups by their rarest label (the label with the fewest samples in the whole data set, among the
group's labels), groups with the same rarest label in a seeded random order, and deals them
round-robin into the folds, so each class's groups spread over the folds as evenly as whole groups
allow. The same groups and seed always give the same folds, whatever order they were listed in.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["deal_groups"]


def deal_groups(groups: Mapping[str, Sequence[int]], folds: int, seed: int = 0) -> dict[str, int]:
    """Assign every group to a fold ``0 .. folds - 1``.

    Args:
        groups: ``{group key: the labels of its samples}`` (a photo's faces, a subject's frames).
        folds: How many folds.
        seed: Seed of the order within each stratum.

    Returns:
        ``{group key: fold}``.
    """
    counts = Counter(label for labels in groups.values() for label in labels)
    keys = sorted(groups)
    shuffled = np.random.default_rng(seed).permutation(len(keys))  # (G,) a random rank per group
    rank = {keys[int(i)]: r for r, i in enumerate(shuffled)}

    def stratum(key: str) -> tuple[int, int]:
        labels = groups[key]
        return min((counts[label], label) for label in labels) if labels else (0, -1)

    ordered = sorted(keys, key=lambda key: (stratum(key), rank[key]))
    return {key: i % folds for i, key in enumerate(ordered)}
