"""Drawing on frames: face boxes, label and confidence, a small bar per class, frames per second, each
head's attention map under its face, and the valence and arousal of a model that gives them.

Everything draws in place on a BGR uint8 frame with plain OpenCV primitives (a few hundred
microseconds per face): the demo converts each RGB frame to BGR once, for drawing, its video writer and
its window.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dan.inference.attention import attention_overlay
from dan.opencv import cv2

__all__ = ["PALETTE", "color_for", "draw_attention", "annotate_face", "draw_status", "draw_va"]

# BGR colours, one per class index (cycled when there are more classes)
PALETTE = (
    (255, 191, 0),
    (180, 105, 255),
    (0, 128, 0),
    (0, 215, 255),
    (255, 0, 0),
    (0, 0, 255),
    (200, 200, 200),
    (128, 0, 128),
)
FONT = cv2.FONT_HERSHEY_SIMPLEX


def color_for(index: int) -> tuple[int, int, int]:
    """The colour of class ``index``."""
    return PALETTE[index % len(PALETTE)]


def _text(frame: np.ndarray, text: str, org: tuple[int, int], scale: float, color: tuple[int, int, int]) -> None:
    """Text with a dark outline so it reads on any background."""
    cv2.putText(frame, text, org, FONT, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(frame, text, org, FONT, scale, color, 1, cv2.LINE_AA)


def annotate_face(
    frame: np.ndarray,
    box: Sequence[int],
    labels: Sequence[str],
    probs: np.ndarray,
    track_id: int | None = None,
    bars: bool = True,
) -> None:
    """Draw one face: box, ``label confidence`` (and track id), and a bar per class.

    Args:
        frame: BGR uint8 frame (H, W, 3), drawn on in place.
        box: ``(x, y, w, h)`` in pixels.
        labels: Class names.
        probs: Probabilities (C,).
        track_id: Shown as ``#id`` when given.
        bars: Draw the per-class bars beside the box.
    """
    fh, fw = frame.shape[:2]
    x, y, w, h = (int(v) for v in box[:4])
    k = int(np.argmax(probs))
    color = color_for(k)
    thick = max(1, round(min(fw, fh) / 320))
    cv2.rectangle(frame, (x, y), (x + w, y + h), color, thick + 1)
    scale = max(0.4, min(fw, fh) / 900)
    caption = f"{labels[k]} {probs[k]:.0%}" + (f" #{track_id}" if track_id is not None else "")
    (tw, th), base = cv2.getTextSize(caption, FONT, scale, 1)
    ty = y - 6 if y - th - 8 >= 0 else min(fh - 4, y + h + th + 6)
    cv2.rectangle(frame, (x, ty - th - 4), (min(fw - 1, x + tw + 6), ty + base - 1), color, -1)
    cv2.putText(frame, caption, (x + 3, ty - 2), FONT, scale, (0, 0, 0), 1, cv2.LINE_AA)
    if bars:
        _draw_bars(frame, (x, y, w, h), labels, probs, scale)


def _draw_bars(
    frame: np.ndarray, box: tuple[int, int, int, int], labels: Sequence[str], probs: np.ndarray, scale: float
) -> None:
    """One horizontal bar per class, right of the box (left of it, or inside it, when there is no room)."""
    fh, fw = frame.shape[:2]
    x, y, w, h = box
    row = max(10, int(round(22 * scale)))
    bar_w = max(40, int(round(90 * scale)))
    text_w = cv2.getTextSize("happiness", FONT, scale * 0.8, 1)[0][0]
    panel_w = text_w + bar_w + 12
    panel_h = row * len(labels) + 2
    if x + w + 6 + panel_w <= fw:  # right of the box
        px, py = x + w + 6, y
    elif x - panel_w - 6 >= 0:  # left of it
        px, py = x - panel_w - 6, y
    else:  # the box fills the frame (e.g. --detector none): inside its top-right corner, below the status line
        px, py = max(0, min(fw, x + w) - panel_w - 4), max(y + 4, int(36 * scale / 0.6))
    py = max(0, min(py, fh - panel_h))
    roi = frame[py : py + panel_h, px : px + panel_w]
    roi[:] = (roi * 0.45).astype(np.uint8)  # darken the panel so bars read on any background
    for i, (name, p) in enumerate(zip(labels, probs)):
        top = py + i * row + 2
        cv2.putText(frame, name[:10], (px + 3, top + row - 5), FONT, scale * 0.8, (255, 255, 255), 1, cv2.LINE_AA)
        bx = px + text_w + 8
        cv2.rectangle(frame, (bx, top + 2), (bx + int(round(bar_w * float(p))), top + row - 3), color_for(i), -1)


def draw_va(frame: np.ndarray, box: Sequence[int], va: np.ndarray | Sequence[float]) -> None:
    """Write ``V +0.62  A -0.31`` (valence, arousal) inside the bottom of a face's box, outlined.

    Args:
        frame: BGR uint8 frame (H, W, 3), drawn on in place.
        box: ``(x, y, w, h)`` of the face.
        va: Its (valence, arousal), each in [-1, 1].
    """
    fh, fw = frame.shape[:2]
    x, y, w, h = (int(v) for v in box[:4])
    scale = max(0.4, min(fw, fh) / 900)
    text = f"V {float(va[0]):+.2f}  A {float(va[1]):+.2f}"
    (tw, th), base = cv2.getTextSize(text, FONT, scale, 1)
    tx = int(np.clip(x + 3, 0, max(0, fw - tw - 1)))
    ty = int(np.clip(y + h - base - 3, th + 1, fh - base - 1))
    _text(frame, text, (tx, ty), scale, (255, 255, 255))


def draw_status(frame: np.ndarray, fps: float | None, faces: int, extra: str = "") -> None:
    """Top-left status line: frames per second, number of faces, and ``extra``."""
    fh, fw = frame.shape[:2]
    scale = max(0.45, min(fw, fh) / 800)
    parts = [f"{fps:.1f} fps" if fps else "", f"{faces} face{'s' if faces != 1 else ''}", extra]
    _text(frame, "  ".join(p for p in parts if p), (8, int(24 * scale / 0.6)), scale, (255, 255, 255))


def draw_attention(frame: np.ndarray, box: Sequence[int], maps: np.ndarray, thumb: int | None = None) -> None:
    """Draw each head's map over the face as a row of thumbnails under the box (above it at the bottom).

    Args:
        frame: BGR uint8 frame (H, W, 3), drawn on in place.
        box: ``(x, y, w, h)`` of the face.
        maps: The face's attention maps (K, h, w).
        thumb: Thumbnail side in pixels (default: the box width / K, 32..96).
    """
    fh, fw = frame.shape[:2]
    x, y, w, h = (int(v) for v in box[:4])
    x0, y0, x1, y1 = max(0, x), max(0, y), min(fw, x + w), min(fh, y + h)
    if x1 - x0 < 2 or y1 - y0 < 2 or len(maps) == 0:
        return
    k = len(maps)
    side = thumb or int(np.clip(w // k, 32, 96))
    face = cv2.resize(frame[y0:y1, x0:x1], (side, side), interpolation=cv2.INTER_AREA)
    ty = y1 + 2 if y1 + 2 + side <= fh else max(0, y0 - side - 2)
    for i, amap in enumerate(maps):
        tx = x0 + i * (side + 2)
        if tx + side > fw or ty + side > fh:
            break
        frame[ty : ty + side, tx : tx + side] = attention_overlay(face, amap)
