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

from dan.vocab import LABEL_SETS

__all__ = [
    "color_of",
    "make_affectnet_csv",
    "make_affectnet_folders",
    "make_affectnet_npy",
    "make_ckplus",
    "make_expw",
    "make_fer2013",
    "make_ferplus",
    "make_folder",
    "make_packed",
    "make_rafdb",
    "make_sfew",
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


CKPLUS_FACE = (12, 8, 24, 24)  # (x, y, w, h): the face box the landmarks of every fixture frame give


def make_ckplus(root: Path, subjects: int = 10, frames: int = 5, landmarks: bool = True) -> dict:
    """CK+: ``cohn-kanade-images/S1NN/00Q/S1NN_00Q_0000000K.png``, ``Emotion/`` and ``Landmarks/`` files.

    Each subject has sequences ``001`` .. ``007`` labelled with CK+ codes 1..7 (the emotion file names
    the last frame) and an unlabelled ``008``. Frames are 48x40 with the face square :data:`CKPLUS_FACE`
    painted: the first frame in ``color_of(0)`` (neutral), the last three in ``color_of(code)``, the
    others grey (90); the first subject's frames are grey, as many of CK+'s are. The 68
    landmarks lie on a 20 px square inside the face. Returns ``{subject: {sequence: (code, [frame])}}``.
    """
    truth: dict[str, dict[str, tuple[int | None, list[Path]]]] = {}
    ring = [(14 + t, 10) for t in range(20)] + [(34, 10 + t) for t in range(20)]
    ring += [(34 - t, 30) for t in range(20)] + [(14, 30 - t) for t in range(8)]  # 68 points, bbox 20 x 20
    for i in range(subjects):
        subject = f"S{101 + i:03d}"
        truth[subject] = {}
        for q in range(1, 9):
            sequence, code = f"{q:03d}", (q if q <= 7 else None)
            paths = []
            for k in range(1, frames + 1):
                name = f"{subject}_{sequence}_{k:08d}"
                label = 0 if k == 1 else code if k > frames - 3 and code else None
                img = np.zeros((40, 48, 3), np.uint8)
                x, y, w, h = CKPLUS_FACE
                img[y : y + h, x : x + w] = color_of(label) if label is not None else (90, 90, 90)
                path = root / "cohn-kanade-images" / subject / sequence / f"{name}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                assert cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2GRAY if i == 0 else cv2.COLOR_RGB2BGR))
                paths.append(path)
                if landmarks:
                    marks = root / "Landmarks" / subject / sequence / f"{name}_landmarks.txt"
                    marks.parent.mkdir(parents=True, exist_ok=True)
                    marks.write_text("".join(f"   {px:.7e}   {py:.7e}\n" for px, py in ring))
            if code is not None:
                emotion = root / "Emotion" / subject / sequence / f"{paths[-1].stem}_emotion.txt"
                emotion.parent.mkdir(parents=True, exist_ok=True)
                emotion.write_text(f"   {code:.7e}\n")
            truth[subject][sequence] = (code, paths)
    return truth


def make_expw(root: Path, photos_per_class: int = 10, image_dir: str = "image/origin") -> dict:
    """ExpW: ``label/label.lst`` and 64x48 photos under ``image_dir``, each face's box painted in its colour.

    Every class has ``photos_per_class`` photos with one face; every third photo also has a second face
    (the next class, in another box). Returns ``{photo name: [(face_id, (x, y, w, h), label)]}``.
    """
    truth: dict[str, list] = {}
    lines = []
    for i in range(7 * photos_per_class):
        label, name = i % 7, f"{['angry', 'happy'][i % 2]}_photo_{i:03d}.jpg"
        faces = [(0, (4, 6, 20, 24), label)] + ([(1, (36, 10, 22, 30), (label + 1) % 7)] if i % 3 == 0 else [])
        img = np.zeros((48, 64, 3), np.uint8)
        for face_id, (x, y, w, h), face_label in faces:
            img[y : y + h, x : x + w] = color_of(face_label)
            lines.append(f"{name} {face_id} {y} {x} {x + w} {y + h} {0.9 - 0.1 * face_id:.3f} {face_label}")
        write_image(root / image_dir / name, img)
        truth[name] = faces
    (root / "label").mkdir(parents=True, exist_ok=True)
    (root / "label" / "label.lst").write_text("\n".join(lines) + "\n")
    return truth


# vote rows FERPlus's majority rule drops: (what it is, ten counts: 8 emotions, unknown, NF)
FERPLUS_DROPPED = (
    ("unknown majority", (2, 0, 0, 0, 0, 0, 0, 0, 8, 0)),
    ("not a face", (0, 0, 0, 0, 0, 0, 0, 0, 0, 10)),
    ("tie", (4, 4, 0, 2, 0, 0, 0, 0, 0, 0)),
    ("plurality without majority", (4, 3, 0, 3, 0, 0, 0, 0, 0, 0)),
)
FERPLUS_HEADER = [
    "Usage",
    "Image name",
    *("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt"),
    "unknown",
    "NF",
]


def ferplus_votes(label: int, k: int = 0) -> list[int]:
    """Ten counts whose FERPlus majority is ``label``: 7 votes for it, 2 for another emotion, 1 for a third
    (``unknown`` for even ``k``)."""
    votes = [0] * 10
    votes[label], votes[(label + 1 + k % 3) % 8], votes[(label + 5) % 8 if k % 2 else 8] = 7, 2, 1
    return votes


def make_ferplus(root: Path, counts: dict[str, int] | None = None, side: int = 48) -> dict:
    """``fer2013.csv`` and FERPlus's ``fer2013new.csv``, row-aligned.

    ``counts`` is majority-labelled rows per class per Usage; each Usage also gets the rows of
    :data:`FERPLUS_DROPPED`, a labelled row without an image name (removed by FERPlus) and a row whose
    majority only holds once single votes are dropped (5 neutral, five emotions 1 each: neutral).
    Returns ``{usage: [(label, pixels, votes)]}`` of the rows that must be read, in file order.
    """
    counts = counts or {"Training": 2, "PublicTest": 1, "PrivateTest": 1}
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    truth: dict[str, list] = {u: [] for u in counts}
    old_rows, new_rows = [], []
    for usage, per in counts.items():
        rows: list[tuple[list[int], str, int | None]] = []  # (votes, image name, label to read or None)
        rows += [(ferplus_votes(label, k), "x", label) for label in range(8) for k in range(per)]
        rows += [(list(votes), "x", None) for _, votes in FERPLUS_DROPPED]
        rows += [(ferplus_votes(1), "", None), ([5, 1, 1, 1, 1, 1, 0, 0, 0, 0], "x", 0)]
        for votes, name, label in rows:
            px = rng.integers(0, 256, (side, side), dtype=np.uint8)
            image = f"fer{len(old_rows):07d}.png" if name else ""
            old_rows.append([rng.integers(0, 7), " ".join(map(str, px.ravel())), usage])
            new_rows.append([usage, image, *votes])
            if label is not None:
                truth[usage].append((label, px, votes))
    with open(root / "fer2013.csv", "w", newline="") as f:
        csv.writer(f).writerows([["emotion", "pixels", "Usage"], *old_rows])
    with open(root / "fer2013new.csv", "w", newline="") as f:
        csv.writer(f).writerows([FERPLUS_HEADER, *new_rows])
    return truth


def make_folder(
    root: Path, classes: tuple[str, ...] = ("happy", "Sad", "angry", "neutral"), splits=("train", "val"), per=2
) -> None:
    """ImageFolder tree ``root/split/class/k.jpg``; the colour is the class's index in ``classes``."""
    for split in splits:
        for i, name in enumerate(classes):
            for k in range(per):
                write_image(root / split / name / f"{k}.jpg", _solid(i))


SFEW_FOLDERS = ("Angry", "Disgust", "Fear", "Happy", "Neutral", "Sad", "Surprise")


def make_sfew(root: Path, per_class: dict[str, int] | None = None, empty: tuple[str, ...] = ()) -> dict:
    """SFEW 2.0 aligned faces: ``Train/<Class>/*.png`` and ``Val/<Class>/*.png``, colour = ``sfew`` index.

    ``per_class`` is images per class per split (default Train 2, Val 1); classes in ``empty`` get a
    folder without images (frames in which the release found no face). Returns ``{split: [label]}``.
    """
    per_class = per_class or {"Train": 2, "Val": 1}
    truth: dict[str, list[int]] = {}
    for split, per in per_class.items():
        truth[split] = []
        for label, folder in enumerate(SFEW_FOLDERS):
            (root / split / folder).mkdir(parents=True, exist_ok=True)
            if folder in empty:
                continue
            for k in range(per):
                write_image(root / split / folder / f"{folder}_{k:03d}.png", _solid(label, 24, 30))
                truth[split].append(label)
    return truth


RAFDB_NAMES = LABEL_SETS["rafdb"]


def make_packed(root: Path) -> dict:
    """A RAF-DB set (beside ``root``) packed into ``root`` by ``dan data pack``; returns :func:`make_rafdb`'s truth."""
    from dan.data.pack import pack_dataset

    truth = make_rafdb(root.with_name(root.name + "-source"))
    pack_dataset("rafdb", root.with_name(root.name + "-source"), root, say=lambda _: None)
    return truth
