"""The detector test set: real photographs (scikit-image's and matplotlib's) with their true face boxes.

Three photographs with a face (the astronaut, the cameraman, Grace Hopper), nine with none (a cat,
coffee, a rocket, coins, ...); each face photo as it is, mirrored, turned by +-20 degrees and
letterboxed into a 640x480 frame; a group picture of all three side by side. Used by
``scripts.bench.detectors`` and the int8 face sets (:mod:`scripts.common.faces`).
"""

from __future__ import annotations

import os

import cv2
import matplotlib
import numpy as np
import skimage.data

__all__ = ["FACES", "NO_FACE", "test_set"]

# (x, y, w, h) of the face in each photograph (checked by eye)
FACES = {"astronaut": (178, 63, 90, 113), "camera": (196, 113, 60, 81), "grace_hopper": (183, 120, 170, 213)}
NO_FACE = (
    "chelsea",
    "coffee",
    "rocket",
    "coins",
    "brick",
    "hubble_deep_field",
    "moon",
    "horse",
    "immunohistochemistry",
)


def _rgb(image: np.ndarray) -> np.ndarray:
    """uint8 RGB (H, W, 3), what the detectors take, from any scikit-image picture."""
    if image.dtype != np.uint8:  # bool masks, float images
        image = (image.astype(np.float64) / max(float(image.max()), 1e-9) * 255).astype(np.uint8)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    return np.ascontiguousarray(image[..., :3])


def _photos() -> dict[str, np.ndarray]:
    photos = {"astronaut": skimage.data.astronaut(), "camera": skimage.data.camera()}
    photos["grace_hopper"] = cv2.imread(os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg"))
    photos["grace_hopper"] = cv2.cvtColor(photos["grace_hopper"], cv2.COLOR_BGR2RGB)
    return {k: _rgb(v) for k, v in photos.items()}


def _warp_box(box, m: np.ndarray) -> tuple[int, int, int, int]:
    x, y, w, h = box
    corners = np.array([[x, y], [x + w, y], [x, y + h], [x + w, y + h]], np.float64) @ m[:, :2].T + m[:, 2]
    (x0, y0), (x1, y1) = corners.min(0), corners.max(0)
    return int(x0), int(y0), int(x1 - x0), int(y1 - y0)


def test_set() -> list[tuple[str, np.ndarray, list[tuple[int, int, int, int]]]]:
    """``(name, RGB image, true face boxes)`` for every test picture."""
    items = []
    photos = _photos()
    for name, img in photos.items():
        h, w = img.shape[:2]
        box = FACES[name]
        items.append((name, img, [box]))
        items.append((f"{name} mirrored", img[:, ::-1].copy(), [(w - box[0] - box[2], box[1], box[2], box[3])]))
        for angle in (-20, 20):
            m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
            items.append((f"{name} turned {angle}", cv2.warpAffine(img, m, (w, h)), [_warp_box(box, m)]))
        scale = min(640 / w, 480 / h)
        m = np.array([[scale, 0, (640 - w * scale) / 2], [0, scale, (480 - h * scale) / 2]])
        items.append((f"{name} 640x480", cv2.warpAffine(img, m, (640, 480)), [_warp_box(box, m)]))
    row, boxes, x = [], [], 0
    for name, img in photos.items():  # the three side by side, 400 px high
        scale = 400 / img.shape[0]
        row.append(cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA))
        bx, by, bw, bh = FACES[name]
        boxes.append((int(x + bx * scale), int(by * scale), int(bw * scale), int(bh * scale)))
        x += row[-1].shape[1]
    items.append(("group of three", np.hstack(row), boxes))
    for name in NO_FACE:
        items.append((name, _rgb(getattr(skimage.data, name)()), []))
    return items
