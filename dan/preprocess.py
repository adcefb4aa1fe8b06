"""The one preprocessing contract: a face image (uint8 RGB, any size) -> the model's input.

Every path that feeds a model goes through :func:`prepare_face` / :func:`prepare_faces`: the data
pipeline's evaluation transform (and the resize of the training pipelines), ``dan evaluate``,
``dan predict``, ``dan demo``, ``dan serve``, the attention figure, ``dan info`` and export
verification. So one face gets the same input, and the same probabilities, everywhere.

The steps are those the reference implementation trained its released models with: the face image
is resized to ``input_size`` x ``input_size`` the way torchvision's ``Resize`` does on a PIL image
(PIL's bilinear filter, which antialiases when shrinking), then scaled to [0, 1] and normalised with
the record's mean and std (``ToTensor`` + ``Normalize``). How the face image is cut out of a photo
(aligned by landmarks, or a box crop with a margin) is the record's ``crop`` setting, applied by the
inference layer before this.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from dan.common import Preprocessing

__all__ = ["RESIZE_METHODS", "normalize", "prepare_face", "prepare_faces", "resize_face"]

# name -> PIL filter. "bilinear": torchvision Resize(interpolation=BILINEAR) on PIL images (antialiased).
RESIZE_METHODS: dict[str, int] = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}


def resize_face(rgb: np.ndarray, size: int, method: str = "bilinear") -> np.ndarray:
    """Resize a uint8 face image to ``size`` x ``size`` as torchvision's ``Resize`` does on PIL images.

    Args:
        rgb: uint8 array (H, W, 3) (any channel order: channels are resized independently).
        size: Output side in pixels.
        method: A key of :data:`RESIZE_METHODS`.

    Returns:
        uint8 array (size, size, 3); ``rgb`` itself when it already has that size.
    """
    if rgb.shape[0] == size and rgb.shape[1] == size:
        return rgb
    resample = RESIZE_METHODS[method]
    return np.asarray(Image.fromarray(np.ascontiguousarray(rgb)).resize((size, size), resample))


def normalize(faces: np.ndarray, pre: Preprocessing) -> np.ndarray:
    """uint8 RGB faces already at the input size -> the normalised float32 model input.

    Args:
        faces: uint8 array (S, S, 3) or (N, S, S, 3), RGB.
        pre: The record's mean and std (of RGB values in [0, 1]).

    Returns:
        float32 array (3, S, S) or (N, 3, S, S): ``(rgb / 255 - mean) / std``.
    """
    mean = np.asarray(pre.mean, np.float32)[:, None, None]  # (3, 1, 1)
    std = np.asarray(pre.std, np.float32)[:, None, None]
    # channels first while still uint8, then the float32 arithmetic of ToTensor + Normalize in place
    # (the same operations in the same order, so the same bits; 3x faster than in (S, S, 3) layout)
    x = np.ascontiguousarray(np.moveaxis(faces, -1, -3)).astype(np.float32)  # (..., S, S, 3) -> (..., 3, S, S)
    x /= np.float32(255.0)
    x -= mean
    x /= std
    return x


def prepare_face(rgb: np.ndarray, pre: Preprocessing) -> np.ndarray:
    """One face image (uint8 RGB, any size) -> the model's input, float32 (3, S, S).

    Args:
        rgb: uint8 array (H, W, 3), RGB: the face as cut out of the photo (aligned or cropped).
        pre: The model's preprocessing record.
    """
    return normalize(resize_face(rgb, pre.input_size, pre.resize), pre)


def prepare_faces(faces: Sequence[np.ndarray], pre: Preprocessing) -> np.ndarray:
    """Several face images -> one float32 batch (N, 3, S, S) (see :func:`prepare_face`)."""
    size = pre.input_size
    if not len(faces):
        return np.zeros((0, 3, size, size), np.float32)
    resized = np.stack([resize_face(f, size, pre.resize) for f in faces])  # (N, S, S, 3)
    return normalize(resized, pre)
