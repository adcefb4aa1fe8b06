"""Faces tracked across frames by box overlap, with per-track smoothing of the class probabilities.

Each detected box is matched to the existing track it overlaps most (IoU, greedy, best pairs
first); a box that matches none starts a new track with the next id; a track unmatched for more than
``max_misses`` frames ends. A track's probabilities are an exponential moving average of the model's
per-frame probabilities, so labels do not flicker from frame to frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

import numpy as np

from dan.inference.detectors import BoxLike, Detection

__all__ = ["IoUTracker", "Track", "iou", "iou_matrix"]


def iou(a: BoxLike, b: BoxLike) -> float:
    """Intersection over union of two ``(x, y, w, h, ...)`` boxes."""
    return float(iou_matrix([a], [b])[0, 0])


def iou_matrix(a: Sequence[BoxLike], b: Sequence[BoxLike]) -> np.ndarray:
    """Pairwise IoU of boxes ``(x, y, w, h, ...)``: float array of shape (len(a), len(b))."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    A = np.asarray([box[:4] for box in a], np.float64)  # (M, 4)
    B = np.asarray([box[:4] for box in b], np.float64)  # (N, 4)
    ax1, ay1 = A[:, 0] + A[:, 2], A[:, 1] + A[:, 3]
    bx1, by1 = B[:, 0] + B[:, 2], B[:, 1] + B[:, 3]
    iw = np.clip(np.minimum(ax1[:, None], bx1[None]) - np.maximum(A[:, None, 0], B[None, :, 0]), 0, None)  # (M, N)
    ih = np.clip(np.minimum(ay1[:, None], by1[None]) - np.maximum(A[:, None, 1], B[None, :, 1]), 0, None)  # (M, N)
    inter = iw * ih
    union = (A[:, 2] * A[:, 3])[:, None] + (B[:, 2] * B[:, 3])[None] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)


@dataclass
class Track:
    """One face followed over time.

    Attributes:
        id: Stable track number (0, 1, 2, ... in order of appearance).
        box: Latest box ``(x, y, w, h)``.
        score: Latest detector score.
        probs: Smoothed class probabilities (C,), or None before the first classification.
        hits: Frames the track was detected in.
        misses: Consecutive frames it was not detected.
        attention: Latest attention maps (K, h, w) of the face, when asked for.
        landmarks: Latest five landmarks (5, 2) of the face (detectors that give them), else None.
        va: Smoothed (valence, arousal) (2,) of a model with that output, else None.
    """

    id: int
    box: tuple[int, int, int, int]
    score: float = 1.0
    probs: np.ndarray | None = None
    hits: int = 1
    misses: int = 0
    attention: np.ndarray | None = None
    landmarks: np.ndarray | None = field(default=None, repr=False)
    va: np.ndarray | None = None

    @property
    def detection(self) -> Detection:
        """The face as a detection (its latest box, score and landmarks), what the crops take."""
        return Detection(*self.box, self.score, self.landmarks)


class IoUTracker:
    """Greedy IoU tracker with exponential smoothing of probabilities.

    Args:
        iou_threshold: Minimum overlap for a box to continue a track.
        max_misses: Frames a track survives without a matching box.
        smoothing: Weight of the past in the moving average, in [0, 1): 0 = no smoothing; 0.6 means
            each frame contributes 40 %.
    """

    def __init__(self, iou_threshold: float = 0.3, max_misses: int = 10, smoothing: float = 0.6) -> None:
        if not 0.0 <= smoothing < 1.0:
            raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
        self.iou_threshold = iou_threshold
        self.max_misses = max_misses
        self.smoothing = smoothing
        self.tracks: list[Track] = []
        self._next_id = 0

    def reset(self) -> None:
        """Forget every track (a new, unrelated image or video)."""
        self.tracks = []
        self._next_id = 0

    def update(self, boxes: Sequence[BoxLike]) -> list[Track]:
        """Match this frame's boxes to tracks.

        Args:
            boxes: Detected boxes ``(x, y, w, h[, score[, landmarks]])``.

        Returns:
            The track of each box, in the order of ``boxes``.
        """
        overlap = iou_matrix([t.box for t in self.tracks], boxes)  # (T, N)
        assigned: list[Track | None] = [None] * len(boxes)
        used: set[int] = set()
        if overlap.size:
            order = np.dstack(np.unravel_index(np.argsort(-overlap, axis=None), overlap.shape))[0]  # (T*N, 2)
            for ti, bi in order:
                if overlap[ti, bi] < self.iou_threshold:
                    break
                if ti in used or assigned[bi] is not None:
                    continue
                used.add(int(ti))
                assigned[bi] = self.tracks[ti]
        for ti, missed in enumerate(self.tracks):
            if ti not in used:
                missed.misses += 1
        for bi, box in enumerate(boxes):
            score = float(box[4]) if len(box) > 4 else 1.0
            marks = cast("np.ndarray | None", box[5]) if len(box) > 5 else None  # a Detection's landmarks
            x, y, w, h = (int(v) for v in box[:4])
            track = assigned[bi]
            if track is None:
                track = Track(id=self._next_id, box=(x, y, w, h), score=score, landmarks=marks)
                self._next_id += 1
                self.tracks.append(track)
                assigned[bi] = track
            else:
                track.box, track.score, track.landmarks = (x, y, w, h), score, marks
                track.hits += 1
                track.misses = 0
        self.tracks = [t for t in self.tracks if t.misses <= self.max_misses]
        return [t for t in assigned if t is not None]

    def visible(self, hold: int = 0) -> list[Track]:
        """Tracks missed in at most ``hold`` latest updates, by id.

        With ``hold`` > 0 a face the detector missed once or twice keeps its last box instead of
        blinking out; it is also what to draw on frames where detection is skipped.
        """
        return sorted((t for t in self.tracks if t.misses <= hold), key=lambda t: t.id)

    def smooth(self, tracks: Sequence[Track], probs: np.ndarray) -> np.ndarray:
        """Fold this frame's probabilities (N, C) into each track's moving average.

        Returns:
            The smoothed probabilities, float32 (N, C), also stored on the tracks.
        """
        out = np.empty_like(probs, dtype=np.float32)
        for i, (track, p) in enumerate(zip(tracks, probs)):
            if track.probs is None or self.smoothing == 0:
                track.probs = np.asarray(p, np.float32).copy()
            else:
                track.probs = self.smoothing * track.probs + (1 - self.smoothing) * np.asarray(p, np.float32)
            out[i] = track.probs
        return out

    def smooth_va(self, tracks: Sequence[Track], va: np.ndarray) -> None:
        """Fold this frame's (valence, arousal) (N, 2) into each track's moving average (as :meth:`smooth`)."""
        for track, v in zip(tracks, va):
            v = np.asarray(v, np.float32)
            if track.va is None or self.smoothing == 0:
                track.va = v.copy()
            else:
                track.va = self.smoothing * track.va + (1 - self.smoothing) * v
