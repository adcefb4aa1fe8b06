"""The rows of a collection: one per face per analysed frame, the same columns in every format.

Columns: ``path`` (the video or image as given), ``frame`` (the frame's index in the video, 0 for an
image), ``time`` (seconds from the video's start), ``track`` (the face's track id in the video; its
position, largest first, in an image), ``x, y, w, h`` (the box in pixels), ``label`` and
``confidence`` (of the smoothed probabilities), one probability column per class named by the class,
and ``valence, arousal`` for a model with that output.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["columns", "face_row"]


def columns(labels: Sequence[str], va: bool) -> tuple[list[str], list[str]]:
    """Column names and types (``str``, ``int``, ``float``) of the rows of a model with ``labels``."""
    names = ["path", "frame", "time", "track", "x", "y", "w", "h", "label", "confidence", *labels]
    types = ["str", "int", "float", "int", "int", "int", "int", "int", "str", "float", *["float"] * len(labels)]
    if va:
        names += ["valence", "arousal"]
        types += ["float", "float"]
    return names, types


def face_row(
    path: str,
    frame: int,
    time: float,
    track: int,
    box: Sequence[int],
    labels: Sequence[str],
    probabilities: np.ndarray,
    va: np.ndarray | None,
) -> list[Any]:
    """One row (see :func:`columns`); ``va`` is (valence, arousal) of a model with them, else None."""
    k = int(np.argmax(probabilities))
    row: list[Any] = [path, frame, round(time, 3), track, *(int(v) for v in box), labels[k], float(probabilities[k])]
    row += [float(p) for p in probabilities]
    if va is not None:
        row += [float(va[0]), float(va[1])]
    return row
