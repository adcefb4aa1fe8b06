"""Small shared things every layer may import: label sets, preprocessing settings, the error type.

Label orders follow each data set's own index order (docs/design.md, label orders), so index ``i`` of a
label set is the integer label ``i`` of that data set (RAF-DB's 1-based file labels shifted by one).

Importing this module (``import dan`` does, before any other part of ``dan``) also sets two OpenCV
settings, unless the environment already sets them, because OpenCV reads them only once: its own
decode limit ``OPENCV_IO_MAX_IMAGE_PIXELS`` (read when cv2 loads; a second line of defence behind the
header check in :mod:`dan.imaging`) and ``OPENCV_FFMPEG_LOGLEVEL`` (read when the first video opens:
FFmpeg quiet, so a bad video gives ``dan``'s one line, not FFmpeg's raw log lines).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields

__all__ = [
    "BACKENDS",
    "DEFAULT_MAX_PIXELS",
    "DETECTORS",
    "DEVICES",
    "EXPORT_FORMATS",
    "FACE_CROPS",
    "FORMAT_NAMES",
    "HEADS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "LABEL_SETS",
    "RAFDB_IMAGES",
    "RESIZE_NAMES",
    "SPLIT_ROLES",
    "TRANSFORMS",
    "DanError",
    "MissingLabelsError",
    "Preprocessing",
    "one_line",
    "parse_device",
    "parse_labels",
    "resolve_labels",
]

DEFAULT_MAX_PIXELS = 50_000_000  # about 50 megapixels (8660 x 5773); 150 MB as 8-bit RGB


def _opencv_defaults() -> None:
    """Set OpenCV's decode limit and FFmpeg's log level before cv2 loads, unless the user set them."""
    os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(DEFAULT_MAX_PIXELS))
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET


_opencv_defaults()

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_AFFECTNET8 = ("neutral", "happiness", "sadness", "surprise", "fear", "disgust", "anger", "contempt")
_CKPLUS = ("neutral", "anger", "contempt", "disgust", "fear", "happiness", "sadness", "surprise")

LABEL_SETS: dict[str, tuple[str, ...]] = {
    "rafdb": ("surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral"),
    "affectnet8": _AFFECTNET8,
    "affectnet7": _AFFECTNET8[:7],
    "fer2013": ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral"),
    # SFEW 2.0's class folders in alphabetical order (Angry, Disgust, Fear, Happy, Neutral, Sad, Surprise)
    "sfew": ("anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise"),
    # FERPlus's vote columns (fer2013new.csv), unknown and NF left out
    "ferplus": ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt"),
    # ExpW's expression_label 0..6 (angry, disgust, fear, happy, sad, surprise, neutral): FER2013's order
    "expw": ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral"),
    # CK+'s emotion codes 0..7; ckplus7 without neutral (code 1 is index 0), as read unless neutral frames are added
    "ckplus": _CKPLUS,
    "ckplus7": _CKPLUS[1:],
}


# The closed vocabularies: every name a user may choose, listed once. The command line's ``choices=``
# read these (without importing the modules that implement them, so ``--help`` stays fast), and
# tests/test_vocabularies.py checks that each registry implements exactly these names.
FORMAT_NAMES = ("rafdb", "affectnet", "fer2013", "folder", "sfew", "ferplus", "expw", "ckplus", "packed")
"""Data set layouts: each is the module ``dan/data/<name>.py``, registered in :data:`dan.data.formats.FORMATS`."""
SPLIT_ROLES = ("train", "val", "test")
"""What a split is for; each data format says which of its splits plays each role (or that none does)."""
RAFDB_IMAGES = ("aligned", "original")
"""RAF-DB's image variants: its 100 px aligned faces, or the original photographs."""
TRANSFORMS = ("rafdb", "affectnet", "flip", "eval", "none")
"""Training pipelines (``data.augment``), :data:`dan.data.transforms.PIPELINES`."""
HEADS = ("dan", "mha")
"""Attention heads (``model.head``), :data:`dan.models.dan.HEAD_TYPES`."""
BACKENDS = ("auto", "torch", "onnx", "openvino")
"""Model runtimes (``--backend``), :func:`dan.runtime.loader.load_backend`."""
DETECTORS = ("yunet", "haar", "none")
"""Face detectors (``--detector``), :func:`dan.inference.detectors.create_detector`."""
DEVICES = ("auto", "cpu", "cuda")
"""Where a model runs (``--device``, ``device=``): ``auto`` (a CUDA GPU when PyTorch sees one, else the
CPU), ``cpu``, or ``cuda`` / ``cuda:N`` (GPU N); checked by :func:`parse_device`, picked by
:func:`dan.system.pick_device`."""
EXPORT_FORMATS = ("onnx", "pt2")
"""Export file formats (``dan export --format``)."""
RESIZE_NAMES = ("bilinear", "bicubic")
"""Resize filters of the preprocessing record, :data:`dan.preprocess.RESIZE_METHODS`."""
FACE_CROPS = ("align", "box")
"""How a face is cut out of a photo (the preprocessing record's ``crop``)."""


class DanError(Exception):
    """A user-facing error: its message is one line that says what is wrong and where.

    The command line prints it without a traceback and exits with status 1.
    """


class MissingLabelsError(DanError):
    """A model whose class names are unknown and cannot be inferred (a 7-class reference file).

    The message names Python's keyword (``labels=``); :meth:`for_option` names a command's option.
    """

    KEYWORD = "pass labels="

    def for_option(self, option: str = "--labels") -> MissingLabelsError:
        """The same error, its message naming ``option`` instead of the Python keyword."""
        return MissingLabelsError(str(self).replace(self.KEYWORD, f"pass {option}"))


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


def one_line(text: object, limit: int = 200) -> str:
    """A message (or an exception) as one line of at most about ``limit`` characters, cut between sentences.

    Whitespace runs become single spaces. A longer text keeps its first sentences (or, when the first
    is too long, its first words) and ends with " [...]", so a message never stops mid-word.
    """
    text = " ".join(str(text).split()) or (type(text).__name__ if isinstance(text, BaseException) else "")
    if len(text) <= limit:
        return text
    cut = max(text.rfind(". ", 0, limit), text.rfind("; ", 0, limit))
    if cut > limit // 3:
        return text[: cut + 1] + " [...]"
    cut = text.rfind(" ", 0, limit)
    return text[: cut if cut > 0 else limit] + " [...]"


def parse_device(text: str) -> str:
    """A ``--device`` value in its one spelling: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (N a GPU index).

    Only the words are checked here (no torch); whether the GPU is there is :func:`dan.system.pick_device`'s.

    Raises:
        ValueError: Anything else (``gpu``, ``cuda:x``, ``mps``), naming the accepted values.
    """
    value = str(text).strip().lower()
    if value in DEVICES:
        return value
    kind, _, index = value.partition(":")
    if kind == "cuda" and index.isdigit():
        return f"cuda:{int(index)}"
    raise ValueError(f"unknown device {text!r}: use {', '.join(DEVICES)} or cuda:N (N: a GPU index)")


def parse_labels(text: str) -> str | tuple[str, ...]:
    """A ``--labels`` value: a label-set name (``rafdb``), or comma-separated class names (``happy,sad``).

    Raises:
        ValueError: An unknown set name without commas (argparse turns it into a usage error).
    """
    text = text.strip()
    if text in LABEL_SETS:
        return text
    if "," in text:
        names = tuple(x.strip() for x in text.split(",") if x.strip())
        if len(names) >= 2:
            return names
    raise ValueError(f"unknown label set {text!r}: use one of {', '.join(LABEL_SETS)} or comma-separated class names")


def resolve_labels(labels: str | Sequence[str] | None, num_classes: int) -> tuple[str, ...]:
    """Turn a label-set name or an explicit list into class names for ``num_classes`` outputs.

    Args:
        labels: A key of :data:`LABEL_SETS`, a sequence of class names, or None. None is only
            unambiguous for 8 classes (AffectNet-8 order).
        num_classes: Number of model outputs the names must cover.

    Returns:
        The class names, index ``i`` naming output ``i``.

    Raises:
        DanError: The set is unknown, ambiguous, or has the wrong length.
    """
    choices = ", ".join(LABEL_SETS)
    if labels is None:
        if num_classes == 8:
            return LABEL_SETS["affectnet8"]
        same = [k for k, v in LABEL_SETS.items() if len(v) == num_classes]
        hint = f"one of: {', '.join(same)}" if same else "a list of class names"
        raise MissingLabelsError(f"a {num_classes}-class model needs a label set: {MissingLabelsError.KEYWORD} {hint}")
    if isinstance(labels, str):
        if labels not in LABEL_SETS:
            raise DanError(f"unknown label set {labels!r}: choose one of {choices}")
        names = LABEL_SETS[labels]
    else:
        names = tuple(str(x) for x in labels)
    if len(names) != num_classes:
        raise DanError(f"label set has {len(names)} names but the model has {num_classes} classes")
    return names
