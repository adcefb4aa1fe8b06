"""Reader for FERPlus: FER2013's faces relabelled by ten annotators each (Barsoum et al., 2016).

Layout::

    ROOT/fer2013new.csv   Usage, Image name, neutral, happiness, surprise, sadness, anger, disgust, fear,
                          contempt, unknown, NF (vote counts), one row per fer2013.csv row, same order
    ROOT/fer2013.csv      FER2013's own file (emotion, pixels, Usage): the 48 x 48 grey images

The label is FERPlus's own majority vote, as its reference code (``src/ferplus.py``, ``majority``
mode) computes it: single votes are dropped as outliers, and the most voted column must then hold
more than half of the remaining votes; a tie at the top is never more than half, so tied rows are
dropped, and so are rows whose majority is ``unknown`` or ``NF`` (not a face), rows without an
image name (images FERPlus removed) and rows without such a majority. Eight classes, in the order
of FERPlus's columns (the ``ferplus`` label set). The splits are the ``Usage`` column of
fer2013new.csv: Training, PublicTest (validation), PrivateTest (test); a row whose Usage differs
from fer2013.csv's is an error (the files are not row-aligned).

With ``ReadOptions.soft_targets`` every sample also gets its vote distribution: the counts of the
eight emotions (all votes, single ones included; unknown and NF left out) divided by their sum, in
:attr:`dan.data.samples.SplitData.soft`.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dan.data.fer2013 import FER2013_COLUMNS, FER2013_ROLES, FER2013_SPLITS, parse_pixels
from dan.data.formats import DataFormat, FaceCrop, pick_split, register
from dan.data.samples import Issue, Sample, SplitData
from dan.errors import DanError
from dan.vocab import LABEL_SETS

__all__ = ["FERPLUS_COLUMNS", "FERPLUS_CSV", "ferplus_files", "majority_label", "read_ferplus"]

FERPLUS_CSV = "fer2013new.csv"
FERPLUS_COLUMNS = ("Usage", "Image name", *LABEL_SETS["ferplus"], "unknown", "NF")
_EMOTIONS = len(LABEL_SETS["ferplus"])


def ferplus_files(root: str | Path) -> tuple[Path, Path]:
    """``(fer2013new.csv, fer2013.csv)`` under ``root``.

    Raises:
        DanError: Missing root or either file.
    """
    root = Path(root)
    if not root.is_dir():
        raise DanError(f"{root}: FERPlus root folder not found")
    votes, images = root / FERPLUS_CSV, root / "fer2013.csv"
    if not votes.is_file():
        raise DanError(f"{votes}: FERPlus vote file not found (fer2013new.csv from FERPlus, beside fer2013.csv)")
    if not images.is_file():
        raise DanError(f"{images}: FER2013 CSV file not found (FERPlus takes its images from it)")
    return votes, images


def majority_label(votes: Sequence[int]) -> int | None:
    """FERPlus's majority vote over the ten counts of a row; None when the row has no emotion label.

    Single votes are dropped; the top column must then hold more than half of the rest, and be one of
    the eight emotions (not ``unknown`` or ``NF``).
    """
    kept = [v if v > 1 else 0 for v in votes]
    total, top = sum(kept), max(kept)
    if total == 0 or 2 * top <= total:  # no majority (a tie at the top included)
        return None
    label = kept.index(top)
    return label if label < _EMOTIONS else None


def _header(path: Path, row: list[str], needed: Sequence[str]) -> dict[str, int]:
    header = [c.strip() for c in row]
    for c in needed:
        if c not in header:
            raise DanError(f"{path}:1: missing column {c!r} (header: {', '.join(header) or 'none'})")
    return {c: header.index(c) for c in needed}


def _read_votes(path: Path, usage: str, issues: list[Issue]) -> tuple[dict[int, tuple[int, list[int]]], int]:
    """``({row index: (line, ten votes)} of the labelled rows of ``usage``, the file's row count)``."""
    kept: dict[int, tuple[int, list[int]]] = {}
    rows = 0
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as f:
        reader = csv.reader(f)
        col = _header(path, next(reader, []), FERPLUS_COLUMNS)
        width = max(col.values()) + 1
        for row in reader:
            if not row:
                continue
            index, line = rows, reader.line_num
            rows += 1
            if len(row) < width:
                issues.append(Issue(str(path), line, f"expected {width} columns, got {len(row)}"))
                continue
            if row[col["Usage"]].strip() != usage or not row[col["Image name"]].strip():
                continue  # another split, or an image FERPlus removed
            try:
                votes = [int(row[col[c]]) for c in FERPLUS_COLUMNS[2:]]
            except ValueError:
                votes = [-1]
            if min(votes) < 0:
                issues.append(Issue(str(path), line, "votes are not ten counts (non-negative integers)"))
                continue
            if majority_label(votes) is not None:
                kept[index] = (line, votes)
    return kept, rows


def read_ferplus(
    root: str | Path, split: str = "Training", soft_targets: bool = False, strict: bool = True
) -> SplitData:
    """Read one Usage split of FERPlus.

    Args:
        root: The folder holding ``fer2013new.csv`` and ``fer2013.csv``.
        split: ``Training``, ``PublicTest`` or ``PrivateTest`` (also ``train``, ``val``, ``test``).
        soft_targets: Also return each sample's eight vote fractions (``SplitData.soft``).
        strict: Raise on the first bad row instead of only recording it in ``issues``.

    Returns:
        The split's majority-labelled rows in file order, with ``pixels`` (N, H, W) uint8; samples are
        named ``fer2013.csv:LINE`` (their image's row), their ``line`` is fer2013new.csv's.

    Raises:
        DanError: Missing file or column, unknown split, files of different row counts, an empty
            split; with ``strict``, a bad vote or pixel row, or a Usage that differs between the files.
    """
    votes_csv, images_csv = ferplus_files(root)
    usage = pick_split(root, split, FER2013_SPLITS, FER2013_ROLES, "FERPlus")
    issues: list[Issue] = []
    wanted, n_votes = _read_votes(votes_csv, usage, issues)
    samples: list[Sample] = []
    images: list[np.ndarray] = []
    soft: list[list[int]] = []
    n_images = 0
    with open(images_csv, newline="", encoding="utf-8-sig", errors="replace") as f:
        reader = csv.reader(f)
        col = _header(images_csv, next(reader, []), FER2013_COLUMNS)
        for row in reader:
            if not row:
                continue
            index, line = n_images, reader.line_num
            n_images += 1
            if index not in wanted:
                continue
            vote_line, votes = wanted[index]
            if len(row) <= max(col.values()):
                issues.append(Issue(str(images_csv), line, f"expected {len(FER2013_COLUMNS)} columns, got {len(row)}"))
                continue
            if row[col["Usage"]].strip() != usage:
                message = f"Usage {usage!r}, but {images_csv.name}:{line} says {row[col['Usage']].strip()!r}"
                issues.append(Issue(str(votes_csv), vote_line, f"{message}: the files are not row-aligned"))
                continue
            try:
                image = parse_pixels(row[col["pixels"]])
            except ValueError as err:
                issues.append(Issue(str(images_csv), line, str(err)))
                continue
            if images and image.shape != images[0].shape:
                issues.append(Issue(str(images_csv), line, f"image is {image.shape}, others are {images[0].shape}"))
                continue
            images.append(image)
            soft.append(votes[:_EMOTIONS])
            samples.append(Sample(f"{images_csv}:{line}", majority_label(votes), None, vote_line))  # type: ignore[arg-type]
    if n_votes != n_images:
        raise DanError(
            f"{votes_csv}: {n_votes} rows, but {images_csv.name} has {n_images}: FERPlus needs one row per "
            "fer2013.csv row, in the same order"
        )
    pixels = np.stack(images) if images else np.zeros((0, 48, 48), np.uint8)  # (N, H, W)
    counts = np.asarray(soft, np.float32).reshape(-1, _EMOTIONS)  # (N, 8)
    fractions = counts / counts.sum(axis=1, keepdims=True) if soft_targets else None
    data = SplitData("ferplus", usage, LABEL_SETS["ferplus"], samples, str(votes_csv), pixels, issues, fractions)
    return data.checked(strict)


# FERPlus: fer2013new.csv (ten annotators' votes) beside FER2013's fer2013.csv (the images)
register(
    DataFormat(
        name="ferplus",
        title="FERPlus",
        read=lambda root, split, o: read_ferplus(root, split, o.soft_targets, o.strict),
        labels=LABEL_SETS["ferplus"],
        splits=FER2013_SPLITS,
        roles=FER2013_ROLES,
        face_crop=FaceCrop("box", margin=0.1),  # FER2013's tight 48 px crops, as for fer2013
        eval_labels="ferplus",
        check=ferplus_files,
    )
)
