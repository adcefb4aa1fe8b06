"""The one image decode path for training, evaluation, prediction and the demo.

Every image the project reads goes through :func:`read_image` (files) or :func:`decode_image`
(bytes): OpenCV decodes it, applies the EXIF orientation, turns grey, RGBA and 16-bit images into
8-bit RGB, and a truncated JPEG or PNG is an error instead of a grey-filled picture (OpenCV only
warns about those).
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from dan.common import DanError

__all__ = ["IMAGE_SUFFIXES", "ImageReadError", "decode_image", "is_truncated", "read_image"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


class ImageReadError(DanError):
    """An image file that is missing, truncated or not an image; the message names the file."""


def is_truncated(data: bytes) -> bool:
    """True when JPEG or PNG bytes end before the format's end marker."""
    if data[:3] == b"\xff\xd8\xff":  # JPEG: must end with EOI (FFD9), trailing padding allowed
        return not data.rstrip(b"\x00\r\n ").endswith(b"\xff\xd9")
    if data[:8] == b"\x89PNG\r\n\x1a\n":  # PNG: must contain the IEND chunk near the end
        return b"IEND" not in data[-64:]
    return False


def decode_image(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode encoded image bytes to an RGB uint8 array.

    Args:
        data: The encoded file content.
        name: What to call the image in errors (usually its path).

    Returns:
        Array of shape (H, W, 3), dtype uint8, RGB, EXIF orientation applied.

    Raises:
        ImageReadError: Empty, truncated or undecodable data.
    """
    if not data:
        raise ImageReadError(f"{name}: empty file")
    if is_truncated(data):
        raise ImageReadError(f"{name}: truncated image (the file ends before the image data does)")
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)  # 8-bit BGR, EXIF applied
    if bgr is None or bgr.size == 0:
        raise ImageReadError(f"{name}: not a decodable image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as RGB uint8 (see :func:`decode_image`).

    Raises:
        ImageReadError: Missing, unreadable, truncated or undecodable file; the message names it.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ImageReadError(f"{path}: cannot read: {err.strerror or err}") from None
    return decode_image(data, str(path))
