"""One record per data-set layout: everything the rest of dan needs to know about a format, in one place.

A format is a :class:`DataFormat`: its class names, its splits and which of them is for training,
validation and testing (or that the data set has none), the function that reads a split, how its
faces were cut out of photos (the model's preprocessing record), the label set a model without class
names is assumed to have when scored on it, and a cheap layout probe for ``dan data check``.

Each reader module ``dan/data/<name>.py`` ends with ``register(DataFormat(name="<name>", ...))``, and
``<name>`` is listed in :data:`dan.vocab.FORMAT_NAMES` (the command line's choices).
:func:`get_format` imports the module on first use, so the registry :data:`FORMATS` is complete
whenever it is asked (:func:`load_formats` fills it all at once). Nothing else in dan branches on a
format's name: ``dan.data.readers``, the data module, ``dan data check`` and ``dan evaluate`` read
the record.

Fields that depend on the data on disk (a class-folder tree's classes and split folders) or on the
caller's options (AffectNet's 7 or 8 classes, RAF-DB's aligned or original images) are functions of
``(root, options)``; the others may be given as plain values.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TypeVar

from dan.data.options import ReadOptions
from dan.data.samples import SplitData, split_role
from dan.errors import DanError
from dan.preprocess import Preprocessing
from dan.vocab import FORMAT_NAMES, SPLIT_ROLES

__all__ = [
    "FORMATS",
    "DataFormat",
    "FaceCrop",
    "get_format",
    "load_formats",
    "pick_split",
    "register",
]

_ROLE_WORDS = {"train": "training", "val": "validation", "test": "test"}
T = TypeVar("T")


@dataclass(frozen=True)
class FaceCrop:
    """How a data set's faces were cut out of photos: the crop fields of :class:`dan.preprocess.Preprocessing`.

    Attributes:
        crop: ``align`` (five-landmark alignment onto a ``face_size`` face) or ``box`` (a detector's
            box, squared, plus ``margin`` of its side on each side).
        face_size: Side of an aligned face before it is resized to the model input.
        margin: Box crop margin, a fraction of the box side.
    """

    crop: str = "box"
    face_size: int = 100
    margin: float = 0.0

    def preprocessing(self, where: str = "", **image: object) -> Preprocessing:
        """The model-input record of a data set's faces: this crop, plus ``image`` (``input_size``, ``mean``,
        ``std``, ``resize``; the defaults where missing).

        Raises:
            DanError: A value out of range, named by its key behind the ``where`` prefix (``data.``).
        """
        return Preprocessing.from_dict({**image, **asdict(self)}, where)


Reader = Callable[[Path, str, ReadOptions], SplitData]
OfRoot = Callable[[Path, ReadOptions], T]


@dataclass(frozen=True)
class DataFormat:
    """One data-set layout (see the module docstring).

    Attributes:
        name: The ``--format`` / ``data.format`` name, one of :data:`dan.vocab.FORMAT_NAMES`.
        title: The data set's name in messages (``RAF-DB``).
        read: ``read(root, split, options)``: one split, named as on disk (a name :meth:`resolve_split`
            returned), as a :class:`SplitData`.
        labels: Class names, index ``i`` naming label ``i``: a tuple, or ``labels(root, options)``
            (raising :class:`DanError` for a class count the format cannot have).
        splits: Every split the data set has (``dan data check`` reads each), as named on disk: a
            tuple, or ``splits(root, options)``.
        roles: Which split is for ``train``, ``val`` and ``test`` (:data:`dan.vocab.SPLIT_ROLES`); a
            role missing or None: the data set has no such split (RAF-DB has no validation split, so
            training holds one out of its training split and ``--split val`` is an error); a mapping,
            or ``roles(root, options)``. A role may name a split made of listed ones that is not
            listed itself (CK+'s ``train``: every fold but the test and validation folds), so
            ``dan data check`` counts each image once.
        face_crop: How its faces were cut out of photos (:class:`FaceCrop`), or ``face_crop(root, options)``.
        eval_labels: The label set (a key of :data:`dan.vocab.LABEL_SETS`) assumed for a model file
            without class names scored on this data set (a 7-class reference ``.pth``); None: ask.
        check: ``check(root)``: raises :class:`DanError` when ``root`` does not hold this layout at all
            (cheap: no list file is read); None when reading the splits says everything.
        va: Whether the data set at ``root`` can carry valence and arousal (:attr:`Sample.va
            <dan.data.samples.Sample.va>`; AffectNet's lists, RAF-DB's ``EmoLabel/valence_arousal.txt``): a
            bool, or ``va(root, options)`` (cheap: no list file is read). Its batches then carry ``va``.
    """

    name: str
    title: str
    read: Reader
    labels: tuple[str, ...] | OfRoot[tuple[str, ...]]
    splits: tuple[str, ...] | OfRoot[tuple[str, ...]]
    roles: Mapping[str, str | None] | OfRoot[Mapping[str, str | None]]
    face_crop: FaceCrop | OfRoot[FaceCrop]
    eval_labels: str | None = None
    check: Callable[[Path], object] | None = None
    va: bool | OfRoot[bool] = False

    def can_have_va(self, root: str | Path, options: ReadOptions | None = None) -> bool:
        """Whether the data set at ``root`` can carry valence and arousal (the ``va`` field)."""
        return bool(_value(self.va, Path(root), options or ReadOptions()))

    def label_names(self, root: str | Path, options: ReadOptions | None = None) -> tuple[str, ...]:
        """Class names of the data set at ``root``; checks ``options.num_classes`` against them.

        Raises:
            DanError: A class count the data set cannot have, or (where the names come from disk) a
                missing root.
        """
        options = options or ReadOptions()
        names = _value(self.labels, Path(root), options)
        n = options.num_classes
        if n is not None and n != len(names):
            raise DanError(f"{root}: the {self.name} data set has {len(names)} classes, not num_classes={n}")
        return names

    def split_names(self, root: str | Path, options: ReadOptions | None = None) -> tuple[str, ...]:
        """Every split of the data set at ``root``, as named on disk."""
        return tuple(_value(self.splits, Path(root), options or ReadOptions()))

    def role_splits(self, root: str | Path, options: ReadOptions | None = None) -> dict[str, str | None]:
        """``{role: split or None}`` for every role of :data:`dan.vocab.SPLIT_ROLES`."""
        roles = _value(self.roles, Path(root), options or ReadOptions())
        return {role: roles.get(role) for role in SPLIT_ROLES}

    def split_for_role(self, root: str | Path, role: str, options: ReadOptions | None = None) -> str:
        """The split that plays ``role`` (``train``, ``val`` or ``test``).

        Raises:
            DanError: The data set has no split for that role (one line, naming the splits it has).
        """
        split = self.role_splits(root, options).get(role)
        if split is None:
            raise _no_split_for(root, self.title, role, self.split_names(root, options))
        return split

    def resolve_split(self, root: str | Path, split: str, options: ReadOptions | None = None) -> str:
        """The on-disk split a user's name means: one of :meth:`split_names`, or a role in any spelling.

        ``validation``, ``valid`` and ``PublicTest`` mean the ``val`` role, ``training`` the ``train``
        role and so on (:func:`dan.data.samples.split_role`).

        Raises:
            DanError: No such split, or a role the data set has no split for.
        """
        options = options or ReadOptions()
        return pick_split(root, split, self.split_names(root, options), self.role_splits(root, options), self.title)

    def default_splits(
        self, root: str | Path, options: ReadOptions | None = None
    ) -> tuple[str | None, str | None, str | None]:
        """``(train, val, test)`` splits, None where there is none; the test split falls back to the validation one.

        A data set without a validation split gets one held out of its training split by the data
        module (``data.val_fraction``), never its test split; one without a test split (a class-folder
        tree with only ``val/``) is scored on its validation split unless another is named.
        """
        roles = self.role_splits(root, options)
        return roles["train"], roles["val"], roles["test"] or roles["val"]

    def crop(self, root: str | Path, options: ReadOptions | None = None) -> FaceCrop:
        """How the faces of the data set at ``root`` (read with ``options``) were cut out of photos."""
        return _value(self.face_crop, Path(root), options or ReadOptions())

    def read_split(self, root: str | Path, split: str, options: ReadOptions | None = None) -> SplitData:
        """Read the split a user's name means (:meth:`resolve_split`), with the class names checked.

        Raises:
            DanError: Anything wrong with the name, the files or the lists (one line naming file and line).
        """
        options = options or ReadOptions()
        names = self.label_names(root, options)
        data = self.read(Path(root), self.resolve_split(root, split, options), options)
        if data.label_names != names:
            raise DanError(f"{data.source}: classes {data.label_names} differ from {names}")
        return data


def _no_split_for(root: str | Path, title: str, role: str, have: tuple[str, ...]) -> DanError:
    return DanError(f"{root}: the {title} data set has no {_ROLE_WORDS[role]} split (its splits: {', '.join(have)})")


def _value(field: T | Callable[[Path, ReadOptions], T], root: Path, options: ReadOptions) -> T:
    return field(root, options) if callable(field) else field  # type: ignore[return-value]


def pick_split(root: str | Path, split: str, have: tuple[str, ...], roles: Mapping[str, str | None], title: str) -> str:
    """The split of ``have`` that ``split`` names: itself, or the split ``roles`` gives its role.

    Readers call this with their own tables, so reading a split directly resolves names exactly as
    :meth:`DataFormat.resolve_split` does.

    Args:
        root: The data set root (for messages).
        split: The name asked for.
        have: The data set's splits, as named on disk.
        roles: ``{role: split or None}``.
        title: The data set's name in messages.

    Raises:
        DanError: An unknown name, or a role without a split (``RAF-DB has no validation split``).
    """
    if split in have:
        return split
    role = split_role(split)
    if role is None:
        raise DanError(f"{root}: {title} has no split {split!r}: use {', '.join(have) or 'a split folder name'}")
    found = roles.get(role)
    if found is None:
        raise _no_split_for(root, title, role, have)
    return found


FORMATS: dict[str, DataFormat] = {}
"""The registry: format name -> record, in :data:`dan.vocab.FORMAT_NAMES` order once complete."""


def register(fmt: DataFormat) -> DataFormat:
    """Add a format to :data:`FORMATS` (the last line of its reader module).

    Raises:
        ValueError: The name is not in :data:`dan.vocab.FORMAT_NAMES`, or another record has it.
    """
    if fmt.name not in FORMAT_NAMES:
        raise ValueError(f"data format {fmt.name!r} is not listed in dan.vocab.FORMAT_NAMES")
    if FORMATS.get(fmt.name, fmt) is not fmt:
        raise ValueError(f"data format {fmt.name!r} is registered twice")
    FORMATS[fmt.name] = fmt
    return fmt


def get_format(name: str, key: str = "format") -> DataFormat:
    """The record of format ``name``, importing its reader module ``dan.data.<name>`` on first use.

    Args:
        name: A format name.
        key: The option that named it, for the message (``data.format``, ``--format``).

    Raises:
        DanError: Not one of :data:`dan.vocab.FORMAT_NAMES`.
    """
    if name not in FORMAT_NAMES:
        raise DanError(f"{key}={name!r}: unknown data format; choose one of {', '.join(FORMAT_NAMES)}")
    if name not in FORMATS:
        importlib.import_module(f"dan.data.{name}")
        if name not in FORMATS:
            raise ValueError(f"dan/data/{name}.py does not register a data format named {name!r}")
    return FORMATS[name]


def load_formats() -> dict[str, DataFormat]:
    """Register every format of :data:`dan.vocab.FORMAT_NAMES`; returns :data:`FORMATS` in that order."""
    ordered = {name: get_format(name) for name in FORMAT_NAMES}
    if list(FORMATS) != list(ordered):
        FORMATS.clear()
        FORMATS.update(ordered)
    return FORMATS
