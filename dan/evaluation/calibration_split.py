"""The faces a temperature is fitted on (``dan calibrate``): a validation split, never the test split.

A data set with a validation split of its own (FER2013's ``PublicTest``, ExpW's ``val``, a CK+ fold,
class folders with ``val/``) gives it. One without (RAF-DB, ``dan synth`` output, class folders
without ``val/``) gives the share of its training split that training holds out: the same
:meth:`dan.data.samples.SplitData.holdout` the data module calls
(:class:`dan.data.datamodule.FERDataModule`), with the same fraction and seed, so the faces are the
ones a model trained by ``dan fit`` validated on and never trained on. A data set whose validation
split is also its test split (AffectNet's ``validation``, SFEW's ``Val``, class folders with only
``val/``) is refused: the test split is never fitted on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from dan.data.formats import DataFormat
from dan.data.options import ReadOptions
from dan.data.samples import SplitData, split_role
from dan.errors import DanError

__all__ = ["CalibrationSplit", "calibration_split"]


@dataclass(frozen=True)
class CalibrationSplit:
    """The chosen split.

    Attributes:
        data: Its samples (a held-out part is named ``"<split>[holdout <fraction>]"``).
        held_out: Whether it was held out of the training split.
        description: One line saying what it is, for the user.
    """

    data: SplitData
    held_out: bool
    description: str


def calibration_split(
    fmt: DataFormat,
    root: str | os.PathLike,
    split: str,
    options: ReadOptions,
    val_fraction: float = 0.1,
    seed: int = 0,
    train_split: str | None = None,
    val_split: str | None = None,
) -> CalibrationSplit:
    """The split named ``split`` (``val``: the validation role), checked not to be the test split.

    Args:
        fmt: The data set's format record.
        root: Its root folder.
        split: What the user named (``val``, ``validation``, a split name such as ``fold3``).
        options: Reader options (as training read the data set).
        val_fraction: Share of the training split held out when there is no validation split
            (``data.val_fraction``).
        seed: Seed of that hold-out (``data.seed``; ``dan fit``'s default 0).
        train_split: Training's ``data.train_split`` (default the format's).
        val_split: Training's ``data.val_split`` when it named one (default the format's).

    Raises:
        DanError: The test split (named, or the data set's validation split being it), an unknown split,
            or a hold-out that cannot be made.
    """
    root = Path(root)
    train, val, test = fmt.default_splits(root, options)
    val = val_split or val
    wants_val = split == "val" or split_role(split) == "val"
    refuse = (
        f"--split {split}: dan calibrate never fits on the test split (the split dan evaluate scores); "
        "use the validation split (--split val)"
    )
    if not wants_val:
        if split_role(split) == "test" or fmt.resolve_split(root, split, options) == test:
            raise DanError(refuse)
        data = fmt.read_split(root, split, options)
        return CalibrationSplit(data, False, f"{fmt.name}/{data.split}: {len(data.samples)} images")
    if val is not None:
        resolved = fmt.resolve_split(root, val, options)
        if resolved == test:
            raise DanError(
                f"{root}: the {fmt.title} data set's validation split ({resolved}) is also its test split "
                "(the split dan evaluate scores): dan calibrate never fits on it; calibrate on another "
                "data set's validation split"
            )
        data = fmt.read_split(root, resolved, options)
        return CalibrationSplit(data, False, f"{fmt.name}/{data.split} (validation): {len(data.samples)} images")
    source = train_split or train
    if source is None:
        raise DanError(f"{root}: the {fmt.title} data set has neither a validation nor a training split")
    if not 0.0 < val_fraction < 1.0:
        raise DanError(f"--val-fraction {val_fraction}: must be between 0 and 1 (exclusive)")
    _, held = fmt.read_split(root, source, options).holdout(val_fraction, seed)
    return CalibrationSplit(
        held,
        True,
        f"{fmt.name}/{held.split}: {len(held.samples)} images ({fmt.title} has no validation split: the "
        f"{val_fraction:g} of '{source}' that dan fit holds out with seed {seed}, faces it never trained on)",
    )
