"""Writing an evaluation report: ``metrics.json``, ``predictions.csv``, ``confusion.png`` and ``report.md``.

Each file is written under a temporary name and renamed into place, so an interrupted run never
leaves a half-written report behind.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import cv2
import numpy as np

from dan.evaluation.evaluate import EvaluationResult
from dan.fileio import atomic_write

__all__ = ["draw_confusion", "write_report"]


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


def write_report(result: EvaluationResult, out_dir: str | os.PathLike, meta: dict | None = None) -> dict[str, Path]:
    """Write the four report files into ``out_dir``.

    Args:
        result: What :func:`dan.evaluation.evaluate.evaluate_backend` returned.
        out_dir: Folder to write into (created).
        meta: Extra facts for the JSON and Markdown (checkpoint, data set, split, TTA).

    Returns:
        Paths of ``metrics``, ``predictions``, ``confusion`` and ``report``.
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
    atomic_write(paths["metrics"], json.dumps(summary, indent=2).encode())

    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["path", "true", "predicted", "confidence", *result.model_labels])
    for i, source in enumerate(result.sources):
        probs = result.probabilities[i]
        k = int(probs.argmax())
        writer.writerow(
            [source, result.label_names[result.targets[i]], result.model_labels[k], f"{probs[k]:.6f}"]
            + [f"{p:.6f}" for p in probs]
        )
    atomic_write(paths["predictions"], buf.getvalue().encode())

    title = f"acc {result.accuracy:.4f}  bacc {result.balanced_accuracy:.4f}  n={len(result.targets)}"
    ok, png = cv2.imencode(".png", draw_confusion(result.confusion, result.label_names, title))
    atomic_write(paths["confusion"], png.tobytes())

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
    lines += ["", "![confusion matrix](confusion.png)", ""]
    atomic_write(paths["report"], "\n".join(lines).encode())
    return paths
