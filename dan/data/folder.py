"""Reader for class-named folder trees (ImageFolder style): ``ROOT/SPLIT/CLASS/*.jpg``.

Folder names are mapped to canonical class names (``happy`` -> ``happiness``, ``angry`` -> ``anger``
and so on, see :data:`dan.vocab.CLASS_SYNONYMS`). Known classes are ordered as in the AffectNet-8 label set
(neutral, happiness, sadness, surprise, fear, disgust, anger, contempt), so a tree with the seven
basic expressions gets exactly the ``affectnet7`` order; unknown names follow in alphabetical order.
Folders named by integers (``0``, ``1``, ...) keep their number as the label index. The split folders
play the roles their names say (``train``/``training``, ``val``/``validation``/``valid``, ``test``).
"""

from __future__ import annotations

from pathlib import Path

from dan.data.formats import DataFormat, FaceCrop, pick_split, register
from dan.data.samples import Sample, SplitData, split_role
from dan.errors import DanError
from dan.imaging import list_images
from dan.vocab import LABEL_SETS, SPLIT_ROLES, canonical_class_name

__all__ = [
    "folder_label_names",
    "folder_roles",
    "folder_splits",
    "image_files",
    "read_folder",
    "resolve_folder_split",
]

_ORDER = LABEL_SETS["affectnet8"]


def image_files(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursive, by suffix, sorted)."""
    return list_images(folder, recursive=True)


def folder_splits(root: str | Path) -> list[str]:
    """Names of the split folders under ``root`` (sub-folders that contain folders)."""
    root = Path(root)
    if not root.is_dir():
        raise DanError(f"{root}: data folder not found")
    return sorted(d.name for d in root.iterdir() if d.is_dir() and any(c.is_dir() for c in d.iterdir()))


def resolve_folder_split(root: str | Path, split: str) -> str:
    """The split folder name for ``split``, trying common spellings (val/validation/valid, ...).

    Raises:
        DanError: No such split folder under ``root``.
    """
    root = Path(root)
    if (root / split).is_dir():
        return split
    role = split_role(split)
    if role is not None and root.is_dir():
        for folder in sorted(d.name for d in root.iterdir() if d.is_dir()):
            if split_role(folder) == role:  # val/ for "validation", Training/ for "train", ...
                return folder
    have = ", ".join(folder_splits(root)) or "none"
    raise DanError(f"{root / split}: split folder not found (split folders here: {have})")


def folder_roles(root: str | Path) -> dict[str, str | None]:
    """``{role: split folder or None}``: for each role the folder of that name, else one named by a synonym."""
    roles: dict[str, str | None] = {}
    for role in SPLIT_ROLES:
        try:
            roles[role] = resolve_folder_split(root, role)
        except DanError:
            roles[role] = None
    return roles


def _class_dirs(split_dir: Path) -> list[Path]:
    return sorted(d for d in split_dir.iterdir() if d.is_dir() and not d.name.startswith("."))


def folder_label_names(root: str | Path) -> tuple[str, ...]:
    """Class names of a folder tree: the union of the class folders of every split, canonical order.

    Raises:
        DanError: Missing root or no class folders.
    """
    root = Path(root)
    names = {canonical_class_name(c.name) for s in folder_splits(root) for c in _class_dirs(root / s)}
    if not names:
        raise DanError(f"{root}: no SPLIT/CLASS folders found (expected e.g. {root}/train/happy/*.jpg)")
    if all(n.isdigit() for n in names):
        return tuple(str(i) for i in range(max(int(n) for n in names) + 1))
    known = [n for n in _ORDER if n in names]
    return tuple(known + sorted(names - set(known)))


def read_folder(
    root: str | Path, split: str = "train", label_names: tuple[str, ...] | None = None, strict: bool = True
) -> SplitData:
    """Read one split of a class-folder tree.

    Args:
        root: The folder holding one sub-folder per split.
        split: Split folder name (``val`` also finds ``validation``/``valid``, and so on; a role
            without a folder is an error).
        label_names: Class names to index against; default :func:`folder_label_names` of ``root``.
        strict: Unused (folder trees have no lines to get wrong); kept for a uniform reader API.

    Returns:
        The split's images, sorted by class folder then file name.

    Raises:
        DanError: Missing root or split, a class folder not in ``label_names``, or an empty split.
    """
    root = Path(root)
    names = tuple(label_names) if label_names is not None else folder_label_names(root)
    if not root.is_dir():
        raise DanError(f"{root}: data folder not found")
    split_dir = root / pick_split(root, split, tuple(folder_splits(root)), folder_roles(root), "class-folder")
    index = {n: i for i, n in enumerate(names)}
    samples: list[Sample] = []
    for class_dir in _class_dirs(split_dir):
        name = canonical_class_name(class_dir.name)
        if name not in index:
            raise DanError(f"{class_dir}: class {name!r} is not one of the label set ({', '.join(names)})")
        samples += [Sample(str(p), index[name]) for p in image_files(class_dir)]
    data = SplitData("folder", split_dir.name, names, samples, str(split_dir))
    data.require_samples()
    return data


def _check(root: Path) -> None:
    if not folder_splits(root):
        raise DanError(f"{root}: no SPLIT/CLASS folders found (expected e.g. {root}/train/happy/*.jpg)")


# class folders: ROOT/SPLIT/CLASS/*.jpg, class names mapped to the canonical ones
register(
    DataFormat(
        name="folder",
        title="class-folder",
        read=lambda root, split, o: read_folder(root, split, None, o.strict),
        labels=lambda root, o: folder_label_names(root),
        splits=lambda root, o: tuple(folder_splits(root)),
        roles=lambda root, o: folder_roles(root),
        face_crop=FaceCrop("box", margin=0.2),  # unknown: a detector's box plus 20 %
        check=_check,
    )
)
