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
from dataclasses import asdict, dataclass, field, fields

import numpy as np
from PIL import Image

from dan.errors import DanError
from dan.vocab import FACE_CROPS, RESIZE_NAMES

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "RESIZE_METHODS",
    "Preprocessing",
    "normalize",
    "prepare_face",
    "prepare_faces",
    "resize_face",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _number(d: dict, key: str, kind: type, lo: float, hi: float, where: str):
    value = d[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and value != int(value)):
        raise DanError(f"{where}preprocessing.{key}={value!r}: expected {'an integer' if kind is int else 'a number'}")
    if not lo <= value <= hi:
        raise DanError(f"{where}preprocessing.{key}={value!r}: must be between {lo} and {hi}")
    return kind(value)


@dataclass(frozen=True)
class Preprocessing:
    """How a face becomes the model's input: cut out of the photo, resized, normalised.

    The defaults are the reference implementation's for its RAF-DB model: faces aligned by five
    landmarks like RAF-DB's 100 x 100 aligned images, resized to 224 x 224 as torchvision's
    ``Resize`` does on PIL images (antialiased bilinear), ImageNet mean and std.

    Attributes:
        input_size: Square side in pixels of the model input.
        mean: Per-channel mean of RGB values in [0, 1].
        std: Per-channel standard deviation of RGB values in [0, 1].
        resize: Resize filter, as PIL applies it (``bilinear``: torchvision ``Resize`` on PIL images).
        crop: How a face is cut out of a photo: ``align`` (similarity transform of the five landmarks
            onto the aligned-face template, as RAF-DB's aligned images were made; detectors without
            landmarks fall back to ``box``) or ``box`` (the detector's box, squared, plus ``margin``).
        face_size: Side of the aligned face image (``align``) before it is resized to ``input_size``.
        margin: Fraction of the box side added on each side (``box``).
    """

    input_size: int = 224
    mean: tuple[float, float, float] = field(default=IMAGENET_MEAN)
    std: tuple[float, float, float] = field(default=IMAGENET_STD)
    resize: str = "bilinear"
    crop: str = "align"
    face_size: int = 100
    margin: float = 0.0

    def to_dict(self) -> dict:
        """Plain-type dict, safe to store in a weights-only checkpoint."""
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict | None, where: str = "") -> Preprocessing:
        """Inverse of :meth:`to_dict`, checking every value; missing keys take the defaults.

        Args:
            d: The stored record (None for all defaults).
            where: Prefix for error messages, e.g. ``"model.pt: "``.

        Raises:
            DanError: A value of the wrong type or out of range (named by its key).
        """
        if d is None:
            return cls()
        if not isinstance(d, dict):
            raise DanError(f"{where}preprocessing: expected a mapping, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        d = {k: v for k, v in d.items() if k in known}
        for key in ("mean", "std"):
            if key in d:
                v = d[key]
                if not isinstance(v, (list, tuple)) or len(v) != 3:
                    raise DanError(f"{where}preprocessing.{key}={v!r}: expected three numbers (R, G, B)")
                d[key] = tuple(_number({key: x}, key, float, 0.0 if key == "mean" else 1e-6, 1e6, where) for x in v)
        if "input_size" in d:
            d["input_size"] = _number(d, "input_size", int, 8, 4096, where)
        if "face_size" in d:
            d["face_size"] = _number(d, "face_size", int, 8, 4096, where)
        if "margin" in d:
            d["margin"] = _number(d, "margin", float, 0.0, 2.0, where)
        for key, allowed in (("resize", RESIZE_NAMES), ("crop", FACE_CROPS)):
            if key in d and d[key] not in allowed:
                raise DanError(f"{where}preprocessing.{key}={d[key]!r}: choose one of {', '.join(allowed)}")
        return cls(**d)


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
