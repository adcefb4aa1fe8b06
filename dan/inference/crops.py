"""Face crops and the model's input batch: square box with a margin, border padding, resize, normalise.

All the faces of one frame become one float32 batch (N, 3, S, S) in a few vectorised numpy/OpenCV
operations, so the model runs once per frame however many faces there are.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from dan.common import Preprocessing

__all__ = ["crop_face", "expand_box", "normalize", "prepare_batch"]


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


def crop_face(frame: np.ndarray, region: tuple[int, int, int, int], size: int) -> np.ndarray:
    """Cut ``region`` out of ``frame``, replicating border pixels where it leaves the frame, resized.

    Args:
        frame: uint8 image (H, W, 3).
        region: ``(x0, y0, x1, y1)``, possibly outside the frame.
        size: Output side in pixels.

    Returns:
        uint8 array (size, size, 3), same channel order as ``frame``.
    """
    fh, fw = frame.shape[:2]
    x0, y0, x1, y1 = region
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, fw), min(y1, fh)
    if cx1 <= cx0 or cy1 <= cy0:  # entirely outside: nothing to show
        return np.zeros((size, size, 3), np.uint8)
    crop = frame[cy0:cy1, cx0:cx1]
    pads = (cy0 - y0, y1 - cy1, cx0 - x0, x1 - cx1)
    if any(pads):
        crop = cv2.copyMakeBorder(crop, *pads, borderType=cv2.BORDER_REPLICATE)
    interp = cv2.INTER_AREA if crop.shape[0] > size else cv2.INTER_LINEAR
    return cv2.resize(crop, (size, size), interpolation=interp)


def normalize(crops_bgr: np.ndarray, pre: Preprocessing) -> np.ndarray:
    """Turn uint8 BGR crops into the model's normalised RGB input.

    Args:
        crops_bgr: uint8 array (N, S, S, 3), BGR.
        pre: Mean and std of RGB values in [0, 1].

    Returns:
        float32 array (N, 3, S, S), ``(rgb / 255 - mean) / std``.
    """
    scale = (1.0 / (255.0 * np.asarray(pre.std, np.float32)))[::-1]  # BGR order
    offset = (np.asarray(pre.mean, np.float32) / np.asarray(pre.std, np.float32))[::-1]
    x = crops_bgr.astype(np.float32) * scale - offset  # (N, S, S, 3) BGR
    return np.ascontiguousarray(x[..., ::-1].transpose(0, 3, 1, 2))  # (N, S, S, 3) -> (N, 3, S, S) RGB


def prepare_batch(
    frame_bgr: np.ndarray,
    boxes: Sequence[Sequence[float]],
    pre: Preprocessing,
    margin: float = 0.2,
    square: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """All the faces of one frame as one model batch.

    Args:
        frame_bgr: uint8 frame (H, W, 3), BGR.
        boxes: Face boxes ``(x, y, w, h, ...)``.
        pre: The model's preprocessing.
        margin: See :func:`expand_box`.
        square: See :func:`expand_box`.

    Returns:
        ``(batch, crops)``: float32 (N, 3, S, S) normalised RGB, and the uint8 BGR crops (N, S, S, 3).
    """
    size = pre.input_size
    crops = np.empty((len(boxes), size, size, 3), np.uint8)  # (N, S, S, 3)
    for i, box in enumerate(boxes):
        crops[i] = crop_face(frame_bgr, expand_box(box, margin, frame_bgr.shape, square), size)
    return normalize(crops, pre), crops
