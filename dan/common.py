"""Small shared things every layer may import: label sets, preprocessing settings, the error type.

Label orders follow each data set's own index order (DESIGN.md section 3), so index ``i`` of a
label set is the integer label ``i`` of that data set (RAF-DB's 1-based file labels shifted by one).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "LABEL_SETS",
    "DanError",
    "Preprocessing",
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

    The command line prints it without a traceback and exits with status 2.
    """


@dataclass(frozen=True)
class Preprocessing:
    """How an image becomes the model's input: RGB, resized to ``input_size``, normalised.

    Attributes:
        input_size: Square side in pixels the face crop is resized to.
        mean: Per-channel mean of RGB values in [0, 1].
        std: Per-channel standard deviation of RGB values in [0, 1].
    """

    input_size: int = 224
    mean: tuple[float, float, float] = field(default=IMAGENET_MEAN)
    std: tuple[float, float, float] = field(default=IMAGENET_STD)

    def to_dict(self) -> dict:
        """Plain-type dict, safe to store in a weights-only checkpoint."""
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict | None) -> Preprocessing:
        """Inverse of :meth:`to_dict`; missing keys take the defaults."""
        d = dict(d or {})
        for key in ("mean", "std"):
            if key in d:
                d[key] = tuple(float(v) for v in d[key])
        if "input_size" in d:
            d["input_size"] = int(d["input_size"])
        return cls(**{k: v for k, v in d.items() if k in ("input_size", "mean", "std")})


def resolve_labels(labels: str | list[str] | tuple[str, ...] | None, num_classes: int) -> tuple[str, ...]:
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
        raise DanError(f"a {num_classes}-class model needs a label set: pass labels= {hint}")
    if isinstance(labels, str):
        if labels not in LABEL_SETS:
            raise DanError(f"unknown label set {labels!r}: choose one of {choices}")
        names = LABEL_SETS[labels]
    else:
        names = tuple(str(x) for x in labels)
    if len(names) != num_classes:
        raise DanError(f"label set has {len(names)} names but the model has {num_classes} classes")
    return names
