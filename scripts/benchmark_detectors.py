"""Face detectors on real photographs: faces found, extra boxes, misses and time, Haar against YuNet.

The photographs are the ones that ship with scikit-image and matplotlib: three with a face (the
astronaut, the cameraman, Grace Hopper), nine with none (a cat, coffee, a rocket, coins, ...). From
them the script makes the test set: each face photo as it is, mirrored, turned by +-20 degrees, and
letterboxed into a 640x480 frame; a group picture of all three faces side by side; and the photos
without faces, where every box is an extra one. A detection counts as a face when its centre lies in
a true face box and the true box's centre lies in it. Run::

    python -m scripts.benchmark_detectors [--repeat 10]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

import cv2
import matplotlib
import numpy as np
import skimage.data

from dan.inference.detectors import create_detector
from scripts._common import machine_header, markdown_table, median_ms

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


def _inside(point: tuple[float, float], box) -> bool:
    x, y, w, h = box[:4]
    return x <= point[0] <= x + w and y <= point[1] <= y + h


def _match(found, truth) -> tuple[int, int, int]:
    """(faces found, extra boxes, faces missed)."""
    hit, used = 0, set()
    for t in truth:
        tc = (t[0] + t[2] / 2, t[1] + t[3] / 2)
        for i, d in enumerate(found):
            if i not in used and _inside(tc, d) and _inside((d[0] + d[2] / 2, d[1] + d[3] / 2), t):
                hit += 1
                used.add(i)
                break
    return hit, len(found) - len(used), len(truth) - hit


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=10, help="timed runs per picture (median)")
    p.add_argument("--detect-size", type=int, default=640, help="longest side detection runs at")
    args = p.parse_args(argv)
    cv2.setNumThreads(1)
    print(machine_header(threads=1, libraries=("cv2",)))
    items = test_set()
    n_faces = sum(len(t) for _, _, t in items)
    print(f"{len(items)} pictures ({sum(bool(t) for _, _, t in items)} with faces), {n_faces} faces\n")
    rows: list[list[object]] = []
    for name in ("haar", "yunet"):
        det = create_detector(name, detect_size=args.detect_size)
        totals, times, frame_times, notes = [0, 0, 0], [], [], []
        for label, image, truth in items:
            found = det.detect(image)
            hit, extra, missed = _match(found, truth)
            totals = [a + b for a, b in zip(totals, (hit, extra, missed))]
            if extra or missed:
                notes.append(f"{label}: {extra} extra, {missed} missed")
            ms = median_ms(lambda: det.detect(image), args.repeat, warmup=0)  # noqa: B023 (called at once)
            (frame_times if label.endswith("640x480") else times).append(ms)
        median, frame = statistics.median(times), statistics.median(frame_times)
        rows.append([name, f"{totals[0]} of {n_faces}", totals[1], totals[2], f"{median:.1f}", f"{frame:.1f}"])
        rows += [["", note, "", "", "", ""] for note in notes]
    header = ["detector", "faces found", "extra boxes", "missed", "ms per picture (median)", "ms per 640x480 frame"]
    print(markdown_table(header, rows, right=range(1, 6)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
