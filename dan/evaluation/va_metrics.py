"""Valence and arousal scores, defined once for training and for ``dan evaluate``: CCC and RMSE.

For each of valence and arousal, over the samples whose target is known (finite; AffectNet's unknown
-2 was read as NaN):

- CCC, Lin's concordance correlation coefficient, 2 cov(p, t) / (var(p) + var(t) + (mean(p) - mean(t))^2)
  with population moments: 1 for perfect agreement, 0 for a constant prediction (the training mean);
- RMSE, the root mean squared error.

:class:`VAMetrics` keeps sums of the moments (torchmetrics states summed over DDP ranks), so the
scores are those of the whole split, not a mean of per-batch scores; :func:`va_scores` runs it on
arrays. The training loss on the same quantity is :func:`dan.models.losses.ccc_loss`.
"""

from __future__ import annotations

import numpy as np
import torch
from torchmetrics import Metric

__all__ = ["VA_DEFINITIONS", "VA_NAMES", "VAMetrics", "va_lines", "va_scores", "va_summary"]

VA_NAMES = ("valence", "arousal")
VA_DEFINITIONS = {
    "ccc": "Lin's concordance correlation, 2 cov(p, t) / (var(p) + var(t) + (mean(p) - mean(t))^2), population moments",
    "rmse": "root mean squared error",
    "samples": "images whose target is known (AffectNet's -2, unknown, is left out)",
}
_SUMS = ("n", "p", "t", "pp", "tt", "pt")


class VAMetrics(Metric):
    """CCC and RMSE of valence and arousal over every sample seen (rows with a NaN target left out per column)."""

    full_state_update = False
    is_differentiable = False
    higher_is_better = None
    n: torch.Tensor  # the states (add_state), per column
    p: torch.Tensor
    t: torch.Tensor
    pp: torch.Tensor
    tt: torch.Tensor
    pt: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        for name in _SUMS:  # per column: count, sums of p, t, p^2, t^2 and p t (float64: exact enough for a split)
            self.add_state(name, default=torch.zeros(len(VA_NAMES), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch: predictions (B, 2) and targets (B, 2), NaN where unknown."""
        p = preds.detach().to(torch.float64).reshape(-1, len(VA_NAMES))  # (B, 2)
        t = target.detach().to(p.device, torch.float64).reshape(-1, len(VA_NAMES))  # (B, 2)
        known = torch.isfinite(t)  # (B, 2)
        p, t = torch.where(known, p, 0.0), torch.where(known, t, 0.0)
        self.n += known.sum(0)
        self.p += p.sum(0)
        self.t += t.sum(0)
        self.pp += (p * p).sum(0)
        self.tt += (t * t).sum(0)
        self.pt += (p * t).sum(0)

    def compute(self) -> dict[str, torch.Tensor]:
        """``ccc_valence``, ``ccc_arousal``, ``rmse_valence``, ``rmse_arousal`` (float32 scalars, NaN with no
        known target) and ``n_valence``, ``n_arousal`` (how many targets were known)."""
        n = self.n.clamp(min=1)
        mp, mt = self.p / n, self.t / n
        var_p = (self.pp / n - mp**2).clamp(min=0)
        var_t = (self.tt / n - mt**2).clamp(min=0)
        cov = self.pt / n - mp * mt
        denominator = var_p + var_t + (mp - mt) ** 2
        nan = torch.full_like(n, float("nan"))
        ccc = torch.where((self.n > 0) & (denominator > 0), 2 * cov / denominator.clamp(min=1e-300), nan)
        mse = ((self.pp - 2 * self.pt + self.tt) / n).clamp(min=0)
        rmse = torch.where(self.n > 0, mse.sqrt(), nan)
        out: dict[str, torch.Tensor] = {}
        for i, name in enumerate(VA_NAMES):
            out[f"ccc_{name}"] = ccc[i].float()
            out[f"rmse_{name}"] = rmse[i].float()
            out[f"n_{name}"] = self.n[i].long()
        return out


def va_scores(preds: np.ndarray, target: np.ndarray) -> dict[str, float | int]:
    """:class:`VAMetrics` of whole arrays: predictions (N, 2) and targets (N, 2), NaN where unknown.

    Returns:
        ``ccc_valence``, ``ccc_arousal``, ``rmse_valence``, ``rmse_arousal`` (floats, NaN where no
        target is known) and ``n_valence``, ``n_arousal`` (ints).
    """
    metric = VAMetrics()
    preds = np.asarray(preds, np.float64).reshape(-1, len(VA_NAMES))  # (N, 2)
    target = np.asarray(target, np.float64).reshape(-1, len(VA_NAMES))  # (N, 2)
    metric.update(torch.from_numpy(preds), torch.from_numpy(target))  # an empty batch adds nothing
    values = {k: v.item() for k, v in metric.compute().items()}
    return {k: (int(v) if k.startswith("n_") else float(v)) for k, v in values.items()}


def va_summary(scores: dict[str, float | int]) -> dict:
    """:func:`va_scores` as a report's ``valence_arousal`` entry: ``{"valence": {"ccc", "rmse", "samples"},
    "arousal": {...}, "definitions": {...}}`` (plain types)."""
    out: dict = {
        name: {"ccc": scores[f"ccc_{name}"], "rmse": scores[f"rmse_{name}"], "samples": scores[f"n_{name}"]}
        for name in VA_NAMES
    }
    out["definitions"] = dict(VA_DEFINITIONS)
    return out


def va_lines(scores: dict[str, float | int]) -> list[str]:
    """:func:`va_scores` as summary lines, one per quantity (``valence: CCC 0.712, RMSE 0.183 (1000 images)``)."""
    return [
        f"{name}: CCC {scores[f'ccc_{name}']:.3f}, RMSE {scores[f'rmse_{name}']:.3f} ({scores[f'n_{name}']} images)"
        for name in VA_NAMES
    ]
