"""Reader for the RAF-DB basic layout (also what ``dan synth`` writes).

Layout::

    ROOT/EmoLabel/list_patition_label.txt      lines "train_00001.jpg 5" / "test_0001.jpg 1", labels 1..7
    ROOT/Image/aligned/train_00001_aligned.jpg  (default, 100x100 aligned faces)
    ROOT/Image/original/train_00001.jpg         (optional, ``rafdb_images="original"``)
    ROOT/EmoLabel/valence_arousal.txt           (optional, a dan extension) lines "train_00001.jpg 0.62 0.31"

The split is the file-name prefix (``train`` or ``test``); labels 1..7 become indices 0..6 in the
``rafdb`` order of :data:`dan.vocab.LABEL_SETS`. RAF-DB has no validation split: asking for one is
an error (training holds one out of ``train``, see :class:`dan.data.datamodule.FERDataModule`).
"""

from __future__ import annotations

from pathlib import Path

from dan.data.formats import DataFormat, FaceCrop, pick_split, register
from dan.data.options import ReadOptions
from dan.data.samples import Issue, Sample, SplitData
from dan.errors import DanError
from dan.vocab import LABEL_SETS, RAFDB_IMAGES

__all__ = [
    "RAFDB_IMAGES",
    "RAFDB_LIST",
    "RAFDB_ROLES",
    "RAFDB_SPLITS",
    "RAFDB_VA",
    "rafdb_image_path",
    "read_rafdb",
    "read_rafdb_va",
]

RAFDB_LIST = "EmoLabel/list_patition_label.txt"
RAFDB_VA = "EmoLabel/valence_arousal.txt"  # a dan extension: valence and arousal per image, when present
RAFDB_SPLITS = ("train", "test")
RAFDB_ROLES = {"train": "train", "val": None, "test": "test"}  # no validation split


def rafdb_image_path(root: Path, name: str, images: str = "aligned") -> Path:
    """Path of the image a list-file entry names (``train_00001.jpg`` -> ``.../train_00001_aligned.jpg``)."""
    if images == "aligned":
        stem = name.rsplit(".", 1)[0]
        return root / "Image" / "aligned" / f"{stem}_aligned.jpg"
    return root / "Image" / "original" / name


def read_rafdb_va(root: str | Path, issues: list[Issue]) -> dict[str, tuple[float, float]]:
    """``{list-file name: (valence, arousal)}`` from ``EmoLabel/valence_arousal.txt``; empty when there is none.

    Args:
        root: The RAF-DB root.
        issues: Where a malformed line, a value outside [-1, 1] or a duplicate name is recorded.
    """
    path = Path(root) / RAFDB_VA
    if not path.is_file():
        return {}
    out: dict[str, tuple[float, float]] = {}
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    for lineno, raw in enumerate(text.splitlines(), start=1):
        parts = raw.split()
        if not parts:
            continue
        try:
            if len(parts) != 3:
                raise ValueError
            name, v, a = parts[0], float(parts[1]), float(parts[2])
        except ValueError:
            issues.append(Issue(str(path), lineno, f"expected 'NAME VALENCE AROUSAL', got {raw.strip()!r}"))
            continue
        if not (-1.0 <= v <= 1.0 and -1.0 <= a <= 1.0):
            issues.append(Issue(str(path), lineno, f"valence {parts[1]} or arousal {parts[2]} outside -1..1"))
        elif name in out:
            issues.append(Issue(str(path), lineno, f"duplicate entry {name}", False))
        else:
            out[name] = (v, a)
    return out


def read_rafdb(root: str | Path, split: str = "train", rafdb_images: str = "aligned", strict: bool = True) -> SplitData:
    """Read one split of a RAF-DB basic tree.

    Args:
        root: The folder holding ``EmoLabel/`` and ``Image/``.
        split: ``train`` or ``test`` (or another spelling of those roles; RAF-DB has no validation split).
        rafdb_images: ``aligned`` (100x100 aligned crops) or ``original``.
        strict: Raise on the first bad line instead of only recording it in ``issues``.

    Returns:
        The split, its samples in list-file order (with their valence and arousal where
        ``EmoLabel/valence_arousal.txt`` gives them).

    Raises:
        DanError: Missing root, list file or image folder; unknown split or ``val``; an empty split; with
            ``strict``, a malformed line or a label outside 1..7 (naming the file and line).
    """
    root = Path(root)
    if not root.is_dir():
        raise DanError(f"{root}: RAF-DB root folder not found")
    key = pick_split(root, split, RAFDB_SPLITS, RAFDB_ROLES, "RAF-DB")
    if rafdb_images not in RAFDB_IMAGES:
        raise DanError(f"rafdb_images={rafdb_images!r}: use aligned or original")
    list_file = root / RAFDB_LIST
    if not list_file.is_file():
        raise DanError(f"{list_file}: RAF-DB list file not found (expected {RAFDB_LIST} under {root})")
    image_dir = root / "Image" / rafdb_images
    if not image_dir.is_dir():
        raise DanError(f"{image_dir}: RAF-DB image folder not found (rafdb_images={rafdb_images!r})")

    names = LABEL_SETS["rafdb"]
    samples: list[Sample] = []
    issues: list[Issue] = []
    seen: dict[str, int] = {}
    va = read_rafdb_va(root, issues)
    text = list_file.read_text(encoding="utf-8-sig", errors="replace")  # a BOM, as Windows editors write
    for lineno, raw in enumerate(text.splitlines(), start=1):
        parts = raw.split()
        if not parts:
            continue
        if len(parts) != 2:
            issues.append(Issue(str(list_file), lineno, f"expected 'NAME LABEL', got {raw.strip()!r}"))
            continue
        name, label_text = parts
        prefix = name.split("_", 1)[0].lower()
        if prefix not in RAFDB_SPLITS:
            if key == "train":  # report once, not once per split
                issues.append(Issue(str(list_file), lineno, f"{name!r} starts with neither train_ nor test_"))
            continue
        if prefix != key:
            continue
        try:
            label = int(label_text)
        except ValueError:
            label = -1
        if not 1 <= label <= len(names):
            issues.append(Issue(str(list_file), lineno, f"label {label_text!r} outside 1..{len(names)}"))
            continue
        if name in seen:
            issues.append(Issue(str(list_file), lineno, f"duplicate entry {name} (first on line {seen[name]})", False))
            continue
        seen[name] = lineno
        path = str(rafdb_image_path(root, name, rafdb_images))
        samples.append(Sample(path, label - 1, None, lineno, va.get(name)))

    data = SplitData("rafdb", key, names, samples, str(list_file), None, issues)
    return data.checked(strict)


def _check(root: Path) -> None:
    if not root.is_dir():
        raise DanError(f"{root}: RAF-DB root folder not found")
    if not (root / RAFDB_LIST).is_file():
        raise DanError(f"{root / RAFDB_LIST}: RAF-DB list file not found (expected {RAFDB_LIST} under {root})")


def _face_crop(root: Path, options: ReadOptions) -> FaceCrop:
    """The aligned images: five-landmark alignment onto a 100 px face; the originals: a detector's box plus 20 %."""
    return FaceCrop("align", face_size=100) if options.rafdb_images == "aligned" else FaceCrop("box", margin=0.2)


# RAF-DB basic: EmoLabel/list_patition_label.txt, Image/aligned/ (also what dan synth writes)
register(
    DataFormat(
        name="rafdb",
        title="RAF-DB",
        read=lambda root, split, o: read_rafdb(root, split, o.rafdb_images, o.strict),
        labels=LABEL_SETS["rafdb"],
        splits=RAFDB_SPLITS,
        roles=RAFDB_ROLES,
        face_crop=_face_crop,
        eval_labels="rafdb",
        check=_check,
        va=lambda root, o: (root / RAFDB_VA).is_file(),
    )
)
