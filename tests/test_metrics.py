"""Scores defined once: training's metrics and dan evaluate's report agree with scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import balanced_accuracy_score, confusion_matrix, precision_recall_fscore_support

from dan.evaluation.evaluate import EvaluationResult
from dan.evaluation.metrics import ClassificationMetrics


def _split_without_class_2() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    target = rng.choice([0, 1, 3, 4], size=200)  # class 2 never occurs in the targets
    preds = np.where(rng.random(200) < 0.7, target, rng.integers(0, 5, size=200))  # some predictions say 2
    return target, preds


def test_balanced_accuracy_is_scikit_learns_on_a_split_missing_a_class() -> None:
    target, preds = _split_without_class_2()
    metrics = ClassificationMetrics(5)
    for i in range(0, 200, 64):  # in batches, as an epoch would
        metrics.update(torch.as_tensor(preds[i : i + 64]), torch.as_tensor(target[i : i + 64]))
    scores = metrics.compute()
    assert scores["bacc"].item() == pytest.approx(balanced_accuracy_score(target, preds), abs=1e-6)
    assert scores["acc"].item() == pytest.approx((preds == target).mean(), abs=1e-6)
    np.testing.assert_array_equal(scores["confusion"].numpy(), confusion_matrix(target, preds, labels=range(5)))
    p, r, f, support = precision_recall_fscore_support(target, preds, labels=range(5), zero_division=0)
    np.testing.assert_allclose(scores["precision"].numpy(), p, atol=1e-6)
    np.testing.assert_allclose(scores["recall"].numpy(), r, atol=1e-6)
    np.testing.assert_allclose(scores["f1"].numpy(), f, atol=1e-6)
    np.testing.assert_array_equal(scores["support"].numpy(), support)
    metrics.update(torch.zeros(3, 5), torch.zeros(3, dtype=torch.long))  # logits are taken too
    assert metrics.compute()["support"][0].item() == support[0] + 3
    metrics.reset()
    assert np.isnan(metrics.compute()["acc"].item())


def test_evaluate_report_uses_the_same_definitions() -> None:
    target, preds = _split_without_class_2()
    preds = preds.copy()
    preds[:10] = -1  # a model class the data set does not have: wrong, and in no column
    names = tuple("abcde")
    result = EvaluationResult(names, names, target, preds, np.zeros((200, 5), np.float32))
    assert result.accuracy == pytest.approx((preds == target).mean())
    assert result.balanced_accuracy == pytest.approx(balanced_accuracy_score(target, preds), abs=1e-6)
    summary = result.summary()
    assert summary["predicted_outside_label_set"] == 10 and summary["per_class"]["c"]["support"] == 0
    assert result.confusion.sum() == 190 and result.support.sum() == 200
