"""What a model was trained on (:class:`TrainedOn`, its ``trained_on`` entry) and the rule that refuses
scoring it on faces it trained on (:meth:`TrainedOn.refuse_trained_faces`).

The data module writes the record (:attr:`dan.data.datamodule.FERDataModule.trained_on`, linked into the
model and kept in every file written from it): the format, whether the faces are generated, the
:class:`~dan.data.options.ReadOptions` the splits were read with, the training and validation splits as
named on disk, the hold-out (``val_fraction`` and seed) when validation was held out of training, and
the size and a digest of the training split (its samples' paths relative to the root, and labels).

**The rule** (docs/design.md, section 4): a split is one the model trained on when the data set at the
evaluated root is the one it trained on and the split shares a sample with the training faces. The data
set is the one it trained on when it is of the same format and its training split, read at that root
with the recorded options, has the recorded digest (the root's path may differ between machines; a
different data set of the same format, or one changed since, has another digest, and is not checked).
The training faces are that training split, less the share held out for validation (never trained on;
``dan calibrate`` fits on it). So a CK+ model trained on ``fold=3`` may be scored on ``fold3`` (its
test fold) and ``fold4`` (its validation fold), but not on ``fold0`` nor on any fold of another fold
count or split seed that holds one of its training subjects' frames.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from dan.data.formats import DataFormat
from dan.data.options import ReadOptions
from dan.data.samples import Sample, SplitData
from dan.errors import DanError

__all__ = ["TrainedOn", "samples_digest"]


def _sample_ids(samples: list[Sample], root: str | Path) -> list[str]:
    """Each sample's path relative to the data set's folder (a CSV row: ``FILE:LINE``), and its face box."""
    folder = Path(root)
    base = os.path.abspath(folder if folder.is_dir() else folder.parent)
    ids = []
    for s in samples:
        box = "" if s.box is None else " " + ",".join(map(str, s.box))
        ids.append(os.path.relpath(os.path.abspath(s.source), base).replace(os.sep, "/") + box)
    return ids


def samples_digest(data: SplitData, root: str | Path) -> str:
    """SHA-256 over a split's sorted sample ids and labels: the same faces at another path give the same digest."""
    rows = sorted(f"{i}\t{s.label}" for i, s in zip(_sample_ids(data.samples, root), data.samples, strict=True))
    return "sha256:" + hashlib.sha256("\n".join(rows).encode()).hexdigest()


def _non_default(options: ReadOptions) -> str:
    """The recorded options that differ from the defaults, ``fold=3, first_frame_neutral=True`` (or ``defaults``)."""
    base = ReadOptions().to_record()
    changed = [f"{k}={v}" for k, v in options.to_record().items() if base[k] != v]
    return ", ".join(changed) or "the default options"


@dataclass(frozen=True)
class TrainedOn:
    """What a model was trained on (the module docstring).

    Attributes:
        format: The data set's format (:data:`dan.vocab.FORMAT_NAMES`).
        synthetic: Whether its faces were generated (``dan synth``).
        options: How its splits were read; None in an older record that kept only the format.
        train_split: The training split, as named on disk (or as the older record's ``data.train_split``).
        val_split: The validation split; None when validation was held out of the training split.
        val_fraction: The share held out when ``val_split`` is None.
        seed: The seed of that hold-out; None when not recorded.
        train_samples: How many samples the training split has (before the hold-out); None when not recorded.
        train_digest: :func:`samples_digest` of the training split; None when not recorded.
    """

    format: str
    synthetic: bool = False
    options: ReadOptions | None = None
    train_split: str | None = None
    val_split: str | None = None
    val_fraction: float = 0.1
    seed: int | None = None
    train_samples: int | None = None
    train_digest: str | None = None

    @classmethod
    def of_training(
        cls,
        fmt: DataFormat,
        root: str | Path,
        options: ReadOptions,
        train: SplitData | str,
        val_split: str | None,
        val_fraction: float,
        seed: int,
        synthetic: bool,
    ) -> TrainedOn:
        """The record of a training run that reads ``train`` (its name when it cannot be read: no size nor
        digest then) and validates on ``val_split`` (None: held out)."""
        return cls(
            fmt.name,
            synthetic,
            dataclasses.replace(options, strict=True),
            train.split if isinstance(train, SplitData) else train,
            None if val_split is None else fmt.resolve_split(root, val_split, options),
            val_fraction,
            seed,
            len(train) if isinstance(train, SplitData) else None,
            samples_digest(train, root) if isinstance(train, SplitData) else None,
        )

    def to_dict(self) -> dict:
        """Plain values (a model file's ``trained_on``; an older dan reads ``format`` and ``synthetic`` only)."""
        d: dict = {"format": self.format, "synthetic": self.synthetic}
        if self.options is not None:
            d["read"] = self.options.to_record()
            d |= {"train_split": self.train_split, "val_split": self.val_split, "val_fraction": self.val_fraction}
            d |= {"seed": self.seed, "train_samples": self.train_samples, "train_digest": self.train_digest}
        return d

    @classmethod
    def from_dict(cls, d: object, where: str = "") -> TrainedOn | None:
        """Read a model file's ``trained_on`` (None for a file without one).

        Raises:
            DanError: A value of the wrong type, named by its key behind ``where`` (``"model.pt: "``).
        """
        if not isinstance(d, Mapping) or not isinstance(d.get("format"), str):
            return None
        at = f"{where}trained_on."
        options = None if d.get("read") is None else ReadOptions.from_record(d["read"], f"{at}read.")
        for key, kind in (("train_split", str), ("val_split", str), ("train_digest", str), ("seed", int)):
            value = d.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, kind)):
                raise DanError(f"{at}{key}={value!r}: expected {kind.__name__}")
        return cls(
            d["format"],
            bool(d.get("synthetic", False)),
            options,
            d.get("train_split"),
            d.get("val_split"),
            _fraction(d.get("val_fraction", 0.1), f"{at}val_fraction"),
            d.get("seed"),
            _count(d.get("train_samples"), f"{at}train_samples"),
            d.get("train_digest"),
        )

    @classmethod
    def from_hparams(cls, hp: Mapping, where: str = "") -> TrainedOn:
        """The record of an older Lightning checkpoint, from its data module's hyper-parameters
        (``datamodule_hyper_parameters``: ``data.fold`` ... as configured; no digest, so no overlap check)."""
        read = {k: hp[k] for k in ReadOptions().to_record() if k in hp and k != "num_classes"}
        return cls(
            str(hp.get("format")),
            options=ReadOptions.from_record(read, f"{where}data."),
            train_split=hp.get("train_split") if isinstance(hp.get("train_split"), str) else None,
            val_split=hp.get("val_split") if isinstance(hp.get("val_split"), str) else None,
            val_fraction=_fraction(hp.get("val_fraction", 0.1), f"{where}data.val_fraction"),
            seed=hp.get("seed") if isinstance(hp.get("seed"), int) else None,
        )

    def trained_faces(self, fmt: DataFormat, root: str | Path) -> set[str] | None:
        """The ids of the faces this model trained on in the data set at ``root``; None when that data
        set is not the one it trained on (another format, another digest) or the record cannot tell."""
        if fmt.name != self.format or self.options is None or self.train_split is None or self.train_digest is None:
            return None
        try:
            train = fmt.read_split(root, self.train_split, self.options)
        except DanError:  # no such split here (another class-folder tree): not the data set it trained on
            return None
        if len(train) != self.train_samples or samples_digest(train, root) != self.train_digest:
            return None
        if self.val_split is None and self.seed is not None and 0 < self.val_fraction < 1:
            train = train.holdout(self.val_fraction, self.seed)[0]  # the held-out share was never trained on
        return set(_sample_ids(train.samples, root))

    def refuse_trained_faces(
        self, fmt: DataFormat, root: str | Path, data: SplitData, key: str, advice: str | None = None
    ) -> None:
        """Refuse to score ``data`` when it shares a face with the training faces (the module docstring's rule).

        Args:
            fmt: The evaluated data set's format record.
            root: Its root.
            data: The split to score.
            key: The option that chose it, for the message (``--split fold0``).
            advice: What to do instead; default: score the test split of the recorded options.

        Raises:
            DanError: One line: how many of its faces were trained on, with which options, and the test split.
        """
        trained = self.trained_faces(fmt, root)
        if not trained:
            return
        shared = sum(i in trained for i in _sample_ids(data.samples, root))
        if not shared:
            return
        assert self.options is not None  # trained_faces returns None without them
        if advice is None:
            advice = f"score a split it never saw (its test split: {fmt.default_splits(root, self.options)[2]})"
        raise DanError(
            f"{key}: {shared} of the {len(data)} faces of {fmt.name}/{data.split} are faces the model trained on "
            f"(its training split {self.train_split!r}, read with {_non_default(self.options)}); {advice}"
        )


def _fraction(value: object, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise DanError(f"{key}={value!r}: expected a number in [0, 1)")
    return float(value)


def _count(value: object, key: str) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise DanError(f"{key}={value!r}: expected a count")
    return value  # type: ignore[return-value]
