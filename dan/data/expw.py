"""Reader for ExpW (Expression in-the-Wild, Zhang et al.): faces boxed in web photos.

Layout::

    ROOT/label/label.lst     lines "image_name face_id_in_image face_box_top face_box_left face_box_right
                             face_box_bottom face_box_cofidence expression_label"
    ROOT/image/origin/*.jpg  the photos (or ROOT/origin/, as some copies unpack them)

Labels 0..6 are angry, disgust, fear, happy, sad, surprise, neutral: the ``expw`` label set (FER2013's
order). Each face's box is cut from its photo before the transform, as AffectNet's boxes are.

ExpW has no official split. The photos are dealt into ten parts by
:func:`dan.data.groups.deal_groups` (stratified by each photo's rarest expression, seeded by
``ReadOptions.split_seed``, default 0): parts 0-7 are ``train``, 8 ``val`` and 9 ``test``, about
80/10/10 %. The split is by photo, so the faces of one photo never straddle two splits; the same
list and seed always give the same split (``dan evaluate`` finds the test split training used).
"""

from __future__ import annotations

from pathlib import Path

from dan.data.formats import DataFormat, FaceCrop, pick_split, register
from dan.data.groups import deal_groups
from dan.data.samples import Issue, Sample, SplitData
from dan.errors import DanError
from dan.vocab import LABEL_SETS

__all__ = ["EXPW_IMAGE_DIRS", "EXPW_LIST", "EXPW_PARTS", "EXPW_SPLITS", "expw_image_dir", "read_expw"]

EXPW_LIST = "label/label.lst"
EXPW_IMAGE_DIRS = ("image/origin", "origin")
EXPW_SPLITS = ("train", "val", "test")
EXPW_PARTS = {"train": (0, 1, 2, 3, 4, 5, 6, 7), "val": (8,), "test": (9,)}  # of ten parts, by photo
_ROLES = {role: role for role in EXPW_SPLITS}
_FIELDS = "image_name face_id top left right bottom confidence expression"


def expw_image_dir(root: str | Path) -> Path:
    """The photo folder: ``image/origin/`` or ``origin/`` under ``root``.

    Raises:
        DanError: Missing root, list file or photo folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise DanError(f"{root}: ExpW root folder not found")
    if not (root / EXPW_LIST).is_file():
        raise DanError(f"{root / EXPW_LIST}: ExpW list file not found (expected {EXPW_LIST} under {root})")
    for name in EXPW_IMAGE_DIRS:
        if (root / name).is_dir():
            return root / name
    raise DanError(f"{root / EXPW_IMAGE_DIRS[0]}: ExpW photo folder not found (also looked for {root / 'origin'})")


def _parse(path: Path, issues: list[Issue]) -> list[tuple[str, Sample]]:
    """``(photo name, sample)`` for every good line of the list, the sample's source still the bare name."""
    faces: list[tuple[str, Sample]] = []
    seen: dict[tuple[str, str], int] = {}
    n = len(LABEL_SETS["expw"])
    text = path.read_text(encoding="utf-8-sig", errors="replace")  # a BOM, as Windows editors write
    for lineno, raw in enumerate(text.splitlines(), start=1):
        parts = raw.split()
        if not parts:
            continue
        if len(parts) != 8:
            issues.append(Issue(str(path), lineno, f"expected 8 fields ({_FIELDS}), got {len(parts)}"))
            continue
        name, face_id = parts[0], parts[1]
        try:
            top, left, right, bottom = (int(float(v)) for v in parts[2:6])
            float(parts[6])
            label = int(parts[7])
        except ValueError:
            issues.append(Issue(str(path), lineno, "face box, confidence or expression is not a number"))
            continue
        if not 0 <= label < n:
            issues.append(Issue(str(path), lineno, f"expression {parts[7]!r} outside 0..{n - 1}"))
            continue
        if right <= left or bottom <= top:
            issues.append(
                Issue(str(path), lineno, f"empty face box (top {top}, left {left}, right {right}, bottom {bottom})")
            )
            continue
        key = (name, face_id)
        if key in seen:
            issues.append(
                Issue(str(path), lineno, f"duplicate face {face_id} of {name} (first on line {seen[key]})", False)
            )
            continue
        seen[key] = lineno
        faces.append((name, Sample(name, label, (left, top, right - left, bottom - top), lineno)))
    return faces


def read_expw(root: str | Path, split: str = "train", split_seed: int = 0, strict: bool = True) -> SplitData:
    """Read one split of ExpW (see the module docstring for the split).

    Args:
        root: The folder holding ``label/label.lst`` and ``image/origin/`` (or ``origin/``).
        split: ``train``, ``val`` or ``test`` (or another spelling of those roles).
        split_seed: Seed of the split by photo.
        strict: Raise on the first bad line instead of only recording it in ``issues``.

    Returns:
        The split's faces in list order, each with its face box.

    Raises:
        DanError: Missing root, list file or photo folder; unknown split; an empty split; with
            ``strict``, a malformed line, an expression outside 0..6 or an empty face box (naming
            the file and line).
    """
    root = Path(root)
    image_dir = expw_image_dir(root)
    key = pick_split(root, split, EXPW_SPLITS, _ROLES, "ExpW")
    list_file = root / EXPW_LIST
    issues: list[Issue] = []
    faces = _parse(list_file, issues)
    photos: dict[str, list[int]] = {}
    for name, face in faces:
        photos.setdefault(name, []).append(face.label)
    part = deal_groups(photos, 10, split_seed)
    wanted = EXPW_PARTS[key]
    samples = [Sample(str(image_dir / name), s.label, s.box, s.line) for name, s in faces if part[name] in wanted]
    data = SplitData("expw", key, LABEL_SETS["expw"], samples, str(list_file), None, issues)
    return data.checked(strict)


# ExpW: label/label.lst (face boxes and expressions) and image/origin/ photos; split by photo, seeded
register(
    DataFormat(
        name="expw",
        title="ExpW",
        read=lambda root, split, o: read_expw(root, split, o.split_seed, o.strict),
        labels=LABEL_SETS["expw"],
        splits=EXPW_SPLITS,
        roles=_ROLES,
        face_crop=FaceCrop("box", margin=0.0),  # the data set's own face boxes, as they are (as AffectNet's)
        eval_labels="expw",
        check=expw_image_dir,
    )
)
