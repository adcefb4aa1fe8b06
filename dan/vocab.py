"""Label sets and the closed vocabularies: every name a user may choose, listed once, and their parsers.

Label orders follow each data set's own index order (docs/design.md, label orders), so index ``i`` of a
label set is the integer label ``i`` of that data set (RAF-DB's 1-based file labels shifted by one).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dan.errors import DanError, MissingLabelsError

__all__ = [
    "BACKENDS",
    "CLASS_SYNONYMS",
    "DETECTORS",
    "DEVICES",
    "EXPORT_FORMATS",
    "FACE_CROPS",
    "FORMAT_NAMES",
    "HEADS",
    "LABEL_SETS",
    "RAFDB_IMAGES",
    "RESIZE_NAMES",
    "SPLIT_ROLES",
    "TRANSFORMS",
    "ClassMatch",
    "canonical_class_name",
    "match_classes",
    "parse_device",
    "parse_labels",
    "resolve_labels",
]

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


# ------------------------------------------------------------------------------------- class names
# One matcher for every place that pairs two label sets by name: a data set's class folders
# (dan.data.folder, dan.data.sfew), a model scored on a data set (dan evaluate, dan calibrate), a model
# started from another (model.init_from) and the scripts.

CLASS_SYNONYMS: dict[str, str] = {  # a spelling (lower case, "_" for spaces and "-") -> its canonical class name
    "happy": "happiness",
    "happiness": "happiness",
    "joy": "happiness",
    "smile": "happiness",
    "angry": "anger",
    "anger": "anger",
    "mad": "anger",
    "sad": "sadness",
    "sadness": "sadness",
    "surprised": "surprise",
    "surprise": "surprise",
    "suprise": "surprise",
    "disgusted": "disgust",
    "disgust": "disgust",
    "fearful": "fear",
    "fear": "fear",
    "scared": "fear",
    "afraid": "fear",
    "neutral": "neutral",
    "calm": "neutral",
    "contempt": "contempt",
    "contemptuous": "contempt",
}


def canonical_class_name(name: str) -> str:
    """The canonical class name of ``name``: case, spaces and hyphens ignored, synonyms mapped (``Happy`` ->
    ``happiness``, ``angry`` -> ``anger``, :data:`CLASS_SYNONYMS`); any other name lower-cased."""
    key = name.strip().lower().replace("-", "_").replace(" ", "_")
    return CLASS_SYNONYMS.get(key, key)


@dataclass(frozen=True)
class ClassMatch:
    """Two label sets matched by canonical class name (:func:`canonical_class_name`): :func:`match_classes`.

    ``source`` is the label set a model was trained with; ``target`` the one it is taken to: a data set's
    (``dan evaluate``: the shared classes are scored, the data set's others left out, a prediction of
    the model's others counted wrong) or a new model's (``init_from``: the shared classes keep their
    classifier rows, the others start fresh).

    Attributes:
        source: The source's class names, as given.
        target: The target's class names, as given.
        pairs: ``(source index, target index)`` of every class both hold, in the target's order (the first
            of two names with one canonical form wins; the second counts as unmatched).
    """

    source: tuple[str, ...]
    target: tuple[str, ...]
    pairs: tuple[tuple[int, int], ...]

    @property
    def shared(self) -> tuple[str, ...]:
        """The classes both hold, named as the target names them, in its order."""
        return tuple(self.target[j] for _, j in self.pairs)

    @property
    def source_only(self) -> tuple[str, ...]:
        """The source's classes the target lacks."""
        used = {i for i, _ in self.pairs}
        return tuple(n for i, n in enumerate(self.source) if i not in used)

    @property
    def target_only(self) -> tuple[str, ...]:
        """The target's classes the source lacks."""
        used = {j for _, j in self.pairs}
        return tuple(n for j, n in enumerate(self.target) if j not in used)

    @property
    def source_columns(self) -> tuple[int, ...]:
        """The source index of each shared class, in :attr:`shared` order."""
        return tuple(i for i, _ in self.pairs)

    def positions(self, side: str) -> tuple[int, ...]:
        """For each class of ``side`` (``"source"`` or ``"target"``), its index among :attr:`shared`, or -1."""
        names, at = (self.source, 0) if side == "source" else (self.target, 1)
        where = {pair[at]: k for k, pair in enumerate(self.pairs)}
        return tuple(where.get(i, -1) for i in range(len(names)))


def match_classes(source: Sequence[str], target: Sequence[str]) -> ClassMatch:
    """Match two label sets by canonical class name (``Happy``, ``happy`` and ``happiness`` are one class).

    Args:
        source: The trained model's class names.
        target: The class names they are taken to (a data set's, or a new model's).

    Returns:
        The :class:`ClassMatch`.
    """
    where: dict[str, int] = {}
    for i, name in enumerate(source):
        where.setdefault(canonical_class_name(name), i)
    pairs, used = [], set()
    for j, name in enumerate(target):
        found = where.get(canonical_class_name(name))
        if found is not None and found not in used:
            pairs.append((found, j))
            used.add(found)
    return ClassMatch(tuple(source), tuple(target), tuple(pairs))
