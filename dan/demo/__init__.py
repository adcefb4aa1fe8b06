"""``dan demo``: a webcam, a video, a photo or a folder of photos, every face labelled, drawn and saved.

Built on :mod:`dan.inference` (its live step finds, tracks, labels and smooths the faces of a frame):

- :mod:`dan.demo.loop`: the demo loop (``run_demo``): read, step, draw, write, show;
- :mod:`dan.demo.sources`: frame sources (camera, video, image, folder), read ahead in a thread;
- :mod:`dan.demo.overlay`: drawing boxes, labels, bars, fps and attention maps;
- :mod:`dan.demo.writer`: the annotated-video writer (mp4v / MJPG, atomic, read back);
- :mod:`dan.demo.window`: whether OpenCV can show a window here;
- :mod:`dan.demo.outputs`: the per-frame CSV, streamed and published atomically.

Never imports training, Lightning or albumentations. Names are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["run_demo"]

_LAZY = {"run_demo": "dan.demo.loop"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'dan.demo' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_LAZY))
