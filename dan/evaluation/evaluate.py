"""Scoring a model on a labelled data set: accuracy, balanced accuracy, per-class scores, predictions.

Any backend runs the model (a PyTorch checkpoint, an ONNX file, a ``.pt2`` program), fed by the data
set's evaluation transform, which is :func:`dan.preprocess.prepare_face` with the model's own
preprocessing record. Model classes are matched to the data set's classes by name, so a model
trained with one label order (say RAF-DB's) is scored correctly on a data set with another (say
FER2013's). A prediction of a class the data set does not have (AffectNet's ``contempt`` on 7-class
data) counts as wrong. Scores come from :class:`dan.evaluation.metrics.ClassificationMetrics`, the
same definitions training logs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import DataLoader

from dan.common import DanError
from dan.evaluation.metrics import ClassificationMetrics
from dan.inference.predictor import softmax

if TYPE_CHECKING:
    from dan.data.dataset import FERDataset
    from dan.inference.backends import Backend

__all__ = ["EvaluationResult", "evaluate_backend", "match_classes"]


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

    @cached_property
    def scores(self) -> dict[str, np.ndarray]:
        """Every score, computed once by :class:`ClassificationMetrics`."""
        metrics = ClassificationMetrics(len(self.label_names))
        if len(self.targets):
            metrics.update(torch.as_tensor(self.predictions), torch.as_tensor(self.targets))
        return {k: v.numpy() for k, v in metrics.compute().items()}

    @property
    def confusion(self) -> np.ndarray:
        """(C, C) counts, rows true class, columns predicted class (predictions outside the set are left out)."""
        return self.scores["confusion"]

    @property
    def support(self) -> np.ndarray:
        """Number of samples of each true class."""
        return self.scores["support"]

    @property
    def accuracy(self) -> float:
        """Correct predictions over all samples."""
        return float(self.scores["acc"])

    @property
    def balanced_accuracy(self) -> float:
        """Mean recall over the classes present in the targets (scikit-learn's definition)."""
        return float(self.scores["bacc"])

    @property
    def recall(self) -> np.ndarray:
        """Per-class recall (C,)."""
        return self.scores["recall"]

    @property
    def precision(self) -> np.ndarray:
        """Per-class precision (C,)."""
        return self.scores["precision"]

    @property
    def f1(self) -> np.ndarray:
        """Per-class F1 (C,)."""
        return self.scores["f1"]

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


def match_classes(model_labels: tuple[str, ...], data_labels: tuple[str, ...]) -> np.ndarray:
    """For each model output, the data set's class index of the same name (-1 where the data set lacks it).

    Raises:
        DanError: A class of the data set that the model does not have.
    """
    missing = [name for name in data_labels if name not in model_labels]
    if missing:
        raise DanError(
            f"the model's classes ({', '.join(model_labels)}) lack the data set's {', '.join(missing)}: "
            "pass --labels to name the model's classes"
        )
    return np.array([data_labels.index(n) if n in data_labels else -1 for n in model_labels])


def evaluate_backend(
    backend: Backend,
    dataset: FERDataset,
    batch_size: int = 64,
    num_workers: int = 0,
    tta: bool = False,
) -> EvaluationResult:
    """Run a backend over ``dataset`` and score it.

    Args:
        backend: Anything with the backend interface (:mod:`dan.inference.backends`): ``labels`` and
            ``__call__(x (N, 3, S, S) float32) -> logits (N, C)``.
        dataset: A :class:`dan.data.dataset.FERDataset`: yields ``(image (3, S, S), label)`` prepared with
            the backend's preprocessing; has ``label_names`` and ``samples``.
        batch_size: Images per model call.
        num_workers: DataLoader worker processes (decoding and resizing in parallel).
        tta: Average the softmax of each image and its horizontal mirror.

    Returns:
        The :class:`EvaluationResult`.
    """
    data_labels = tuple(dataset.label_names)
    model_labels = tuple(backend.labels)
    mapping = match_classes(model_labels, data_labels)
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers, shuffle=False)
    probs, targets = [], []
    for x, y in loader:
        batch = x.numpy()  # (B, 3, S, S)
        p = softmax(np.asarray(backend(batch)))
        if tta:
            p = (p + softmax(np.asarray(backend(np.ascontiguousarray(batch[..., ::-1]))))) / 2  # mirrored
        probs.append(p)
        targets.append(y.numpy())
    probabilities = np.concatenate(probs) if probs else np.zeros((0, len(mapping)), np.float32)
    target = np.concatenate(targets) if targets else np.zeros(0, np.int64)
    predictions = mapping[probabilities.argmax(1)] if len(target) else np.zeros(0, np.int64)
    sources = [str(s) for s, _ in getattr(dataset, "samples", [])] or [str(i) for i in range(len(target))]
    return EvaluationResult(data_labels, model_labels, target, predictions, probabilities, sources)
