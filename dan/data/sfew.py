"""Reader for SFEW 2.0 (Static Facial Expressions in the Wild), its aligned-faces release.

Layout::

    ROOT/Train/<Class>/*.png      958 aligned faces in the public release
    ROOT/Val/<Class>/*.png        436
    Class: Angry, Disgust, Fear, Happy, Neutral, Sad, Surprise

The class folders become the ``sfew`` label set of :data:`dan.vocab.LABEL_SETS`: the canonical names
in SFEW's alphabetical folder order (anger, disgust, fear, happiness, neutral, sadness, surprise).
Split and class folder names are matched without regard to case (``train/happy/`` too). The Test
split's labels were never published: papers report on Val, so Val plays both the validation and the
test role. The aligned release has no face for some frames: the reader keeps what it finds, and
``dan data check`` reports a class without images.
"""

from __future__ import annotations

from pathlib import Path

from dan.data.folder import image_files
from dan.data.formats import DataFormat, FaceCrop, pick_split, register
from dan.data.samples import Issue, Sample, SplitData
from dan.errors import DanError
from dan.vocab import LABEL_SETS, canonical_class_name

__all__ = ["SFEW_ROLES", "SFEW_SPLITS", "read_sfew", "sfew_split_dir"]

SFEW_SPLITS = ("Train", "Val")
SFEW_ROLES = {"train": "Train", "val": "Val", "test": "Val"}  # no public test labels: papers report on Val
_FOLDERS = "Angry, Disgust, Fear, Happy, Neutral, Sad, Surprise"


def sfew_split_dir(root: Path, split: str) -> Path | None:
    """The folder of ``split`` (``Train`` or ``Val``) under ``root``, matched without regard to case."""
    if (root / split).is_dir():
        return root / split
    found = sorted(d for d in root.iterdir() if d.is_dir() and d.name.lower() == split.lower())
    return found[0] if found else None


def read_sfew(root: str | Path, split: str = "Train", strict: bool = True) -> SplitData:
    """Read one split of an SFEW 2.0 tree.

    Args:
        root: The folder holding ``Train/`` and ``Val/``.
        split: ``Train`` or ``Val`` (``train``, ``val``, ``validation``; ``test`` means ``Val``).
        strict: Raise on the first class folder that is not an SFEW expression instead of only
            recording it in ``issues``.

    Returns:
        The split's images, sorted by class folder then file name.

    Raises:
        DanError: Missing root or split folder, unknown split, an empty split; with ``strict``, a
            class folder that is not one of SFEW's seven.
    """
    root = Path(root)
    if not root.is_dir():
        raise DanError(f"{root}: SFEW root folder not found")
    key = pick_split(root, split, SFEW_SPLITS, SFEW_ROLES, "SFEW")
    split_dir = sfew_split_dir(root, key)
    if split_dir is None:
        raise DanError(f"{root / key}: SFEW split folder not found (expected {key}/<Class>/*.png under {root})")
    names = LABEL_SETS["sfew"]
    index = {name: i for i, name in enumerate(names)}
    samples: list[Sample] = []
    issues: list[Issue] = []
    for class_dir in sorted(d for d in split_dir.iterdir() if d.is_dir() and not d.name.startswith(".")):
        name = canonical_class_name(class_dir.name)
        if name not in index:
            message = f"class folder {class_dir.name!r} is not one of SFEW's {_FOLDERS}"
            issues.append(Issue(str(class_dir), None, message))
            continue
        samples += [Sample(str(p), index[name]) for p in image_files(class_dir)]
    data = SplitData("sfew", key, names, samples, str(split_dir), None, issues)
    return data.checked(strict)


def _check(root: Path) -> None:
    if not root.is_dir():
        raise DanError(f"{root}: SFEW root folder not found")
    if not any(sfew_split_dir(root, s) for s in SFEW_SPLITS):
        raise DanError(f"{root}: not an SFEW 2.0 folder (expected Train/<Class>/*.png and Val/<Class>/*.png)")


# SFEW 2.0 aligned faces: Train/<Class>/*.png, Val/<Class>/*.png (the test labels are not public)
register(
    DataFormat(
        name="sfew",
        title="SFEW",
        read=lambda root, split, o: read_sfew(root, split, o.strict),
        labels=LABEL_SETS["sfew"],
        splits=SFEW_SPLITS,
        roles=SFEW_ROLES,
        # landmark-aligned faces, as RAF-DB's aligned images: the image is the face. SFEW's own template
        # and size are not RAF-DB's; the record keeps RAF-DB's 100 px face, so a model fine-tuned from
        # the RAF-DB one keeps its preprocessing
        face_crop=FaceCrop("align", face_size=100),
        eval_labels="sfew",  # a reference-style model trained on these folders (ImageFolder order)
        check=_check,
    )
)
