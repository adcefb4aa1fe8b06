"""Inference: an image in, its faces out, labelled (a photo, or the frames of a live stream).

Modules (imported lazily, so ``import dan.inference`` costs nothing):

- :mod:`dan.inference.detectors`: face detectors (Haar, YuNet, none) behind one ``detect`` call.
- :mod:`dan.inference.align`: five-landmark face alignment.
- :mod:`dan.inference.crops`: face crops as the preprocessing record says, and the model's input batch.
- :mod:`dan.inference.predictor`: ``Predictor``: image in, one labelled result per face out.
- :mod:`dan.inference.tracking`: IoU tracker with per-track smoothing of probabilities.
- :mod:`dan.inference.attention`: attention maps and ``save_attention_figure``.

The demo (frame sources, drawing, video writer, window: :mod:`dan.demo`) and the server
(:mod:`dan.serve`) are built on this package.

Model files are opened by :mod:`dan.runtime` (``load_backend``, ``TorchBackend``, ``OnnxBackend``...).

This package imports :mod:`dan.runtime`, :mod:`dan.models` and the shared small modules; never training,
data, export, Lightning or albumentations: a deployed model needs none.

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
    "create_detector",
    "save_attention_figure",
]

_LAZY = {
    "FaceResult": "dan.inference.predictor",
    "Predictor": "dan.inference.predictor",
    "create_detector": "dan.inference.detectors",
    "save_attention_figure": "dan.inference.attention",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'dan.inference' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_LAZY))
