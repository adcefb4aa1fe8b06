"""Faces cut out of a frame as the model's preprocessing record says, and the model's input batch.

Per face: aligned by its five landmarks (record ``crop="align"`` and a detector that gives them, i.e.
YuNet), else the detector's box squared and grown by the record's margin, with the frame's border
pixels replicated where the region leaves the frame. The face images then go through
:func:`dan.preprocess.prepare_faces`, the one function every path uses, so all the faces of a frame
become one float32 batch and the model runs once per frame however many faces there are.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dan.inference.align import align_face
from dan.opencv import cv2
from dan.preprocess import Preprocessing, prepare_faces

__all__ = ["crop_face", "expand_box", "extract_face", "prepare_batch"]


def expand_box(
    box: Sequence[float], margin: float, frame_shape: tuple[int, ...], square: bool = True
) -> tuple[int, int, int, int]:
    """The crop region of a face box: squared around its centre and grown by ``margin``.

    Args:
        box: ``(x, y, w, h, ...)`` in pixels.
        margin: Fraction of the box side added on each side (0.2: the crop is 1.4 times the box).
        frame_shape: Shape of the frame, (H, W, ...); only used to keep degenerate boxes sane.
        square: Make the region square (side = the longer box side) before adding the margin.

    Returns:
        ``(x0, y0, x1, y1)``; may extend past the frame (the crop pads there).
    """
    x, y, w, h = (float(v) for v in box[:4])
    cx, cy = x + w / 2, y + h / 2
    if square:
        w = h = max(w, h)
    w, h = max(w * (1 + 2 * margin), 2.0), max(h * (1 + 2 * margin), 2.0)
    x0, y0 = int(round(cx - w / 2)), int(round(cy - h / 2))
    return x0, y0, x0 + int(round(w)), y0 + int(round(h))


def crop_face(frame: np.ndarray, region: tuple[int, int, int, int]) -> np.ndarray:
    """Cut ``region`` out of ``frame`` at full resolution, replicating border pixels where it leaves the frame.

    Args:
        frame: uint8 image (H, W, 3).
        region: ``(x0, y0, x1, y1)``, possibly outside the frame.

    Returns:
        uint8 array (y1 - y0, x1 - x0, 3), same channel order as ``frame``.
    """
    fh, fw = frame.shape[:2]
    x0, y0, x1, y1 = region
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, fw), min(y1, fh)
    if cx1 <= cx0 or cy1 <= cy0:  # entirely outside: nothing to show
        return np.zeros((max(y1 - y0, 1), max(x1 - x0, 1), 3), np.uint8)
    crop = frame[cy0:cy1, cx0:cx1]
    pads = (cy0 - y0, y1 - cy1, cx0 - x0, x1 - cx1)
    if any(pads):
        crop = cv2.copyMakeBorder(crop, *pads, borderType=cv2.BORDER_REPLICATE)
    return crop


def extract_face(
    frame: np.ndarray,
    detection: Sequence,
    pre: Preprocessing,
    align: bool = True,
    margin: float | None = None,
    square: bool = True,
) -> np.ndarray:
    """The face image of one detection, cut out as the record says (not yet resized).

    Args:
        frame: uint8 frame (H, W, 3), any channel order (the result has the same).
        detection: ``(x, y, w, h[, score[, landmarks (5, 2)]])``.
        pre: The model's preprocessing record (``crop``, ``face_size``, ``margin``).
        align: Use the landmarks when the record says ``align`` and the detection has them.
        margin: Box margin overriding the record's.
        square: Square the box before the margin (False for ``--detector none`` regions).

    Returns:
        uint8 (h, w, 3): the aligned ``face_size`` face, or the box crop at frame resolution.
    """
    marks = detection[5] if len(detection) > 5 else None
    if align and pre.crop == "align" and marks is not None:
        return align_face(frame, marks, pre.face_size)
    m = pre.margin if margin is None else margin
    return crop_face(frame, expand_box(detection, m, frame.shape, square))


def prepare_batch(
    frame: np.ndarray,
    detections: Sequence[Sequence],
    pre: Preprocessing,
    margin: float | None = None,
    square: bool = True,
    align: bool = True,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """All the faces of one frame as one model batch.

    Args:
        frame: uint8 frame (H, W, 3), RGB.
        detections: Face detections ``(x, y, w, h[, score[, landmarks]])``.
        pre: The model's preprocessing.
        margin: See :func:`extract_face`.
        square: See :func:`extract_face`.
        align: See :func:`extract_face`.

    Returns:
        ``(batch, faces)``: float32 (N, 3, S, S) normalised RGB, and each face image as uint8 RGB (H, W, 3).
    """
    faces = [extract_face(frame, d, pre, align, margin, square) for d in detections]
    return prepare_faces(faces, pre), faces
