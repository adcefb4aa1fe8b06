"""Writing an evaluation report: ``metrics.json``, ``predictions.csv``, ``confusion.png``,
``reliability.png`` and ``report.md``.

Both figures are drawn with OpenCV and numpy (matplotlib is not a runtime dependency).

Each file is written under a temporary name and renamed into place, so an interrupted run never
leaves a half-written report behind.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import numpy as np

from dan.evaluation.evaluate import EvaluationResult
from dan.evaluation.va_metrics import VA_NAMES
from dan.fileio import atomic_write
from dan.opencv import cv2

__all__ = ["draw_confusion", "draw_reliability", "write_report"]


def draw_confusion(confusion: np.ndarray, names: tuple[str, ...], title: str = "") -> np.ndarray:
    """Render a row-normalised confusion matrix with counts as a BGR image.

    Args:
        confusion: (C, C) counts, rows true class, columns predicted.
        names: Class names.
        title: Line drawn above the matrix.

    Returns:
        uint8 BGR image.
    """
    c = len(names)
    cell, left, top = 64, 130, 150
    img = np.full((top + c * cell + 20, left + c * cell + 20, 3), 255, np.uint8)
    rows = confusion.sum(1, keepdims=True)
    norm = np.divide(confusion, rows, out=np.zeros(confusion.shape, np.float64), where=rows > 0)
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(img, title, (10, 24), font, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, "predicted", (left + c * cell // 2 - 40, 50), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    for i in range(c):
        y = top + i * cell
        cv2.putText(img, names[i][:12], (8, y + cell // 2 + 5), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        for j in range(c):
            x = left + j * cell
            shade = int(255 - 200 * norm[i, j])
            cv2.rectangle(img, (x, y), (x + cell - 2, y + cell - 2), (255, shade, shade), -1)
            ink = (255, 255, 255) if norm[i, j] > 0.6 else (0, 0, 0)
            cv2.putText(img, str(int(confusion[i, j])), (x + 8, y + 28), font, 0.5, ink, 1, cv2.LINE_AA)
            cv2.putText(img, f"{norm[i, j]:.2f}", (x + 8, y + 50), font, 0.4, ink, 1, cv2.LINE_AA)
    for j in range(c):  # column names, rotated
        label = np.full((cell, 90, 3), 255, np.uint8)
        cv2.putText(label, names[j][:11], (2, cell // 2 + 5), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        img[top - 90 : top, left + j * cell : left + (j + 1) * cell] = cv2.rotate(label, cv2.ROTATE_90_COUNTERCLOCKWISE)
    return img


def draw_reliability(calibration: dict, title: str = "") -> np.ndarray:
    """Render a reliability diagram as a BGR image: per confidence bin, the accuracy (bar) against the
    mean confidence (the diagonal is perfect calibration), the gap shaded, each bin's sample count below.

    Args:
        calibration: What :func:`dan.evaluation.calibration.calibration_scores` returned (its
            ``reliability`` bins, ``ece``).
        title: Line drawn above the plot.

    Returns:
        uint8 BGR image.
    """
    rel = calibration["reliability"]
    counts, conf, acc = rel["counts"], rel["confidence"], rel["accuracy"]
    bins = len(counts)
    side, left, top, bottom = 450, 70, 60, 90
    img = np.full((top + side + bottom, left + side + 30, 3), 255, np.uint8)
    font, ink, grey = cv2.FONT_HERSHEY_SIMPLEX, (0, 0, 0), (160, 160, 160)

    def xy(fx: float, fy: float) -> tuple[int, int]:
        return left + round(fx * side), top + side - round(fy * side)

    cv2.putText(img, title, (10, 24), font, 0.5, ink, 1, cv2.LINE_AA)
    for k in range(6):  # grid and axis ticks at 0, 0.2, ..., 1
        f = k / 5
        cv2.line(img, xy(0, f), xy(1, f), (230, 230, 230), 1)
        cv2.putText(img, f"{f:.1f}", (left - 34, xy(0, f)[1] + 4), font, 0.4, ink, 1, cv2.LINE_AA)
        cv2.putText(img, f"{f:.1f}", (xy(f, 0)[0] - 10, top + side + 16), font, 0.4, ink, 1, cv2.LINE_AA)
    width = side / bins
    for b in range(bins):
        x0, x1 = left + round(b * width) + 1, left + round((b + 1) * width) - 1
        if counts[b] == 0:
            continue
        y_acc, y_conf = xy(0, acc[b])[1], xy(0, conf[b])[1]
        cv2.rectangle(img, (x0, y_acc), (x1, top + side), (200, 120, 40), -1)  # accuracy: blue bar
        lo, hi = sorted((y_acc, y_conf))
        if hi > lo:  # the gap to the bin's mean confidence: red
            cv2.rectangle(img, (x0, lo), (x1, hi), (80, 80, 230), -1)
        label = str(counts[b])
        scale = 0.33 if len(label) < 4 else 0.28
        cv2.putText(img, label, (x0, top + side + 34 + 12 * (b % 2)), font, scale, ink, 1, cv2.LINE_AA)
    cv2.line(img, xy(0, 0), xy(1, 1), grey, 1, cv2.LINE_AA)  # perfect calibration
    cv2.rectangle(img, xy(0, 1), xy(1, 0), ink, 1)
    cv2.putText(img, "confidence (top-1); samples per bin below", (left + 40, top + side + 70), font, 0.45, ink, 1)
    axis = np.full((30, side, 3), 255, np.uint8)
    cv2.putText(axis, "accuracy", (side // 2 - 35, 20), font, 0.45, ink, 1, cv2.LINE_AA)
    img[top : top + side, 6:36] = cv2.rotate(axis, cv2.ROTATE_90_COUNTERCLOCKWISE)
    cv2.putText(img, "accuracy", (left + 10, top + 20), font, 0.4, (200, 120, 40), 1, cv2.LINE_AA)
    cv2.putText(img, "gap to confidence", (left + 10, top + 38), font, 0.4, (80, 80, 230), 1, cv2.LINE_AA)
    return img


def _calibration_lines(result: EvaluationResult) -> list[str]:
    """report.md's calibration section (empty when it could not be computed)."""
    cal = result.calibration
    if cal is None:
        return []
    lines = [
        "",
        "## Calibration",
        "",
        f"- temperature T: {cal['temperature']:.4g} (probabilities are softmax(logits / T); 1: not calibrated)",
        f"- **ECE: {cal['ece']:.4f}** (top-1 expected calibration error, {cal['bins']} equal-width confidence bins)",
        f"- NLL: {cal['nll']:.4f} (mean negative log likelihood of the true class, natural log)",
        f"- Brier score: {cal['brier']:.4f} (multi-class: sum over classes of squared errors, mean over samples)",
    ]
    if cal["renormalised"]:
        lines.append("- the probabilities are renormalised over the scored (shared) classes for these three scores")
    return [*lines, "", "![reliability diagram](reliability.png)"]


def _va_lines(result: EvaluationResult) -> list[str]:
    """report.md's valence/arousal section (empty for a model without the output or data without targets)."""
    scores = result.va_scores
    if scores is None:
        return []
    lines = ["", "## Valence and arousal", "", "| | CCC | RMSE | images |", "| --- | ---: | ---: | ---: |"]
    for name in VA_NAMES:
        lines.append(f"| {name} | {scores[f'ccc_{name}']:.4f} | {scores[f'rmse_{name}']:.4f} | {scores[f'n_{name}']} |")
    return [*lines, "", "CCC: concordance correlation (1 perfect, 0 for a constant prediction); images: known targets."]


def write_report(result: EvaluationResult, out_dir: str | os.PathLike, meta: dict | None = None) -> dict[str, Path]:
    """Write the report files into ``out_dir``.

    Args:
        result: What :func:`dan.evaluation.evaluate.evaluate_backend` returned.
        out_dir: Folder to write into (created).
        meta: Extra facts for the JSON and Markdown (checkpoint, data set, split, TTA).

    Returns:
        Paths of ``metrics``, ``predictions``, ``confusion``, ``reliability`` (when the calibration
        scores could be computed) and ``report``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    meta = dict(meta or {})
    summary = {**meta, **result.summary()}
    paths = {
        "metrics": out / "metrics.json",
        "predictions": out / "predictions.csv",
        "confusion": out / "confusion.png",
        "report": out / "report.md",
    }
    if result.calibration is not None:
        paths["reliability"] = out / "reliability.png"
    atomic_write(paths["metrics"], json.dumps(summary, indent=2).encode())

    buf = io.StringIO()
    writer = csv.writer(buf)
    va, truth = result.va, result.va_targets  # a model with the output: its columns, and the targets (blank: unknown)
    extra: list[str] = []
    if va is not None:
        extra = [*VA_NAMES, *(f"true_{name}" for name in VA_NAMES)] if truth is not None else list(VA_NAMES)
    writer.writerow(["path", "true", "predicted", "confidence", *result.model_labels, *extra])
    for i, source in enumerate(result.sources):
        probs = result.probabilities[i]
        k = int(probs.argmax())
        row = [source, result.label_names[result.targets[i]], result.model_labels[k], f"{probs[k]:.6f}"]
        row += [f"{p:.6f}" for p in probs]
        if va is not None:
            row += [f"{v:.6f}" for v in va[i]]
            row += [f"{v:.6f}" if np.isfinite(v) else "" for v in truth[i]] if truth is not None else []
        writer.writerow(row)
    atomic_write(paths["predictions"], buf.getvalue().encode())

    title = f"acc {result.accuracy:.4f}  bacc {result.balanced_accuracy:.4f}  n={len(result.targets)}"
    ok, png = cv2.imencode(".png", draw_confusion(result.confusion, result.label_names, title))
    atomic_write(paths["confusion"], png.tobytes())
    if result.calibration is not None:
        cal = result.calibration
        head = f"ECE {cal['ece']:.4f}  NLL {cal['nll']:.4f}  T {cal['temperature']:.3g}  n={len(result.targets)}"
        ok, png = cv2.imencode(".png", draw_reliability(cal, head))
        atomic_write(paths["reliability"], png.tobytes())

    lines = ["# Evaluation report", ""]
    lines += [f"- {k}: `{v}`" for k, v in meta.items()]
    lines += [
        f"- samples: {len(result.targets)}",
        f"- **accuracy: {result.accuracy:.4f}**",
        f"- **balanced accuracy (mean per-class recall): {result.balanced_accuracy:.4f}**",
        "",
        "| class | precision | recall | F1 | support |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, row in summary["per_class"].items():
        lines.append(f"| {name} | {row['precision']:.4f} | {row['recall']:.4f} | {row['f1']:.4f} | {row['support']} |")
    left_out = result.left_out_lines()
    if left_out:
        lines += ["", "## Classes left out", ""]
        lines.append(
            f"Scored on the {len(result.label_names)} classes the model and the data set share "
            f"({', '.join(result.label_names)}); accuracy is over their images."
        )
        lines += ["", *(f"- {line}" for line in left_out)]
    lines += ["", "![confusion matrix](confusion.png)"]
    lines += [*_calibration_lines(result), *_va_lines(result), ""]
    atomic_write(paths["report"], "\n".join(lines).encode())
    return paths
