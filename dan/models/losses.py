"""DAN's two auxiliary losses (arXiv 2109.07270, sections 3.1 and 3.3).

- Affinity loss: pulls each sample's pooled feature to its class centre and pushes the centres apart
  (divides by their variance across classes). The centres are learnable and are trained by the same
  optimiser as the model.
- Partition loss: grows the variance of the attention heads' outputs across heads, so that the heads
  attend to different face regions.
- Concordance-correlation loss (ours, for the valence/arousal output): mean over valence and arousal
  of 1 - CCC, over the rows whose targets are known.
"""

from __future__ import annotations

import sys

import torch
from torch import nn

__all__ = ["AffinityLoss", "PartitionLoss", "ccc_loss"]


class AffinityLoss(nn.Module):
    """L_af = (1/B) sum_b ||f_b - c_{y_b}||^2 / sum_d Var_c(c[:, d]).

    ``f = GAP(F)``; the variance is the unbiased variance over classes of each feature dimension.
    As in the reference, each entry of the masked (B, C) distance matrix, already divided by the
    centre variance, is clamped to [1e-12, 1e12] before summing.

    Args:
        num_classes: Number of class centres C (at least the number of classes; the reference's
            RAF-DB script uses 8 centres for 7 classes, and an unused centre still enters the
            variance normaliser).
        feat_dim: Feature channels D (the backbone's ``num_features``).
    """

    def __init__(self, num_classes: int = 7, feat_dim: int = 512) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.feat_dim = feat_dim
        self.centers = nn.Parameter(torch.randn(num_classes, feat_dim))  # (C, D)

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Compute the loss.

        Args:
            features: Feature map (B, D, H, W) or pooled features (B, D).
            labels: Class indices, shape (B,).

        Returns:
            Scalar loss.
        """
        f = features.mean(dim=(2, 3)) if features.dim() == 4 else features  # (B, D)
        b = f.shape[0]
        # squared distances to every centre, expanded form as in the reference: (B, C)
        dist = (
            f.pow(2).sum(dim=1, keepdim=True).expand(b, self.num_classes)
            + self.centers.pow(2).sum(dim=1, keepdim=True).expand(self.num_classes, b).t()
        )
        dist = torch.addmm(dist, f, self.centers.t(), beta=1, alpha=-2)
        mask = labels.unsqueeze(1) == torch.arange(self.num_classes, device=labels.device)  # (B, C)
        dist = dist * mask.to(dist.dtype) / self.centers.var(dim=0).sum()
        return dist.clamp(min=1e-12, max=1e12).sum() / b


class PartitionLoss(nn.Module):
    """L_pt = log(1 + K / (v + eps)), v = mean over batch and channels of Var_k(H).

    ``H`` is the head tensor (B, K, C); the variance is the unbiased variance across heads and
    ``eps = sys.float_info.epsilon``. With one head the loss is 0.
    """

    def forward(self, heads: torch.Tensor) -> torch.Tensor:
        """Compute the loss.

        Args:
            heads: Head tensor, shape (B, K, C).

        Returns:
            Scalar loss.
        """
        k = heads.size(1)
        if k == 1:
            return heads.new_zeros(())
        v = heads.var(dim=1).mean()
        return torch.log1p(k / (v + sys.float_info.epsilon))


def ccc_loss(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Mean over the columns (valence, arousal) of 1 - CCC, over the rows whose targets are finite.

    CCC = 2 cov(p, t) / (var(p) + var(t) + (mean(p) - mean(t))^2), with population (biased) moments,
    computed per column over the rows whose target in that column is finite (a NaN target is unknown).
    A column with no finite target adds nothing; with none at all the loss is a zero that keeps the graph
    (``pred.sum() * 0``), so a batch of unknowns still backpropagates.

    Args:
        pred: Predictions, shape (B, 2) (any (B, D)).
        target: Targets, shape (B, D), NaN where unknown.
        eps: Added to the denominator (a constant prediction of a constant target: CCC 0, not NaN).

    Returns:
        Scalar loss in [0, 2].
    """
    pred = pred.float()
    target = target.to(pred.device, torch.float32)
    known = torch.isfinite(target)  # (B, D)
    losses = []
    for d in range(pred.shape[1]):
        rows = known[:, d]
        if not bool(rows.any()):
            continue
        p, t = pred[rows, d], target[rows, d]  # (n,)
        mp, mt = p.mean(), t.mean()
        cov = ((p - mp) * (t - mt)).mean()
        denominator = p.var(unbiased=False) + t.var(unbiased=False) + (mp - mt) ** 2 + eps
        losses.append(1.0 - 2.0 * cov / denominator)
    if not losses:
        return pred.sum() * 0.0
    return torch.stack(losses).mean()
