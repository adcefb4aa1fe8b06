"""Face detectors on real photographs: faces found, extra boxes, misses and time, Haar against YuNet.

The photographs are the ones that ship with scikit-image and matplotlib: three with a face (the
astronaut, the cameraman, Grace Hopper), nine with none (a cat, coffee, a rocket, coins, ...). From
them the script makes the test set: each face photo as it is, mirrored, turned by +-20 degrees, and
letterboxed into a 640x480 frame; a group picture of all three faces side by side; and the photos
without faces, where every box is an extra one. A detection counts as a face when its centre lies in
a true face box and the true box's centre lies in it. Run::

    python -m scripts.bench.detectors [--repeat 10]
"""

from __future__ import annotations

import argparse
import statistics
import sys

import cv2

from dan.inference.detectors import create_detector
from scripts.common.detector_set import test_set
from scripts.common.measure import machine_header, markdown_table, median_ms


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
