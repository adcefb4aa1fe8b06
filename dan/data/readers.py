"""One entry point over every reader: formats, their splits, label names and default splits.

Formats: ``rafdb`` (also the ``dan synth`` output), ``affectnet`` (csv, npy or class-folder
layouts), ``fer2013`` and ``folder`` (any ``ROOT/SPLIT/CLASS/*.jpg`` tree).
"""

from __future__ import annotations

from pathlib import Path

from dan.common import LABEL_SETS, DanError
from dan.data.affectnet import affectnet_label_names, affectnet_layout, read_affectnet
from dan.data.fer2013 import FER2013_SPLITS, read_fer2013
from dan.data.folder import folder_label_names, folder_splits, read_folder, resolve_folder_split
from dan.data.rafdb import RAFDB_SPLITS, read_rafdb
from dan.data.samples import SplitData

__all__ = ["FORMATS", "default_splits", "format_label_names", "list_splits", "read_split"]

FORMATS = ("rafdb", "affectnet", "fer2013", "folder")


def _check_format(format: str) -> None:
    if format not in FORMATS:
        raise DanError(f"unknown data format {format!r}: choose one of {', '.join(FORMATS)}")


def format_label_names(format: str, root: str | Path, num_classes: int | None = None) -> tuple[str, ...]:
    """Class names of a data set, cheaply (no list file is read; a folder tree is listed).

    Raises:
        DanError: Unknown format, a ``num_classes`` the format cannot have, or (folder) a missing root.
    """
    _check_format(format)
    if format == "affectnet":
        names = affectnet_label_names(num_classes)
    elif format == "folder":
        names = folder_label_names(root)
    else:
        names = LABEL_SETS[format]
    if num_classes is not None and num_classes != len(names):
        raise DanError(f"{root}: the {format} data set has {len(names)} classes, not num_classes={num_classes}")
    return names


def list_splits(format: str, root: str | Path) -> list[str]:
    """Every split a data set has (or, for AffectNet, may have), for ``dan data check``."""
    _check_format(format)
    if format == "rafdb":
        return list(RAFDB_SPLITS)
    if format == "fer2013":
        return list(FER2013_SPLITS)
    if format == "affectnet":
        return ["train", "validation"]
    return folder_splits(root)


def default_splits(format: str, root: str | Path) -> tuple[str, str | None, str | None]:
    """Default ``(train, val, test)`` split names of a format; None where the data set has no such split.

    rafdb: train / None / test; affectnet: train / validation / validation; fer2013: Training /
    PublicTest / PrivateTest; folder: train, ``val`` (or ``validation``/``valid``) if present, and
    ``test`` if present, else the validation folder. A data set without a validation split gets one
    carved out of its training split (``FERDataModule(val_fraction=...)``), never its test split. A
    folder tree with neither folder has no test split (None).
    """
    _check_format(format)
    if format == "rafdb":
        return "train", None, "test"
    if format == "affectnet":
        return "train", "validation", "validation"
    if format == "fer2013":
        return "Training", "PublicTest", "PrivateTest"
    found: dict[str, str | None] = {}
    for name in ("val", "test"):
        try:
            found[name] = resolve_folder_split(root, name)
        except DanError:
            found[name] = None
    return "train", found["val"], found["test"] or found["val"]


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
        format: ``rafdb``, ``affectnet``, ``fer2013`` or ``folder``.
        root: The data set's root folder (for FER2013 also the CSV file).
        split: The split name (format-specific; common aliases such as ``val`` work).
        num_classes: AffectNet: 7 or 8; others: None or their fixed/derived count.
        rafdb_images: RAF-DB image variant, ``aligned`` or ``original``.
        strict: Raise the first bad line as a :class:`DanError` (training); False records them in
            ``issues`` (``dan data check``). Missing files/columns and empty splits always raise.

    Returns:
        The split's samples and class names.
    """
    names = format_label_names(format, root, num_classes)
    if format == "rafdb":
        return read_rafdb(root, split, rafdb_images, strict)
    if format == "affectnet":
        affectnet_layout(root)
        return read_affectnet(root, split, len(names), strict)
    if format == "fer2013":
        return read_fer2013(root, split, strict)
    return read_folder(root, split, names, strict)
