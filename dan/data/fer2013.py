"""Reader for FER2013's single CSV: ``ROOT/fer2013.csv`` with columns ``emotion, pixels, Usage``.

Each row holds a 48x48 grey face as space-separated pixel values. Usage ``Training``,
``PublicTest`` (the usual validation split) and ``PrivateTest`` (the usual test split) are the splits.
The pixels are kept in memory (:attr:`SplitData.pixels`); samples are named ``fer2013.csv:LINE``.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from dan.common import LABEL_SETS, DanError
from dan.data.samples import Issue, Sample, SplitData, split_role

__all__ = ["FER2013_COLUMNS", "FER2013_SPLITS", "fer2013_csv", "read_fer2013"]

FER2013_COLUMNS = ("emotion", "pixels", "Usage")
FER2013_SPLITS = ("Training", "PublicTest", "PrivateTest")
_SPLIT_OF_ROLE = {"train": "Training", "val": "PublicTest", "test": "PrivateTest"}


def fer2013_csv(root: str | Path) -> Path:
    """The CSV file: ``root`` itself when it is a file, else ``root/fer2013.csv``.

    Raises:
        DanError: Missing root or CSV file.
    """
    root = Path(root)
    if root.is_file():
        return root
    if not root.is_dir():
        raise DanError(f"{root}: FER2013 root not found")
    path = root / "fer2013.csv"
    if not path.is_file():
        raise DanError(f"{path}: FER2013 CSV file not found")
    return path


def read_fer2013(root: str | Path, split: str = "Training", strict: bool = True) -> SplitData:
    """Read one Usage split of ``fer2013.csv``.

    Args:
        root: The folder holding ``fer2013.csv``, or the CSV file itself.
        split: ``Training``, ``PublicTest`` or ``PrivateTest`` (also ``train``, ``val``, ``test``).
        strict: Raise on the first bad row instead of only recording it in ``issues``.

    Returns:
        The split, with ``pixels`` of shape (N, H, W) uint8.

    Raises:
        DanError: Missing file or column, unknown split, empty split; with ``strict``, a label
            outside 0..6 or a pixel string that is not a square grey image (naming file and line).
    """
    path = fer2013_csv(root)
    usage = _SPLIT_OF_ROLE.get(split_role(split) or "", split)
    if usage not in FER2013_SPLITS:
        raise DanError(f"{path}: FER2013 has no split {split!r}: use {', '.join(FER2013_SPLITS)}")
    names = LABEL_SETS["fer2013"]
    samples: list[Sample] = []
    images: list[np.ndarray] = []
    issues: list[Issue] = []
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        reader = csv.reader(f)
        header = [c.strip() for c in next(reader, [])]
        for c in FER2013_COLUMNS:
            if c not in header:
                raise DanError(f"{path}:1: missing column {c!r} (header: {', '.join(header) or 'none'})")
        i_emotion, i_pixels, i_usage = (header.index(c) for c in FER2013_COLUMNS)
        width = max(i_emotion, i_pixels, i_usage) + 1
        shape: tuple[int, int] | None = None
        for row in reader:
            line = reader.line_num
            if not row:
                continue
            if len(row) < width:
                issues.append(Issue(str(path), line, f"expected {width} columns, got {len(row)}"))
                continue
            if row[i_usage].strip() != usage:
                continue
            try:
                label = int(row[i_emotion])
            except ValueError:
                label = -1
            if not 0 <= label < len(names):
                issues.append(Issue(str(path), line, f"emotion {row[i_emotion]!r} outside 0..{len(names) - 1}"))
                continue
            try:
                values = np.asarray(row[i_pixels].split(), dtype=np.int32)
            except (ValueError, OverflowError):  # not integers, or past int32
                issues.append(Issue(str(path), line, "pixels are not space-separated integers"))
                continue
            side = math.isqrt(values.size)
            if values.size == 0 or side * side != values.size or values.min() < 0 or values.max() > 255:
                issues.append(Issue(str(path), line, f"pixels: {values.size} values, not a square 0..255 image"))
                continue
            if shape is None:
                shape = (side, side)
            if (side, side) != shape:
                issues.append(Issue(str(path), line, f"image is {side}x{side}, others are {shape[0]}x{shape[1]}"))
                continue
            images.append(values.astype(np.uint8).reshape(shape))
            samples.append(Sample(f"{path}:{line}", label, None, line))
    pixels = np.stack(images) if images else np.zeros((0, 48, 48), np.uint8)
    data = SplitData("fer2013", usage, names, samples, str(path), pixels, issues)
    if strict:
        data.raise_on_issues()
    data.require_samples()
    return data
