"""Evaluation: the scores (defined once, for training and for ``dan evaluate``), scoring a model on a
data set through any backend, and the report files.

Needs neither Lightning nor albumentations: a model is evaluated the way it is deployed.

- :mod:`dan.evaluation.metrics`: ``ClassificationMetrics`` (accuracy, balanced accuracy, per class).
- :mod:`dan.evaluation.evaluate`: ``evaluate_backend`` and ``EvaluationResult``.
- :mod:`dan.evaluation.report`: ``write_report`` (metrics.json, predictions.csv, confusion.png, report.md).
"""
