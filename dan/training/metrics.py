"""Classification metrics as papers report them: accuracy and balanced accuracy (mean per-class recall).

Built on torchmetrics, so values are reduced across DDP ranks when computed.
"""

from __future__ import annotations

import torch
from torch import nn
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
)

__all__ = ["ClassificationMetrics"]


class ClassificationMetrics(nn.Module):
    """Accuracy, balanced accuracy, per-class precision/recall/F1 and the confusion matrix.

    Args:
        num_classes: Number of classes.
    """

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.acc = MulticlassAccuracy(num_classes, average="micro")
        self.bacc = MulticlassAccuracy(num_classes, average="macro")  # mean per-class recall
        self.precision = MulticlassPrecision(num_classes, average=None)
        self.recall = MulticlassRecall(num_classes, average=None)
        self.f1 = MulticlassF1Score(num_classes, average=None)
        self.confusion = MulticlassConfusionMatrix(num_classes)

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch of predicted class indices (or logits) and targets."""
        for metric in self.children():
            metric.update(preds, target)

    def compute(self) -> dict[str, torch.Tensor]:
        """All values so far: ``acc``, ``bacc`` (scalars), ``precision``, ``recall``, ``f1`` (C,) and
        ``confusion`` (C, C), rows true class, columns predicted."""
        return {name: metric.compute() for name, metric in self.named_children()}

    def reset(self) -> None:
        """Forget everything (call at the end of each epoch)."""
        for metric in self.children():
            metric.reset()
