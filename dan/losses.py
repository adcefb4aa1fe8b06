"""DAN's losses, importable as ``dan.losses`` (they live in :mod:`dan.models.losses`)."""

from dan.models.losses import AffinityLoss, PartitionLoss, ccc_loss

__all__ = ["AffinityLoss", "PartitionLoss", "ccc_loss"]
