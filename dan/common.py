"""Small shared things every layer may import: label sets, preprocessing settings, the error type.

Label orders follow each data set's own index order (docs/design.md, label orders), so index ``i`` of a
label set is the integer label ``i`` of that data set (RAF-DB's 1-based file labels shifted by one).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields

__all__ = [
    "FACE_CROPS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "LABEL_SETS",
    "DanError",
    "MissingLabelsError",
    "Preprocessing",
    "RESIZE_NAMES",
    "one_line",
    "parse_labels",
    "resolve_labels",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_AFFECTNET8 = ("neutral", "happiness", "sadness", "surprise", "fear", "disgust", "anger", "contempt")

LABEL_SETS: dict[str, tuple[str, ...]] = {
    "rafdb": ("surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral"),
    "affectnet8": _AFFECTNET8,
    "affectnet7": _AFFECTNET8[:7],
    "fer2013": ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral"),
}


class DanError(Exception):
    """A user-facing error: its message is one line that says what is wrong and where.

    The command line prints it without a traceback and exits with status 1.
    """


class MissingLabelsError(DanError):
    """A model whose class names are unknown and cannot be inferred (a 7-class reference file)."""


RESIZE_NAMES = ("bilinear", "bicubic")
FACE_CROPS = ("align", "box")


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
        raise MissingLabelsError(f"a {num_classes}-class model needs a label set: pass labels= {hint}")
    if isinstance(labels, str):
        if labels not in LABEL_SETS:
            raise DanError(f"unknown label set {labels!r}: choose one of {choices}")
        names = LABEL_SETS[labels]
    else:
        names = tuple(str(x) for x in labels)
    if len(names) != num_classes:
        raise DanError(f"label set has {len(names)} names but the model has {num_classes} classes")
    return names
