"""Scoring a model on a labelled data set: accuracy, balanced accuracy, per-class scores, predictions.

Model classes are matched to the data set's classes by name, so a model trained with one label order
(say RAF-DB's) is scored correctly on a data set with another (say FER2013's). A prediction of a
class the data set does not have (AffectNet's ``contempt`` on 7-class data) counts as wrong.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from dan.common import DanError
from dan.data.transforms import tta_flip
from dan.models import DAN

__all__ = ["EvaluationResult", "evaluate_model"]


@dataclass
class EvaluationResult:
    """Scores of one evaluation.

    Attributes:
        label_names: The data set's class names (rows/columns of ``confusion``).
        model_labels: The model's class names (columns of ``probabilities``).
        targets: True class index of every sample, shape (N,).
        predictions: Predicted data-set class index of every sample, -1 for a class the data set lacks.
        probabilities: Softmax over the model's classes, shape (N, C_model).
        sources: Path (or ``FILE:LINE``) of every sample.
    """

    label_names: tuple[str, ...]
    model_labels: tuple[str, ...]
    targets: np.ndarray
    predictions: np.ndarray
    probabilities: np.ndarray
    sources: list[str] = field(default_factory=list)

    @property
    def confusion(self) -> np.ndarray:
        """(C, C) counts, rows true class, columns predicted class (predictions outside the set are left out)."""
        c = len(self.label_names)
        keep = self.predictions >= 0
        return np.bincount(self.targets[keep] * c + self.predictions[keep], minlength=c * c).reshape(c, c)

    @property
    def support(self) -> np.ndarray:
        """Number of samples of each true class."""
        return np.bincount(self.targets, minlength=len(self.label_names))

    @property
    def accuracy(self) -> float:
        return float((self.predictions == self.targets).mean()) if len(self.targets) else float("nan")

    @property
    def recall(self) -> np.ndarray:
        hits = np.diag(self.confusion).astype(np.float64)
        return np.divide(hits, self.support, out=np.zeros_like(hits), where=self.support > 0)

    @property
    def precision(self) -> np.ndarray:
        hits = np.diag(self.confusion).astype(np.float64)
        predicted = self.confusion.sum(axis=0)
        return np.divide(hits, predicted, out=np.zeros_like(hits), where=predicted > 0)

    @property
    def f1(self) -> np.ndarray:
        p, r = self.precision, self.recall
        return np.divide(2 * p * r, p + r, out=np.zeros_like(p), where=(p + r) > 0)

    @property
    def balanced_accuracy(self) -> float:
        """Mean recall over the classes present in the data."""
        present = self.support > 0
        return float(self.recall[present].mean()) if present.any() else float("nan")

    def summary(self) -> dict:
        """Plain-type dict of every score (what ``metrics.json`` holds)."""
        per_class = {
            name: {
                "precision": float(self.precision[i]),
                "recall": float(self.recall[i]),
                "f1": float(self.f1[i]),
                "support": int(self.support[i]),
            }
            for i, name in enumerate(self.label_names)
        }
        return {
            "samples": int(len(self.targets)),
            "accuracy": self.accuracy,
            "balanced_accuracy": self.balanced_accuracy,
            "predicted_outside_label_set": int((self.predictions < 0).sum()),
            "per_class": per_class,
            "confusion": self.confusion.tolist(),
            "labels": list(self.label_names),
        }


def _class_map(model_labels: tuple[str, ...], data_labels: tuple[str, ...]) -> np.ndarray:
    missing = [name for name in data_labels if name not in model_labels]
    if missing:
        raise DanError(
            f"the model's classes ({', '.join(model_labels)}) lack the data set's {', '.join(missing)}: "
            "pass --labels to name the model's classes"
        )
    return np.array([data_labels.index(n) if n in data_labels else -1 for n in model_labels])


@torch.inference_mode()
def evaluate_model(
    model: DAN,
    dataset: Dataset,
    batch_size: int = 64,
    num_workers: int = 0,
    tta: bool = False,
    device: str | torch.device = "cpu",
) -> EvaluationResult:
    """Run ``model`` over ``dataset`` and score it.

    Args:
        model: A DAN model with ``labels`` set (see :func:`dan.load_model`).
        dataset: Yields ``(image (3,S,S), label)``; has ``label_names`` and ``samples``.
        batch_size: Images per forward pass.
        num_workers: DataLoader worker processes.
        tta: Average the softmax of each image and its horizontal mirror.
        device: Where to run.

    Returns:
        The :class:`EvaluationResult`.
    """
    data_labels = tuple(dataset.label_names)
    mapping = _class_map(tuple(model.labels), data_labels)
    model = model.to(device).eval()
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers, shuffle=False)
    probs, targets = [], []
    for x, y in loader:
        x = x.to(device)
        p = model(x).logits.softmax(-1)
        if tta:
            p = (p + model(tta_flip(x)).logits.softmax(-1)) / 2
        probs.append(p.float().cpu())
        targets.append(y)
    probabilities = torch.cat(probs).numpy() if probs else np.zeros((0, len(mapping)), np.float32)
    target = torch.cat(targets).numpy() if targets else np.zeros(0, np.int64)
    predictions = mapping[probabilities.argmax(1)] if len(target) else np.zeros(0, np.int64)
    sources = [str(s) for s, _ in getattr(dataset, "samples", [])] or [str(i) for i in range(len(target))]
    return EvaluationResult(data_labels, tuple(model.labels), target, predictions, probabilities, sources)
