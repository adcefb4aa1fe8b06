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

from dan.data.formats import DataFormat, FaceCrop, pick_split, register
from dan.data.samples import Issue, Sample, SplitData
from dan.errors import DanError
from dan.vocab import LABEL_SETS

__all__ = ["FER2013_COLUMNS", "FER2013_ROLES", "FER2013_SPLITS", "fer2013_csv", "parse_pixels", "read_fer2013"]

FER2013_COLUMNS = ("emotion", "pixels", "Usage")
FER2013_SPLITS = ("Training", "PublicTest", "PrivateTest")
FER2013_ROLES = {"train": "Training", "val": "PublicTest", "test": "PrivateTest"}


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


def parse_pixels(text: str) -> np.ndarray:
    """A FER2013 ``pixels`` cell (space-separated grey values, row by row) as a square uint8 (S, S) image.

    Raises:
        ValueError: Not integers, not a square count, or values outside 0..255 (the message says which).
    """
    try:
        values = np.asarray(text.split(), dtype=np.int32)
    except (ValueError, OverflowError):  # not integers, or past int32
        raise ValueError("pixels are not space-separated integers") from None
    side = math.isqrt(values.size)
    if values.size == 0 or side * side != values.size or values.min() < 0 or values.max() > 255:
        raise ValueError(f"pixels: {values.size} values, not a square 0..255 image")
    return values.astype(np.uint8).reshape(side, side)  # (S, S)


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
    usage = pick_split(path, split, FER2013_SPLITS, FER2013_ROLES, "FER2013")
    names = LABEL_SETS["fer2013"]
    samples: list[Sample] = []
    images: list[np.ndarray] = []
    issues: list[Issue] = []
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as f:
        reader = csv.reader(f)
        header = [c.strip() for c in next(reader, [])]
        for c in FER2013_COLUMNS:
            if c not in header:
                raise DanError(f"{path}:1: missing column {c!r} (header: {', '.join(header) or 'none'})")
        i_emotion, i_pixels, i_usage = (header.index(c) for c in FER2013_COLUMNS)
        width = max(i_emotion, i_pixels, i_usage) + 1
        shape: tuple[int, ...] | None = None
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
                image = parse_pixels(row[i_pixels])
            except ValueError as err:
                issues.append(Issue(str(path), line, str(err)))
                continue
            if shape is None:
                shape = image.shape
            if image.shape != shape:
                side = image.shape[0]
                issues.append(Issue(str(path), line, f"image is {side}x{side}, others are {shape[0]}x{shape[1]}"))
                continue
            images.append(image)
            samples.append(Sample(f"{path}:{line}", label, None, line))
    pixels = np.stack(images) if images else np.zeros((0, 48, 48), np.uint8)
    data = SplitData("fer2013", usage, names, samples, str(path), pixels, issues)
    return data.checked(strict)


# FER2013: fer2013.csv (emotion, pixels, Usage), 48 x 48 grey faces
register(
    DataFormat(
        name="fer2013",
        title="FER2013",
        read=lambda root, split, o: read_fer2013(root, split, o.strict),
        labels=LABEL_SETS["fer2013"],
        splits=FER2013_SPLITS,
        roles=FER2013_ROLES,
        face_crop=FaceCrop("box", margin=0.1),  # its tight 48 px crops, plus a little
        eval_labels="fer2013",
        check=fer2013_csv,
    )
)
