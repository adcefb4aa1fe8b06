"""Fuzz targets of the data sets' side files: every reader of a list, annotation or vote file beyond the three
main ones of :mod:`scripts.maint.fuzz_targets` (which registers these in its ``TARGETS``).

Each writes the fuzzed bytes as one file of an otherwise valid, tiny tree and reads the split with
``strict`` on and off; only :class:`dan.errors.DanError` may escape:

- ``expw``: ExpW's ``label/label.lst``;
- ``ckplus_emotion`` / ``ckplus_landmarks``: a CK+ sequence's ``*_emotion.txt``, and every frame's
  ``*_landmarks.txt``;
- ``ferplus``: FERPlus's ``fer2013new.csv`` beside a valid ``fer2013.csv``;
- ``sfew``: SFEW's class folders, one per line of the bytes (names a file system accepts);
- ``va``: RAF-DB's ``EmoLabel/valence_arousal.txt`` beside a valid list.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

__all__ = ["READER_TARGETS"]

_PNG = b"\x89PNG\r\n\x1a\n"  # listed by suffix only: the readers never decode


def _expw_write(root: Path, data: bytes) -> str:
    (root / "label").mkdir()
    (root / "image" / "origin").mkdir(parents=True)
    (root / "label" / "label.lst").write_bytes(data)
    return "train"


def _expw_read(root: Path, split: str, strict: bool) -> object:
    from dan.data.expw import read_expw

    return read_expw(root, split, strict=strict)


def _ckplus_tree(root: Path, emotion: bytes | None, landmarks: bytes | None) -> None:
    """Ten subjects, one sequence each of three frames; ``emotion`` / ``landmarks`` replace the valid files."""
    ring = b"".join(b"   %.7e   %.7e\n" % (10 + 5 * (k % 3), 10 + 5 * (k // 3)) for k in range(6))
    for s in range(10):
        subject = f"S{s + 100:03d}"
        for f in range(1, 4):
            name = f"{subject}_001_{f:08d}"
            for folder, suffix, body in (
                ("cohn-kanade-images", ".png", _PNG),
                ("Landmarks", "_landmarks.txt", ring if landmarks is None else landmarks),
            ):
                path = root / folder / subject / "001" / f"{name}{suffix}"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(body)
        code = b"   3.0000000e+00\n" if emotion is None or s else emotion
        path = root / "Emotion" / subject / "001" / f"{subject}_001_00000003_emotion.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(code)


def _ckplus_read(root: Path, split: str, strict: bool) -> object:
    from dan.data.ckplus import read_ckplus
    from dan.data.formats import ReadOptions

    return read_ckplus(root, split, ReadOptions(strict=strict))


_PIXELS = " ".join(["128"] * 48 * 48)  # one grey 48 x 48 FER2013 image


def _ferplus_write(root: Path, data: bytes) -> str:
    """The votes as given; a ``fer2013.csv`` row-aligned with them (each row's Usage from the vote row)."""
    lines = data.decode("utf-8", errors="replace").splitlines()[1:65]
    rows = "".join(f"0,{_PIXELS},{line.split(',', 1)[0].strip()}\n" for line in lines if "," in line)
    (root / "fer2013.csv").write_text(f"emotion,pixels,Usage\n{rows}")
    (root / "fer2013new.csv").write_bytes(data)
    return "Training"


def _ferplus_read(root: Path, split: str, strict: bool) -> object:
    from dan.data.ferplus import read_ferplus

    return read_ferplus(root, split, strict=strict)


def _sfew_write(root: Path, data: bytes) -> str:
    names = data.decode("utf-8", errors="replace").splitlines()[:16]
    for split in ("Train", "Val"):
        (root / split).mkdir()
        for name in names:
            if not name.strip(" .") or "/" in name or "\0" in name or len(name.encode()) > 200:
                continue  # a name no file system holds
            folder = root / split / name
            folder.mkdir(exist_ok=True)
            (folder / "a.png").write_bytes(_PNG)
    return "Train"


def _sfew_read(root: Path, split: str, strict: bool) -> object:
    from dan.data.sfew import read_sfew

    return read_sfew(root, split, strict=strict)


def _va_write(root: Path, data: bytes) -> str:
    (root / "EmoLabel").mkdir()
    (root / "Image" / "aligned").mkdir(parents=True)
    lines = "".join(f"train_{k:05d}.jpg {k % 7 + 1}\n" for k in range(1, 15))
    (root / "EmoLabel" / "list_patition_label.txt").write_text(lines)
    (root / "EmoLabel" / "valence_arousal.txt").write_bytes(data)
    return "train"


def _rafdb_read(root: Path, split: str, strict: bool) -> object:
    from dan.data.rafdb import read_rafdb

    return read_rafdb(root, split, strict=strict)


Writer = Callable[[Path, bytes], str]
Reader = Callable[[Path, str, bool], object]

READER_TARGETS: dict[str, tuple[Writer, Reader]] = {
    "expw": (_expw_write, _expw_read),
    "ckplus_emotion": (lambda root, data: _ckplus_tree(root, data, None) or "train", _ckplus_read),
    "ckplus_landmarks": (lambda root, data: _ckplus_tree(root, None, data) or "train", _ckplus_read),
    "ferplus": (_ferplus_write, _ferplus_read),
    "sfew": (_sfew_write, _sfew_read),
    "va": (_va_write, _rafdb_read),
}
"""name -> (write the fuzzed bytes into a tree under a root and return the split to read, read it)."""
