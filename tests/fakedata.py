"""Tiny fixture data sets in every supported layout, for the data-layer tests.

Every builder writes into a folder the test owns (``tmp_path``) and returns what it wrote, so the
tests can compare the readers' output with the truth. Images are small solid-colour pictures whose
colour encodes the label, so a test can also check that the right pixels came with the right label.
"""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np

from dan.common import LABEL_SETS

__all__ = [
    "color_of",
    "make_affectnet_csv",
    "make_affectnet_folders",
    "make_affectnet_npy",
    "make_fer2013",
    "make_folder",
    "make_rafdb",
    "truncate",
    "write_image",
]


def color_of(label: int) -> tuple[int, int, int]:
    """A distinct RGB colour per label."""
    return (30 * label + 20, 255 - 25 * label, (70 * label) % 256)


def write_image(path: Path, rgb: np.ndarray) -> Path:
    """Write an RGB uint8 array as an image file (format from the suffix), creating folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path


def _solid(label: int, size: int = 32, height: int | None = None) -> np.ndarray:
    return np.full((height or size, size, 3), color_of(label), np.uint8)


def truncate(path: Path, keep: float = 0.5) -> Path:
    """Cut a file to ``keep`` of its length (a truncated download)."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def make_rafdb(root: Path, train_per_class: int = 2, test_per_class: int = 1, original: bool = False) -> dict:
    """RAF-DB basic layout; returns ``{"train": [(name, label0)], "test": [...]}``."""
    lines, truth = [], {"train": [], "test": []}
    for split, per in (("train", train_per_class), ("test", test_per_class)):
        k = 0
        for label in range(7):
            for _ in range(per):
                k += 1
                name = f"{split}_{k:05d}.jpg" if split == "train" else f"{split}_{k:04d}.jpg"
                lines.append(f"{name} {label + 1}")
                truth[split].append((name, label))
                write_image(root / "Image" / "aligned" / name.replace(".jpg", "_aligned.jpg"), _solid(label))
                if original:
                    write_image(root / "Image" / "original" / name, _solid(label, 48))
    (root / "EmoLabel").mkdir(parents=True, exist_ok=True)
    (root / "EmoLabel" / "list_patition_label.txt").write_text("\n".join(lines) + "\n")
    return truth


_AFF_HEADER = [
    "subDirectory_filePath",
    "face_x",
    "face_y",
    "face_width",
    "face_height",
    "facial_landmarks",
    "expression",
    "valence",
    "arousal",
]


def make_affectnet_csv(root: Path, per_class: int = 2, extra: tuple[int, ...] = (8, 9, 10), header_val: bool = True):
    """Official AffectNet layout: 64x48 images with the face box (8, 4, 40, 36) painted in the label colour.

    Rows with expressions in ``extra`` are added too (they must be dropped). Returns
    ``{"training": [labels], "validation": [labels]}`` of the kept 8-class rows.
    """
    lists = root / "Manually_Annotated_file_lists"
    lists.mkdir(parents=True, exist_ok=True)
    truth: dict[str, list[int]] = {}
    for split in ("training", "validation"):
        rows, labels = [], []
        for expression in [e for e in range(8) for _ in range(per_class)] + list(extra):
            rel = f"{len(rows) % 3 + 1}/{split}_{len(rows):03d}.png"
            img = np.zeros((48, 64, 3), np.uint8)
            img[4:40, 8:48] = color_of(min(expression, 7))
            write_image(root / "Manually_Annotated_Images" / rel, img)
            rows.append([rel, 8, 4, 40, 36, "1;2;3;4", expression, 0.1, -0.2])
            if expression < 8:
                labels.append(expression)
        truth[split] = labels
        with open(lists / f"{split}.csv", "w", newline="") as f:
            writer = csv.writer(f)
            if header_val or split == "training":
                writer.writerow(_AFF_HEADER)
            writer.writerows(rows)
    return truth


def make_affectnet_npy(root: Path, per_class: int = 1) -> dict:
    """``train_set/images/N.jpg`` + ``train_set/annotations/N_exp.npy`` (and ``val_set``)."""
    truth: dict[str, list[int]] = {}
    for split in ("train_set", "val_set"):
        labels = []
        n = 0
        for expression in [e for e in range(8) for _ in range(per_class)]:
            write_image(root / split / "images" / f"{n}.jpg", _solid(expression))
            (root / split / "annotations").mkdir(parents=True, exist_ok=True)
            np.save(root / split / "annotations" / f"{n}_exp.npy", np.array(str(expression)))
            labels.append(expression)
            n += 1
        truth[split] = labels
    return truth


def make_affectnet_folders(root: Path, per_class: int = 1) -> None:
    """``train/0..7/*.jpg`` and ``val/0..7/*.jpg``."""
    for split in ("train", "val"):
        for expression in range(8):
            for k in range(per_class):
                write_image(root / split / str(expression) / f"{k}.jpg", _solid(expression))


def make_fer2013(root: Path, counts: dict[str, int] | None = None, side: int = 48) -> dict:
    """``fer2013.csv``; ``counts`` is rows per class per Usage. Returns ``{usage: [(label, pixels)]}``."""
    counts = counts or {"Training": 2, "PublicTest": 1, "PrivateTest": 1}
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    truth: dict[str, list] = {u: [] for u in counts}
    with open(root / "fer2013.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["emotion", "pixels", "Usage"])
        for usage, per in counts.items():
            for label in range(7):
                for _ in range(per):
                    px = rng.integers(0, 256, (side, side), dtype=np.uint8)
                    writer.writerow([label, " ".join(map(str, px.ravel())), usage])
                    truth[usage].append((label, px))
    return truth


def make_folder(
    root: Path, classes: tuple[str, ...] = ("happy", "Sad", "angry", "neutral"), splits=("train", "val"), per=2
) -> None:
    """ImageFolder tree ``root/split/class/k.jpg``; the colour is the class's index in ``classes``."""
    for split in splits:
        for i, name in enumerate(classes):
            for k in range(per):
                write_image(root / split / name / f"{k}.jpg", _solid(i))


RAFDB_NAMES = LABEL_SETS["rafdb"]
