"""Reader for AffectNet in its three common layouts.

1. Official (``csv``)::

       ROOT/Manually_Annotated_file_lists/training.csv, validation.csv
       ROOT/Manually_Annotated_Images/<subDirectory_filePath>

   Columns ``subDirectory_filePath, face_x, face_y, face_width, face_height, facial_landmarks,
   expression, valence, arousal`` (a file without the header row is read with these columns). The
   face box is cropped before transforming.
2. ``npy``: ``ROOT/train_set/images/N.jpg`` + ``ROOT/train_set/annotations/N_exp.npy`` (``val_set`` too),
   and ``N_val.npy``, ``N_aro.npy`` where they are there.
3. ``folders``: ``ROOT/train/0..7/*.jpg`` and ``ROOT/val/0..7/*.jpg`` (no valence or arousal).

Valence and arousal (in [-1, 1]) are kept per sample (:attr:`dan.data.samples.Sample.va`); AffectNet
writes -2 for a value it does not know (its non-faces and uncertain images), which becomes NaN, as does a
missing column or file. Another value outside [-1, 1], or one that is not a number, is an issue naming
the file and line.

Expressions 0..7 index the ``affectnet8`` label set; 8 (none), 9 (uncertain) and 10 (no face) are
dropped, and so is 7 (contempt) for 7 classes. Anything else is an error naming file and line.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from dan.data.folder import image_files
from dan.data.formats import DataFormat, FaceCrop, pick_split, register
from dan.data.samples import Issue, Sample, SplitData
from dan.errors import DanError
from dan.vocab import LABEL_SETS

__all__ = [
    "AFFECTNET_COLUMNS",
    "AFFECTNET_ROLES",
    "AFFECTNET_SPLITS",
    "UNKNOWN_VA",
    "affectnet_can_have_va",
    "affectnet_label_names",
    "affectnet_layout",
    "read_affectnet",
]

AFFECTNET_COLUMNS = (
    "subDirectory_filePath",
    "face_x",
    "face_y",
    "face_width",
    "face_height",
    "facial_landmarks",
    "expression",
    "valence",
    "arousal",
)
_NEEDED = ("subDirectory_filePath", "face_x", "face_y", "face_width", "face_height", "expression")
_VA_COLUMNS = ("valence", "arousal")
UNKNOWN_VA = -2.0
"""AffectNet's value for a valence or arousal it does not know."""
# canonical split -> (csv file, npy folder, class-folder names)
_SPLITS = {
    "train": ("training.csv", "train_set", ("train", "training")),
    "validation": ("validation.csv", "val_set", ("val", "validation", "valid", "test")),
}
AFFECTNET_SPLITS = tuple(_SPLITS)
# AffectNet's test set is not public: its validation set is the benchmark
AFFECTNET_ROLES = {"train": "train", "val": "validation", "test": "validation"}


def affectnet_label_names(num_classes: int | None) -> tuple[str, ...]:
    """The ``affectnet8`` (default) or ``affectnet7`` class names.

    Raises:
        DanError: ``num_classes`` is neither 7 nor 8.
    """
    if num_classes in (None, 8):
        return LABEL_SETS["affectnet8"]
    if num_classes == 7:
        return LABEL_SETS["affectnet7"]
    raise DanError(f"AffectNet has 7 or 8 classes, not num_classes={num_classes}")


def affectnet_layout(root: str | Path) -> str:
    """Which layout ``root`` holds: ``csv``, ``npy`` or ``folders``.

    Raises:
        DanError: Missing root or none of the three layouts.
    """
    root = Path(root)
    if not root.is_dir():
        raise DanError(f"{root}: AffectNet root folder not found")
    if (root / "Manually_Annotated_file_lists").is_dir():
        return "csv"
    if (root / "train_set").is_dir() or (root / "val_set").is_dir():
        return "npy"
    if any((root / n).is_dir() for n in ("train", "val", "validation")):
        return "folders"
    raise DanError(
        f"{root}: not an AffectNet folder (expected Manually_Annotated_file_lists/, train_set/ or train/0..7/)"
    )


def _keep(expression: int, num_labels: int) -> bool | None:
    """True: keep; False: drop silently (8..10, or 7 for 7 classes); None: out of range."""
    if 0 <= expression < num_labels:
        return True
    if 7 <= expression <= 10:
        return False
    return None


def _va_value(text: str) -> float:
    """One valence or arousal: a number in [-1, 1], NaN for AffectNet's unknown (-2) or an empty cell.

    Raises:
        ValueError: Not a number, or outside [-1, 1] (and not -2).
    """
    text = text.strip()
    if not text:
        return float("nan")
    value = float(text)
    if value == UNKNOWN_VA:
        return float("nan")
    if not -1.0 <= value <= 1.0:
        raise ValueError(f"{text} outside -1..1 (-2: unknown)")
    return value


def _va(values: list[str]) -> tuple[float, float] | None:
    """``(valence, arousal)`` of two cells (a missing cell is unknown); None when both are unknown.

    Raises:
        ValueError: A cell that is not a number, or outside [-1, 1] (and not -2).
    """
    v, a = (_va_value(values[i]) if i < len(values) else float("nan") for i in range(2))
    return None if v != v and a != a else (v, a)


def _read_csv(root: Path, csv_path: Path, num_labels: int, issues: list[Issue]) -> list[Sample]:
    if not csv_path.is_file():
        raise DanError(f"{csv_path}: AffectNet list file not found")
    image_root = root / "Manually_Annotated_Images"
    if not image_root.is_dir():
        raise DanError(f"{image_root}: AffectNet image folder not found")
    samples: list[Sample] = []
    seen: dict[str, int] = {}
    with open(csv_path, newline="", encoding="utf-8-sig", errors="replace") as f:
        reader = csv.reader(f)
        first = next(reader, None)
        if first is None:
            raise DanError(f"{csv_path}: empty file")
        header = [c.strip() for c in first]
        if not _is_number(header[6] if len(header) > 6 else ""):  # a header row
            missing = [c for c in _NEEDED if c not in header]
            if missing:
                raise DanError(f"{csv_path}:1: missing column {missing[0]!r} (header: {', '.join(header)})")
            col = {c: header.index(c) for c in _NEEDED}
            col.update({c: header.index(c) for c in _VA_COLUMNS if c in header})
            rows = reader
        else:  # no header row: the official column order
            col = {c: AFFECTNET_COLUMNS.index(c) for c in (*_NEEDED, *_VA_COLUMNS)}
            rows = _chain(first, reader)
        va_cols = [col[c] for c in _VA_COLUMNS if c in col]
        width = max(col[c] for c in _NEEDED) + 1
        for row in rows:
            line = reader.line_num
            if not row or not any(row):
                continue
            if len(row) < width:
                issues.append(Issue(str(csv_path), line, f"expected at least {width} columns, got {len(row)}"))
                continue
            try:
                expression = int(float(row[col["expression"]]))
                box = tuple(int(float(row[col[c]])) for c in ("face_x", "face_y", "face_width", "face_height"))
            except ValueError:
                issues.append(Issue(str(csv_path), line, "expression or face box is not a number"))
                continue
            keep = _keep(expression, num_labels)
            if keep is None:
                issues.append(Issue(str(csv_path), line, f"expression {expression} outside 0..10"))
                continue
            if not keep:
                continue
            if box[2] <= 0 or box[3] <= 0:
                issues.append(Issue(str(csv_path), line, f"empty face box {box}"))
                continue
            try:
                va = _va([row[i] for i in va_cols if i < len(row)]) if len(va_cols) == 2 else None
            except ValueError as err:
                issues.append(Issue(str(csv_path), line, f"valence or arousal: {err}"))
                continue
            rel = row[col["subDirectory_filePath"]].strip()
            if rel in seen:
                issues.append(Issue(str(csv_path), line, f"duplicate entry {rel} (first on line {seen[rel]})", False))
                continue
            seen[rel] = line
            samples.append(Sample(str(image_root / rel), expression, box, line, va))  # type: ignore[arg-type]
    return samples


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _chain(first: list[str], rest):
    yield first
    yield from rest


def _read_npy(split_dir: Path, num_labels: int, issues: list[Issue]) -> list[Sample]:
    images, annotations = split_dir / "images", split_dir / "annotations"
    for d in (images, annotations):
        if not d.is_dir():
            raise DanError(f"{d}: AffectNet folder not found")
    samples: list[Sample] = []
    for path in image_files(images):
        ann = annotations / f"{path.stem}_exp.npy"
        try:
            expression = int(np.load(ann, allow_pickle=False).reshape(-1)[0])
        except FileNotFoundError:
            issues.append(Issue(str(ann), None, f"annotation missing for {path.name}"))
            continue
        except (ValueError, OSError, IndexError):
            issues.append(Issue(str(ann), None, "not a readable expression annotation"))
            continue
        keep = _keep(expression, num_labels)
        if keep is None:
            issues.append(Issue(str(ann), None, f"expression {expression} outside 0..10"))
        elif keep:
            samples.append(Sample(str(path), expression, va=_read_npy_va(annotations, path.stem, issues)))
    return samples


def _read_npy_va(annotations: Path, stem: str, issues: list[Issue]) -> tuple[float, float] | None:
    """``(valence, arousal)`` from ``N_val.npy`` and ``N_aro.npy`` (a missing file is unknown)."""
    cells = []
    for kind in ("val", "aro"):
        path = annotations / f"{stem}_{kind}.npy"
        try:
            cells.append(str(np.load(path, allow_pickle=False).reshape(-1)[0]))
        except FileNotFoundError:
            cells.append("")
        except (ValueError, OSError, IndexError):
            issues.append(Issue(str(path), None, "not a readable valence or arousal annotation"))
            return None
    try:
        return _va(cells)
    except ValueError as err:
        issues.append(Issue(str(annotations / f"{stem}_val.npy"), None, f"valence or arousal: {err}"))
        return None


def _read_class_folders(split_dir: Path, num_labels: int, issues: list[Issue]) -> list[Sample]:
    samples: list[Sample] = []
    for d in sorted(p for p in split_dir.iterdir() if p.is_dir()):
        keep = _keep(int(d.name), num_labels) if d.name.isdigit() else None
        if keep is None:
            issues.append(Issue(str(d), None, f"class folder {d.name!r} is not an AffectNet expression 0..10"))
        elif keep:
            samples += [Sample(str(p), int(d.name)) for p in image_files(d)]
    return samples


def read_affectnet(
    root: str | Path, split: str = "train", num_classes: int | None = None, strict: bool = True
) -> SplitData:
    """Read one split of an AffectNet tree (layout detected by :func:`affectnet_layout`).

    Args:
        root: The AffectNet folder.
        split: ``train`` or ``validation`` (``val`` and ``test`` mean ``validation``).
        num_classes: 8 (default) or 7 (contempt dropped).
        strict: Raise on the first bad row instead of only recording it in ``issues``.

    Raises:
        DanError: Missing root, list file, folder or column; unknown split; an empty split; with
            ``strict``, a malformed row or an expression outside 0..10 (naming file and line).
    """
    root = Path(root)
    names = affectnet_label_names(num_classes)
    layout = affectnet_layout(root)
    key = pick_split(root, split, AFFECTNET_SPLITS, AFFECTNET_ROLES, "AffectNet")
    csv_name, npy_name, folder_names = _SPLITS[key]
    issues: list[Issue] = []
    if layout == "csv":
        source = root / "Manually_Annotated_file_lists" / csv_name
        samples = _read_csv(root, source, len(names), issues)
    elif layout == "npy":
        source = root / npy_name
        samples = _read_npy(source, len(names), issues)
    else:
        found = [root / n for n in folder_names if (root / n).is_dir()]
        if not found:
            raise DanError(f"{root / folder_names[0]}: AffectNet split folder not found")
        source = found[0]
        samples = _read_class_folders(source, len(names), issues)
    data = SplitData("affectnet", key, names, samples, str(source), None, issues)
    return data.checked(strict)


def affectnet_can_have_va(root: str | Path) -> bool:
    """Whether the AffectNet tree at ``root`` can carry valence and arousal: its lists (``csv``), or
    ``npy`` annotations with a ``*_val.npy`` file; never class folders (nor a folder that is no AffectNet)."""
    try:
        layout = affectnet_layout(root)
    except DanError:
        return False
    if layout == "npy":
        return any(next((Path(root) / d / "annotations").glob("*_val.npy"), None) for d in ("train_set", "val_set"))
    return layout == "csv"


# AffectNet: Manually_Annotated_file_lists/*.csv, train_set/ + val_set/ (npy), or train/0..7/
register(
    DataFormat(
        name="affectnet",
        title="AffectNet",
        read=lambda root, split, o: read_affectnet(root, split, o.num_classes, o.strict),
        labels=lambda root, o: affectnet_label_names(o.num_classes),
        splits=AFFECTNET_SPLITS,
        roles=AFFECTNET_ROLES,
        face_crop=FaceCrop("box", margin=0.0),  # the data set's own face boxes, as they are
        eval_labels="affectnet7",  # a 7-class file without names; 8 classes are AffectNet-8 anyway
        check=affectnet_layout,
        va=lambda root, o: affectnet_can_have_va(root),
    )
)
