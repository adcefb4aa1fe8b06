"""Reader for CK+ (the Extended Cohn-Kanade data set): posed expression sequences, subject-independent folds.

Layout::

    ROOT/cohn-kanade-images/S005/001/S005_001_00000001.png ... S005_001_00000011.png   (frames)
    ROOT/Emotion/S005/001/S005_001_00000011_emotion.txt      one code: 1 anger, 2 contempt, 3 disgust,
                                                             4 fear, 5 happy, 6 sadness, 7 surprise
    ROOT/Landmarks/S005/001/S005_001_00000011_landmarks.txt  68 "x y" lines per frame (optional)

Only sequences with an emotion file are labelled (327 of 593). The usual protocol: the last
``peak_frames`` frames (default 3) up to the labelled frame carry the sequence's expression; with
``first_frame_neutral`` (default off) the first frame is also taken, as ``neutral``. The classes are
CK+'s codes in order: ``ckplus7`` (anger .. surprise, code 1 is index 0) by default, ``ckplus``
(neutral first, code 0) with neutral frames.

Splits: ``folds`` (default 10) subject-independent folds ``fold0`` .. ``fold9``: the subjects are dealt
into folds by :func:`dan.data.groups.deal_groups`, stratified by each subject's rarest expression and
seeded by ``split_seed`` (default 0). ``fold`` (default 0) is the test fold; the next fold
(``fold + 1``, wrapping) validates, because CK+'s frames of a sequence are near copies: a validation
share held out of the training frames would hold the same faces. ``train`` is every other fold. A
cross-validation trains once per fold and averages; no subject is ever in two of a run's splits.

Faces: a detector is no part of the data layer, and the frames are full 640 x 490 pictures in which
the face is about a third of the width. The face box is taken from each frame's ``Landmarks/`` file:
the landmarks' bounding box, squared, plus :data:`CKPLUS_MARGIN` of its side on each side, which is
what the ``box`` crop of the model's record (margin 0.1) does at inference with a detector's box (a
detector's box also covers the forehead, the landmarks stop at the brows). Without ``Landmarks/`` the
frames are used as they are (faces cropped beforehand, for instance); ``dan data check`` says so.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dan.data.formats import DataFormat, FaceCrop, pick_split, register
from dan.data.groups import deal_groups
from dan.data.options import ReadOptions
from dan.data.samples import Issue, Sample, SplitData
from dan.errors import DanError
from dan.imaging import list_images
from dan.vocab import LABEL_SETS

__all__ = ["CKPLUS_MARGIN", "ckplus_label_names", "ckplus_roles", "ckplus_splits", "read_ckplus"]

CKPLUS_MARGIN = 0.1
_IMAGES, _EMOTION, _LANDMARKS = "cohn-kanade-images", "Emotion", "Landmarks"


def ckplus_label_names(options: ReadOptions) -> tuple[str, ...]:
    """``ckplus`` (neutral first) with ``first_frame_neutral``, else ``ckplus7``."""
    return LABEL_SETS["ckplus" if options.first_frame_neutral else "ckplus7"]


def ckplus_splits(options: ReadOptions) -> tuple[str, ...]:
    """The folds, ``fold0`` .. ``fold<folds - 1>``."""
    return tuple(f"fold{i}" for i in range(options.folds))


def ckplus_roles(options: ReadOptions) -> dict[str, str | None]:
    """Test: fold ``fold``; validation: the next fold; training: ``train``, every other fold."""
    return {"train": "train", "val": f"fold{(options.fold + 1) % options.folds}", "test": f"fold{options.fold}"}


def _code(path: Path, issues: list[Issue]) -> int | None:
    words = path.read_text(encoding="utf-8-sig", errors="replace").split()
    try:
        value = float(words[0]) if len(words) == 1 else -1.0
    except ValueError:
        value = -1.0
    if value != int(value) or not 1 <= value <= 7:
        issues.append(Issue(str(path), 1, f"expected one emotion code 1..7, got {' '.join(words)[:40]!r}"))
        return None
    return int(value)


def _labelled_frames(root: Path, options: ReadOptions, issues: list[Issue]) -> list[tuple[str, Sample]]:
    """``(subject, sample)`` for every frame the options take from a labelled sequence."""
    neutral = options.first_frame_neutral
    frames: list[tuple[str, Sample]] = []
    for path in sorted((root / _EMOTION).glob("*/*/*_emotion.txt")):
        code = _code(path, issues)
        if code is None:
            continue
        subject, sequence = path.parent.parent.name, path.parent.name
        sequence_dir = root / _IMAGES / subject / sequence
        paths = list_images(sequence_dir) if sequence_dir.is_dir() else []
        names = [p.stem for p in paths]
        peak = path.name[: -len("_emotion.txt")]
        if peak not in names:
            issues.append(Issue(str(path), None, f"its frame {peak}.png is not in {sequence_dir}"))
            continue
        end = names.index(peak) + 1
        start = max(0, end - options.peak_frames)
        take = [(p, code if neutral else code - 1) for p in paths[start:end]]
        if neutral and start > 0:
            take.insert(0, (paths[0], 0))
        frames += [(subject, Sample(str(p), label)) for p, label in take]
    return frames


def _box(path: Path, issues: list[Issue]) -> tuple[int, int, int, int] | None:
    """The landmarks' bounding box, squared, plus the margin: ``(x, y, w, h)``."""
    if not path.is_file():
        issues.append(Issue(str(path), None, "landmarks file missing (every frame taken needs one)"))
        return None
    points = []
    for lineno, raw in enumerate(path.read_text(encoding="utf-8-sig", errors="replace").splitlines(), start=1):
        words = raw.split()
        try:
            if words:
                x, y = (float(w) for w in words)
                points.append((x, y))
        except ValueError:
            issues.append(Issue(str(path), lineno, f"expected 'x y', got {raw.strip()[:40]!r}"))
            return None
    if len(points) < 2:
        issues.append(Issue(str(path), None, f"{len(points)} landmark(s); a face box needs at least 2"))
        return None
    pts = np.asarray(points)  # (N, 2)
    (x0, y0), (x1, y1) = pts.min(0), pts.max(0)
    side = max(x1 - x0, y1 - y0) * (1 + 2 * CKPLUS_MARGIN)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return round(cx - side / 2), round(cy - side / 2), round(side), round(side)


def read_ckplus(root: str | Path, split: str = "train", options: ReadOptions | None = None) -> SplitData:
    """Read one fold of CK+, or the training split of ``options.fold`` (see the module docstring).

    Args:
        root: The folder holding ``cohn-kanade-images/``, ``Emotion/`` and (optionally) ``Landmarks/``.
        split: ``fold0`` .. ``fold<folds - 1>``, ``train`` (every fold but ``options.fold`` and the
            next one), or a role (``val``: the next fold, ``test``: ``options.fold``).
        options: Folds, fold, seed, peak frames, neutral frames and ``strict``.

    Raises:
        DanError: Missing root or folder, unknown split, fewer labelled subjects than folds, an empty
            split; with ``strict``, an unreadable emotion or landmarks file (naming it, and the line).
    """
    root, options = Path(root), options or ReadOptions()
    _check(root)
    key = pick_split(root, split, ckplus_splits(options), ckplus_roles(options), "CK+")
    issues: list[Issue] = []
    frames = _labelled_frames(root, options, issues)
    subjects: dict[str, list[int]] = {}
    for subject, sample in frames:
        subjects.setdefault(subject, []).append(sample.label)
    if len(subjects) < options.folds:
        raise DanError(f"{root / _EMOTION}: {len(subjects)} labelled subject(s), too few for folds={options.folds}")
    fold = deal_groups(subjects, options.folds, options.split_seed)
    if key == "train":
        held = {options.fold, (options.fold + 1) % options.folds}
        samples = [s for subject, s in frames if fold[subject] not in held]
    else:
        samples = [s for subject, s in frames if fold[subject] == int(key.removeprefix("fold"))]
    if (root / _LANDMARKS).is_dir():
        boxed = []
        for s in samples:
            frame = Path(s.source)
            marks = root / _LANDMARKS / frame.parent.parent.name / frame.parent.name / f"{frame.stem}_landmarks.txt"
            box = _box(marks, issues)
            if box is not None:
                boxed.append(Sample(s.source, s.label, box))
        samples = boxed
    else:
        message = f"no {_LANDMARKS}/ folder: the frames are used whole (face-crop them first; see dan.data.ckplus)"
        issues.append(Issue(str(root), None, message, False))
    data = SplitData("ckplus", key, ckplus_label_names(options), samples, str(root / _EMOTION), None, issues)
    return data.checked(options.strict)


def _check(root: Path) -> None:
    if not root.is_dir():
        raise DanError(f"{root}: CK+ root folder not found")
    for name in (_IMAGES, _EMOTION):
        if not (root / name).is_dir():
            raise DanError(f"{root / name}: CK+ folder not found (expected {_IMAGES}/ and {_EMOTION}/ under {root})")


# CK+: cohn-kanade-images/ sequences, Emotion/ codes, Landmarks/ for face boxes; subject-independent folds
register(
    DataFormat(
        name="ckplus",
        title="CK+",
        read=read_ckplus,
        labels=lambda root, o: ckplus_label_names(o),
        splits=lambda root, o: ckplus_splits(o),
        roles=lambda root, o: ckplus_roles(o),
        face_crop=FaceCrop("box", margin=CKPLUS_MARGIN),  # the landmarks' box, squared, plus 10 %
        eval_labels=None,  # 7 or 8 classes, and a 7-class file without names is most likely RAF-DB's: ask
        check=_check,
    )
)
