"""One entry point over every reader, by format name: class names, splits, default splits, reading.

Each function looks the format up in the registry (:mod:`dan.data.formats`, one
:class:`~dan.data.formats.DataFormat` per layout, registered by its reader module) and asks the
record; no format is named here. Formats: :data:`dan.vocab.FORMAT_NAMES` (``rafdb``, also the
``dan synth`` output; ``affectnet`` in its csv, npy or class-folder layouts; ``fer2013``; ``folder``,
any ``ROOT/SPLIT/CLASS/*.jpg`` tree).
"""

from __future__ import annotations

from pathlib import Path

from dan.data.formats import FORMATS, get_format, load_formats
from dan.data.options import ReadOptions
from dan.data.samples import SplitData

__all__ = ["FORMATS", "default_splits", "format_label_names", "list_splits", "read_split"]

load_formats()  # every reader module registers itself on import


def format_label_names(format: str, root: str | Path, options: ReadOptions | None = None) -> tuple[str, ...]:
    """Class names of a data set read with ``options`` (default the defaults), cheaply (no list file is
    read; a folder tree is listed).

    Raises:
        DanError: Unknown format, a ``num_classes`` the format cannot have, or (folder) a missing root.
    """
    return get_format(format).label_names(root, options)


def list_splits(format: str, root: str | Path, options: ReadOptions | None = None) -> list[str]:
    """Every split a data set has (or, for AffectNet, may have), for ``dan data check``."""
    return list(get_format(format).split_names(root, options))


def default_splits(
    format: str, root: str | Path, options: ReadOptions | None = None
) -> tuple[str | None, str | None, str | None]:
    """Default ``(train, val, test)`` split names of a format; None where the data set has no such split.

    rafdb: train / None / test; affectnet: train / validation / validation; fer2013: Training /
    PublicTest / PrivateTest; folder: its ``train``, ``val`` (or ``validation``/``valid``) and
    ``test`` folders, the test split falling back to the validation folder; ckplus: ``train`` /
    the fold after ``options.fold`` / ``fold<options.fold>``. A data set without a validation split gets
    one carved out of its training split (``FERDataModule(val_fraction=...)``), never its test split.
    """
    return get_format(format).default_splits(root, options)


def read_split(format: str, root: str | Path, split: str, options: ReadOptions | None = None) -> SplitData:
    """Read one split of a data set in any supported format.

    Args:
        format: A name of :data:`dan.vocab.FORMAT_NAMES`.
        root: The data set's root folder (for FER2013 also the CSV file).
        split: The split name as on disk, or a role in any usual spelling (``train``, ``val``,
            ``validation``, ``test``, ...); a role the data set has no split for is an error.
        options: Everything else the reader is asked (:class:`dan.data.options.ReadOptions`: AffectNet's
            class count, RAF-DB's images, CK+'s folds, ``strict`` ...); default the defaults (strict:
            the first bad line raises). Missing files/columns and empty splits always raise.

    Returns:
        The split's samples and class names.
    """
    return get_format(format).read_split(root, split, options)
