"""The one options object every reader takes: :class:`ReadOptions`.

Training's data module, ``dan evaluate``, ``dan calibrate``, ``dan data check`` and
:mod:`dan.data.readers` each build one :class:`ReadOptions` and pass it to the format record
(:meth:`dan.data.formats.DataFormat.read_split`); no caller passes a part of it. Everything a reader may
be asked besides the root and the split is a field here, so a new per-read choice is a new field (and a
``data.`` key of the data module, and a flag of :func:`dan.cli.read_options.add_read_options`).

A model records the options it was trained with (:meth:`ReadOptions.to_record`, in its ``trained_on``
entry, :mod:`dan.data.provenance`), so ``dan evaluate`` and ``dan calibrate`` read a data set as
training did unless told otherwise (:meth:`ReadOptions.from_record`, :meth:`ReadOptions.overridden`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dan.errors import DanError
from dan.vocab import RAFDB_IMAGES

__all__ = ["ReadOptions"]

_NOT_RECORDED = ("strict",)  # how a caller reads, not which samples it reads


@dataclass(frozen=True)
class ReadOptions:
    """What a caller may ask of a reader besides the root and the split.

    Attributes:
        num_classes: The class count asked for (AffectNet: 7 or 8); None for the format's own.
        rafdb_images: RAF-DB's image variant (:data:`dan.vocab.RAFDB_IMAGES`).
        strict: Raise the first bad line as a :class:`DanError` (training, evaluation); False collects
            every problem in :attr:`SplitData.issues <dan.data.samples.SplitData.issues>` (``dan data check``).
        fold: CK+: the test fold, ``0 .. folds - 1`` (the next fold validates, the others train).
        folds: CK+: how many subject-independent folds (at least 3).
        split_seed: CK+ and ExpW: seed of the assignment of subjects (CK+) or photos (ExpW) to folds;
            not the training seed, so ``dan evaluate`` finds the same test fold without knowing it.
        peak_frames: CK+: how many last frames of each labelled sequence carry its expression.
        first_frame_neutral: CK+: also take each labelled sequence's first frame, as ``neutral``
            (eight classes instead of seven).
        soft_targets: FERPlus: keep every sample's vote fractions in :attr:`SplitData.soft`.
    """

    num_classes: int | None = None
    rafdb_images: str = "aligned"
    strict: bool = True
    fold: int = 0
    folds: int = 10
    split_seed: int = 0
    peak_frames: int = 3
    first_frame_neutral: bool = False
    soft_targets: bool = False

    def __post_init__(self) -> None:
        if self.rafdb_images not in RAFDB_IMAGES:
            raise DanError(f"rafdb_images={self.rafdb_images!r}: choose one of {', '.join(RAFDB_IMAGES)}")
        if not 3 <= self.folds <= 1000:
            raise DanError(f"folds={self.folds}: must be between 3 and 1000 (a test, a validation and a training fold)")
        if not 0 <= self.fold < self.folds:
            raise DanError(f"fold={self.fold}: choose 0..{self.folds - 1} (folds={self.folds})")
        if self.peak_frames < 1:
            raise DanError(f"peak_frames={self.peak_frames}: must be at least 1")

    def to_record(self) -> dict[str, Any]:
        """The fields that decide which samples a split holds, as plain values (a model's ``trained_on.read``)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in _NOT_RECORDED}

    @classmethod
    def from_record(cls, record: object, where: str = "") -> ReadOptions:
        """Read what :meth:`to_record` wrote, each value's type checked (keys this dan does not know are ignored).

        Args:
            record: The stored mapping.
            where: Prefix naming the file and key for errors (``"model.pt: trained_on.read."``).

        Raises:
            DanError: Not a mapping, or a value of the wrong type or range, named by its key.
        """
        if not isinstance(record, Mapping):
            raise DanError(f"{where.rstrip('.')}={record!r}: expected a mapping of reader options")
        given: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name in _NOT_RECORDED or f.name not in record:
                continue
            value, default = record[f.name], f.default
            if f.name == "num_classes":
                ok = value is None or (isinstance(value, int) and not isinstance(value, bool))
            else:
                ok = type(value) is type(default)  # bool is not int here, nor int bool
            if not ok:
                raise DanError(f"{where}{f.name}={value!r}: expected {type(default).__name__}")
            given[f.name] = value
        try:
            return cls(**given)
        except DanError as err:
            raise DanError(f"{where}{err}") from None

    def overridden(self, **changes: Any) -> ReadOptions:
        """These options with ``changes`` applied, a None change leaving its field as it is.

        Raises:
            DanError: A changed value out of range (the field named as a ``--`` flag would not be; the
                caller prefixes it).
        """
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})
