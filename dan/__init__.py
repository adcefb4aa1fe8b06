"""dan: DAN (Distract Your Attention) facial expression recognition.

Quick use::

    import dan
    model = dan.load_model("rafdb_epoch21_acc0.897_bacc0.8275.pth", labels="rafdb")
    out = model(images)          # DANOutput(logits, features, heads, attention, va)

The model names are imported on first use, so ``import dan`` (and commands that do not need the
network, such as ``dan synth``) does not pay for importing torch and timm.
"""

from __future__ import annotations

import importlib
from typing import Any

from dan.errors import DanError
from dan.vocab import LABEL_SETS

__version__ = "0.2.0"  # the one version source (pyproject.toml reads it)

__all__ = ["DAN", "LABEL_SETS", "DANOutput", "DanError", "Preprocessing", "__version__", "load_model", "save_model"]

_PACKAGES = (  # subpackages and modules reachable as attributes of ``dan`` (imported on first use)
    "models",
    "data",
    "training",
    "evaluation",
    "runtime",
    "export",
    "inference",
    "demo",
    "serve",
    "imaging",
    "cli",
)
_LAZY = {
    "Preprocessing": "dan.preprocess",
    "DAN": "dan.models",
    "DANOutput": "dan.models",
    "load_model": "dan.models",
    "save_model": "dan.models",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _PACKAGES:
        return importlib.import_module(f"dan.{name}")
    raise AttributeError(f"module 'dan' has no attribute {name!r}")
