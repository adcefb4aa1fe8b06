"""OpenCV, loaded once with ``dan``'s two settings: every module of ``dan`` imports ``cv2`` from here.

OpenCV reads two environment variables only once, so they are set (unless the environment already sets
them) just before ``cv2`` is first imported, by :func:`configure`: its decode limit
``OPENCV_IO_MAX_IMAGE_PIXELS`` (read when cv2 loads; a second line of defence behind the header check in
:mod:`dan.imaging`) and ``OPENCV_FFMPEG_LOGLEVEL`` (read when the first video opens: FFmpeg quiet, so a
bad video gives ``dan``'s one line, not FFmpeg's raw log lines). Nothing else in ``dan`` touches the
environment on import; ``tests/test_layers.py`` checks that no other module imports ``cv2`` itself.
"""

from __future__ import annotations

import os

__all__ = ["DEFAULT_MAX_PIXELS", "configure", "cv2"]

DEFAULT_MAX_PIXELS = 50_000_000  # about 50 megapixels (8660 x 5773); 150 MB as 8-bit RGB


def configure() -> None:
    """Set OpenCV's decode limit and FFmpeg's log level for cv2, unless the user set them."""
    os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(DEFAULT_MAX_PIXELS))
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET


configure()  # before cv2 loads: it reads the decode limit once, at import

import cv2  # noqa: E402
