"""Classification scores as papers report them, defined once for training and for ``dan evaluate``.

Everything is derived from one confusion matrix (torchmetrics, so it is summed over DDP ranks):

- accuracy: correct predictions over all samples;
- balanced accuracy: the mean recall over the classes *present in the targets*, as scikit-learn's
  ``balanced_accuracy_score`` and the reference implementation compute it (a class with no sample
  in the split does not pull the mean down);
- per-class precision, recall and F1, and the matrix itself.

A prediction may fall outside the data set's label set (a model's ``contempt`` on 7-class data, index
-1): it is kept in an extra column, so it counts as wrong without belonging to any class.
"""

from __future__ import annotations

import torch
from torch import nn
from torchmetrics.classification import MulticlassConfusionMatrix

__all__ = ["ClassificationMetrics", "scores_from_confusion"]


def scores_from_confusion(full: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every score from a (C + 1, C + 1) count matrix whose last column holds predictions outside the set.

    Args:
        full: Counts, rows true class, columns predicted class; row C and column C are the "outside" slot.

    Returns:
        ``acc``, ``bacc`` (scalars), ``precision``, ``recall``, ``f1``, ``support`` (C,) and
        ``confusion`` (C, C).
    """
    full = full.double()
    c = full.shape[0] - 1
    confusion = full[:c, :c]  # (C, C)
    support = full[:c].sum(1)  # every sample of each true class, outside predictions included
    hits = confusion.diagonal()
    predicted = confusion.sum(0)
    recall = torch.where(support > 0, hits / support.clamp(min=1), torch.zeros_like(hits))
    precision = torch.where(predicted > 0, hits / predicted.clamp(min=1), torch.zeros_like(hits))
    f1 = torch.where(precision + recall > 0, 2 * precision * recall / (precision + recall), torch.zeros_like(hits))
    present = support > 0
    total = support.sum()
    nan = torch.tensor(float("nan"), dtype=full.dtype)
    return {
        "acc": (hits.sum() / total if total > 0 else nan).float(),
        "bacc": (recall[present].mean() if present.any() else nan).float(),
        "precision": precision.float(),
        "recall": recall.float(),
        "f1": f1.float(),
        "support": support.long(),
        "confusion": confusion.long(),
    }


class ClassificationMetrics(nn.Module):
    """Accuracy, balanced accuracy, per-class precision/recall/F1 and the confusion matrix.

    Args:
        num_classes: Number of classes C of the data set.
    """

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.confusion = MulticlassConfusionMatrix(num_classes + 1)  # + the "outside the label set" slot

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch: predicted class indices (-1: outside the label set) or logits (B, C), and targets (B,)."""
        if preds.ndim == 2:
            preds = preds.argmax(-1)
        preds = torch.where(preds < 0, torch.full_like(preds, self.num_classes), preds)
        self.confusion.update(preds, target)

    def compute(self) -> dict[str, torch.Tensor]:
        """All scores so far (see :func:`scores_from_confusion`); synchronised across DDP ranks."""
        if not self.confusion.update_called:  # nothing seen: NaN scores, zero counts (and no warning)
            return scores_from_confusion(torch.zeros(self.num_classes + 1, self.num_classes + 1))
        return scores_from_confusion(self.confusion.compute())

    def reset(self) -> None:
        """Forget everything (call at the end of each epoch)."""
        self.confusion.reset()
