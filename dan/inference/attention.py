"""The heads' spatial attention maps: heat-map overlays and DAN's figure of a face beside its K maps.

Each head k of the multi-head cross attention network computes a spatial map a_k (h x w, 7 x 7 at
224 px) that weights the backbone's feature map; different heads learn to look at different facial
regions (the paper's Figure 1). With ``head="mha"`` (:mod:`dan.models.mha`) a map is the head's
attention weights over the feature tokens. Maps are normalised per head to [0, 1] for display.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import cv2
import numpy as np
import torch

from dan.common import DanError
from dan.inference.backends import AttentionBackend, Backend, TorchBackend, has_attention
from dan.inference.outputs import atomic_path
from dan.inference.predictor import Predictor, softmax
from dan.models.dan import DAN
from dan.preprocess import prepare_face

__all__ = ["attention_overlay", "draw_attention", "face_attention", "normalize_map", "save_attention_figure"]


def normalize_map(amap: np.ndarray) -> np.ndarray:
    """Scale one map (h, w) to [0, 1] (a constant map becomes zeros)."""
    amap = np.asarray(amap, np.float32)
    lo, hi = float(amap.min()), float(amap.max())
    return (amap - lo) / (hi - lo) if hi > lo else np.zeros_like(amap)


def attention_overlay(face_bgr: np.ndarray, amap: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend a heat map of ``amap`` (h, w) over ``face_bgr`` (H, W, 3); returns a new BGR image."""
    h, w = face_bgr.shape[:2]
    heat = cv2.resize(normalize_map(amap), (w, h), interpolation=cv2.INTER_CUBIC)
    heat = cv2.applyColorMap(np.clip(heat * 255, 0, 255).astype(np.uint8), cv2.COLORMAP_JET)
    return cv2.addWeighted(face_bgr, 1 - alpha, heat, alpha, 0)


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


def _as_backend(backend_or_model: DAN | str | os.PathLike | Backend) -> Backend:
    if isinstance(backend_or_model, torch.nn.Module):
        labels = getattr(backend_or_model, "labels", None)
        if labels is None:
            labels = [f"class {i}" for i in range(backend_or_model.num_classes)]
        return TorchBackend(backend_or_model, labels=labels)
    if isinstance(backend_or_model, (str, os.PathLike)):
        return TorchBackend(backend_or_model)
    return backend_or_model


def face_attention(
    backend_or_model: DAN | str | os.PathLike | Backend, image: str | os.PathLike | np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Class probabilities and the heads' attention maps of one face image.

    Args:
        backend_or_model: A DAN model, a checkpoint path, or a backend with ``attention``.
        image: The face: an aligned face image path, or a BGR uint8 array (H, W, 3); the image (its
            central square, as ``--detector none`` takes it) is the face, prepared by
            :func:`dan.preprocess.prepare_face` like every other path.

    Returns:
        ``(face, probabilities, maps)``: the BGR face square, float32 (C,) and float32 (K, h, w).

    Raises:
        DanError: The backend gives no attention maps.
    """
    backend = _as_backend(backend_or_model)
    if not has_attention(backend):
        raise DanError("this model file gives no attention maps (exported without them): use the checkpoint")
    face = Predictor.load_bgr(image)
    h, w = face.shape[:2]
    side = min(h, w)  # the central square, as --detector none takes it
    face = face[(h - side) // 2 : (h - side) // 2 + side, (w - side) // 2 : (w - side) // 2 + side]
    batch = prepare_face(np.ascontiguousarray(face[..., ::-1]), backend.preprocessing)[None]  # (1, 3, S, S)
    if hasattr(backend, "predict_with_attention"):
        logits, maps = backend.predict_with_attention(batch)
    else:
        logits, maps = backend(batch), cast(AttentionBackend, backend).attention(batch)  # has_attention: it has one
    return face, softmax(np.asarray(logits))[0], np.asarray(maps)[0]


def save_attention_figure(
    backend_or_model: DAN | str | os.PathLike | Backend,
    image: str | os.PathLike | np.ndarray,
    path: str | os.PathLike,
    tile: int = 224,
) -> Path:
    """Save a picture of a face and its K heads' attention maps side by side.

    Args:
        backend_or_model: A DAN model, a checkpoint path, or a backend with ``attention``.
        image: The face (see :func:`face_attention`).
        path: Output image file (``.png`` or ``.jpg``).
        tile: Side of each panel in pixels.

    Returns:
        The written path.

    Raises:
        DanError: The backend has no attention maps, or the file cannot be written.
    """
    backend = _as_backend(backend_or_model)
    face, probs, maps = face_attention(backend, image)
    big = cv2.resize(face, (tile, tile), interpolation=cv2.INTER_AREA)
    k = int(np.argmax(probs))
    panels = [_caption(big.copy(), f"{backend.labels[k]} {probs[k]:.0%}")]
    panels += [_caption(attention_overlay(big, m), f"head {i + 1}") for i, m in enumerate(maps)]
    gap = np.full((tile, 4, 3), 255, np.uint8)
    figure = np.hstack([p for panel in panels for p in (panel, gap)][:-1])  # (tile, (K+1)*tile + gaps, 3)
    path = Path(path)
    ok, data = cv2.imencode(path.suffix or ".png", figure)
    if not ok:
        raise DanError(f"{path}: cannot encode an image of this type (use .png or .jpg)")
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.tobytes())
    return path


def _caption(panel: np.ndarray, text: str) -> np.ndarray:
    scale = panel.shape[0] / 400
    cv2.putText(panel, text, (6, panel.shape[0] - 8), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(panel, text, (6, panel.shape[0] - 8), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return panel
