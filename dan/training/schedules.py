"""Learning-rate schedules that size themselves from the run, so configs repeat no step counts.

:class:`WarmupCosineLR` warms up linearly, then follows a half cosine to ``min_lr_ratio`` of the base
rate, stepped every optimiser step. Its length is the run's own (``trainer.estimated_stepping_batches``,
filled in by :class:`dan.training.module.DANModule`), so changing ``trainer.max_epochs``, the data
set or the batch size needs no second edit (unlike ``CosineAnnealingLR``'s ``T_max``).
"""

from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

__all__ = ["WarmupCosineLR"]


class WarmupCosineLR(LambdaLR):
    """Linear warm-up, then cosine decay, per optimiser step.

    Args:
        optimizer: The optimiser.
        warmup: Warm-up length: a fraction of the run (< 1) or a number of steps (>= 1).
        min_lr_ratio: Final rate as a fraction of the base rate.
        total_steps: Length of the run in steps; None until the training module sets it from the trainer.
    """

    interval = "step"

    def __init__(
        self, optimizer: Optimizer, warmup: float = 0.05, min_lr_ratio: float = 0.0, total_steps: int | None = None
    ) -> None:
        if warmup < 0 or not 0 <= min_lr_ratio <= 1:
            raise ValueError(f"warmup={warmup} must be >= 0 and min_lr_ratio={min_lr_ratio} in [0, 1]")
        self.warmup, self.min_lr_ratio, self.total_steps = warmup, min_lr_ratio, total_steps
        super().__init__(optimizer, self._factor)

    def set_total_steps(self, total_steps: int) -> None:
        """Fix the run's length and re-apply the rate of the current step (the warm-up's first, at the start)."""
        self.total_steps = int(total_steps)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base * self._factor(self.last_epoch)
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def _factor(self, step: int) -> float:
        total = max(int(self.total_steps or 1), 1)
        warm = self.warmup * total if self.warmup < 1 else self.warmup
        if step < warm:
            return (step + 1) / (warm + 1)
        progress = min((step - warm) / max(total - warm, 1), 1.0)
        return self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
