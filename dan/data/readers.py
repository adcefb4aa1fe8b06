"""One entry point over every reader, by format name: class names, splits, default splits, reading.

Each function looks the format up in the registry (:mod:`dan.data.formats`, one
:class:`~dan.data.formats.DataFormat` per layout, registered by its reader module) and asks the
record; no format is named here. Formats: :data:`dan.vocab.FORMAT_NAMES` (``rafdb``, also the
``dan synth`` output; ``affectnet`` in its csv, npy or class-folder layouts; ``fer2013``; ``folder``,
any ``ROOT/SPLIT/CLASS/*.jpg`` tree).
"""

from __future__ import annotations

from pathlib import Path

from dan.data.formats import FORMATS, ReadOptions, get_format, load_formats
from dan.data.samples import SplitData

__all__ = ["FORMATS", "default_splits", "format_label_names", "list_splits", "read_split"]

load_formats()  # every reader module registers itself on import


def format_label_names(format: str, root: str | Path, num_classes: int | None = None) -> tuple[str, ...]:
    """Class names of a data set, cheaply (no list file is read; a folder tree is listed).

    Raises:
        DanError: Unknown format, a ``num_classes`` the format cannot have, or (folder) a missing root.
    """
    return get_format(format).label_names(root, ReadOptions(num_classes))


def list_splits(format: str, root: str | Path) -> list[str]:
    """Every split a data set has (or, for AffectNet, may have), for ``dan data check``."""
    return list(get_format(format).split_names(root))


def default_splits(format: str, root: str | Path) -> tuple[str | None, str | None, str | None]:
    """Default ``(train, val, test)`` split names of a format; None where the data set has no such split.

    rafdb: train / None / test; affectnet: train / validation / validation; fer2013: Training /
    PublicTest / PrivateTest; folder: its ``train``, ``val`` (or ``validation``/``valid``) and
    ``test`` folders, the test split falling back to the validation folder. A data set without a
    validation split gets one carved out of its training split (``FERDataModule(val_fraction=...)``),
    never its test split.
    """
    return get_format(format).default_splits(root)


def read_split(
    format: str,
    root: str | Path,
    split: str,
    num_classes: int | None = None,
    rafdb_images: str = "aligned",
    strict: bool = True,
) -> SplitData:
    """Read one split of a data set in any supported format.

    Args:
        format: A name of :data:`dan.vocab.FORMAT_NAMES`.
        root: The data set's root folder (for FER2013 also the CSV file).
        split: The split name as on disk, or a role in any usual spelling (``train``, ``val``,
            ``validation``, ``test``, ...); a role the data set has no split for is an error.
        num_classes: AffectNet: 7 or 8; others: None or their fixed/derived count.
        rafdb_images: RAF-DB image variant (:data:`dan.vocab.RAFDB_IMAGES`).
        strict: Raise the first bad line as a :class:`DanError` (training); False records them in
            ``issues`` (``dan data check``). Missing files/columns and empty splits always raise.

    Returns:
        The split's samples and class names.
    """
    return get_format(format).read_split(root, split, ReadOptions(num_classes, rafdb_images, strict))
