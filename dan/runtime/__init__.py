"""Model runtimes: one interface (:mod:`dan.runtime.backend`) over every way to run a DAN model file.

- :mod:`dan.runtime.backend`: the ``Backend`` base class (one method to implement, ``outputs``, giving an
  ``Outputs`` record; metadata, labels, preprocessing, device and probabilities with the file's
  calibrated temperature are the base class's), ``softmax``;
- :mod:`dan.runtime.loader`: ``load_backend``, which resolves the device once and opens a file with the
  right runtime;
- :mod:`dan.runtime.torch`: ``TorchBackend`` (a checkpoint, re-parameterised);
- :mod:`dan.runtime.onnx`: ``OnnxBackend`` (ONNX Runtime, float32 or int8; the file's weights checksum);
- :mod:`dan.runtime.openvino`: ``OpenVinoBackend`` (an ONNX file run by OpenVINO);
- :mod:`dan.runtime.pt2`: ``Pt2Backend`` (a ``torch.export`` program, checked for pickles first);

``--backend auto`` (the race among runtimes that agree with PyTorch) is :mod:`dan.auto`'s, above this.

This package imports :mod:`dan.models` and the shared small modules only (never export, inference or
training): what it reads it checks itself. Names are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["Backend", "Outputs", "TorchBackend", "load_backend", "softmax"]

_LAZY = {
    "Backend": "dan.runtime.backend",
    "Outputs": "dan.runtime.backend",
    "softmax": "dan.runtime.backend",
    "load_backend": "dan.runtime.loader",
    "TorchBackend": "dan.runtime.torch",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'dan.runtime' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_LAZY))
