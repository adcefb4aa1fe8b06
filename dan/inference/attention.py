"""The heads' spatial attention maps: heat-map overlays and DAN's figure of a face beside its K maps.

Each head k of the multi-head cross attention network computes a spatial map a_k (h x w, 7 x 7 at
224 px) that weights the backbone's feature map; different heads learn to look at different facial
regions (the paper's Figure 1). With ``head="mha"`` (:mod:`dan.models.mha`) a map is the head's
attention weights over the feature tokens. Maps are normalised per head to [0, 1] for display.

Faces come in RGB, as everywhere inside ``dan``; the drawing (:func:`attention_overlay`, the figure)
is in BGR, the order OpenCV encodes and shows: the figure converts its face once, at that edge.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from dan.errors import DanError
from dan.fileio import atomic_path, check_writable
from dan.inference.predictor import Predictor
from dan.models.dan import DAN
from dan.opencv import cv2
from dan.runtime.backend import Backend
from dan.runtime.loader import load_backend
from dan.runtime.torch import TorchBackend

__all__ = ["attention_overlay", "face_attention", "normalize_map", "save_attention_figure"]


def normalize_map(amap: np.ndarray) -> np.ndarray:
    """Scale one map (h, w) to [0, 1] (a constant map becomes zeros)."""
    amap = np.asarray(amap, np.float32)
    lo, hi = float(amap.min()), float(amap.max())
    return (amap - lo) / (hi - lo) if hi > lo else np.zeros_like(amap)


def attention_overlay(face_bgr: np.ndarray, amap: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend a heat map (OpenCV's JET colours) of ``amap`` (h, w) over ``face_bgr`` (H, W, 3); a new BGR image."""
    h, w = face_bgr.shape[:2]
    heat = cv2.resize(normalize_map(amap), (w, h), interpolation=cv2.INTER_CUBIC)
    heat = cv2.applyColorMap(np.clip(heat * 255, 0, 255).astype(np.uint8), cv2.COLORMAP_JET)
    return cv2.addWeighted(face_bgr, 1 - alpha, heat, alpha, 0)


def _as_backend(backend_or_model: DAN | str | os.PathLike | Backend) -> Backend:
    if isinstance(backend_or_model, torch.nn.Module):
        labels = getattr(backend_or_model, "labels", None)
        if labels is None:
            labels = [f"class {i}" for i in range(backend_or_model.num_classes)]
        return TorchBackend(backend_or_model, labels=labels)
    if isinstance(backend_or_model, (str, os.PathLike)):
        return load_backend(backend_or_model)  # the file's own runtime: the attention figure needs no race
    return backend_or_model


def face_attention(
    backend_or_model: DAN | str | os.PathLike | Backend, image: str | os.PathLike | np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Class probabilities and the heads' attention maps of one face image.

    The image is the face, as ``--detector none`` takes it: a :class:`Predictor` with that detector
    cuts out its central square and prepares it, as every other path does.

    Args:
        backend_or_model: A DAN model, a model file, or a backend whose ``has_attention``.
        image: The face: an aligned face image path, or an RGB uint8 array (H, W, 3).

    Returns:
        ``(face, probabilities, maps)``: the RGB face square as cut out, float32 (C,) and float32 (K, h, w).

    Raises:
        DanError: The backend gives no attention maps.
    """
    predictor = Predictor(_as_backend(backend_or_model), detector="none")
    if not predictor.has_attention:
        raise DanError("this model file gives no attention maps (exported without them): use the checkpoint")
    frame = predictor.load_image(image)
    batch, faces = predictor.faces(frame, predictor.detect(frame))  # one face: the central square
    probs, maps = predictor.run_batch(batch, attention=True)
    assert maps is not None  # has_attention
    return faces[0], probs[0], np.asarray(maps)[0]


def save_attention_figure(
    backend_or_model: DAN | str | os.PathLike | Backend,
    image: str | os.PathLike | np.ndarray,
    path: str | os.PathLike,
    tile: int = 224,
) -> Path:
    """Save a picture of a face and its K heads' attention maps side by side.

    Args:
        backend_or_model: A DAN model, a model file, or a backend whose ``has_attention``.
        image: The face (see :func:`face_attention`).
        path: Output image file (``.png`` or ``.jpg``).
        tile: Side of each panel in pixels.

    Returns:
        The written path.

    Raises:
        DanError: The backend has no attention maps, or the file cannot be written.
    """
    check_writable(path, "figure")  # before the model is loaded
    backend = _as_backend(backend_or_model)
    face, probs, maps = face_attention(backend, image)
    big = cv2.resize(face, (tile, tile), interpolation=cv2.INTER_AREA)
    big = cv2.cvtColor(big, cv2.COLOR_RGB2BGR)  # the figure is drawn and encoded by OpenCV: BGR from here on
    k = int(np.argmax(probs))
    panels = [_caption(big.copy(), f"{backend.labels[k]} {probs[k]:.0%}")]
    panels += [_caption(attention_overlay(big, m), f"head {i + 1}") for i, m in enumerate(maps)]
    gap = np.full((tile, 4, 3), 255, np.uint8)
    figure = np.hstack([p for panel in panels for p in (panel, gap)][:-1])  # (tile, (K+1)*tile + gaps, 3)
    path = Path(path)
    ok, data = cv2.imencode(path.suffix or ".png", figure)
    if not ok:
        raise DanError(f"{path}: cannot encode an image of this type (use .png or .jpg)")
    with atomic_path(path, "figure") as tmp:
        tmp.write_bytes(data.tobytes())
    return path


def _caption(panel: np.ndarray, text: str) -> np.ndarray:
    scale = panel.shape[0] / 400
    cv2.putText(panel, text, (6, panel.shape[0] - 8), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(panel, text, (6, panel.shape[0] - 8), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return panel
