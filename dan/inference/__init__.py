"""Inference: run a trained DAN on photos, videos and a webcam (every face, in real time).

Modules (imported lazily, so ``import dan.inference`` costs nothing):

- :mod:`dan.inference.backends`: the model runner interface (``TorchBackend``, ``load_backend``).
- :mod:`dan.inference.detectors`: face detectors (Haar, YuNet, none) behind one ``detect`` call.
- :mod:`dan.inference.crops`: face crops with a margin and the model's input batch.
- :mod:`dan.inference.predictor`: ``Predictor``: image in, one labelled result per face out.
- :mod:`dan.inference.tracking`: IoU tracker with per-track smoothing of probabilities.
- :mod:`dan.inference.video`: frame sources (camera, video, image, folder), read ahead in a thread.
- :mod:`dan.inference.writer`: the annotated-video writer (mp4v / MJPG, atomic, read back).
- :mod:`dan.inference.overlay`: drawing boxes, labels, bars, fps and attention maps.
- :mod:`dan.inference.window`: whether OpenCV can show a window here.
- :mod:`dan.inference.outputs`: atomic CSV / JSON writers.
- :mod:`dan.inference.attention`: attention maps and ``save_attention_figure``.
- :mod:`dan.inference.demo`: the demo loop (``run_demo``).

The export engineer's modules live here too: :mod:`dan.inference.export` (ONNX export) and
:mod:`dan.inference.onnx_backend` (``OnnxBackend``, the same interface as ``TorchBackend``).

This package never imports training, data, Lightning or albumentations: a deployed model needs none.

Example::

    from dan.inference import Predictor
    faces = Predictor("model.pt").predict("photo.jpg")
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "FaceResult",
    "Predictor",
    "TorchBackend",
    "create_detector",
    "load_backend",
    "run_demo",
    "save_attention_figure",
]

_LAZY = {
    "FaceResult": "dan.inference.predictor",
    "Predictor": "dan.inference.predictor",
    "TorchBackend": "dan.inference.backends",
    "load_backend": "dan.inference.backends",
    "create_detector": "dan.inference.detectors",
    "run_demo": "dan.inference.demo",
    "save_attention_figure": "dan.inference.attention",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'dan.inference' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_LAZY))
