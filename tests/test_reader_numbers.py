"""Non-finite and out-of-range numbers in every reader's files: one line naming the file and line, never a
traceback (on main, an ExpW box ``inf`` raised OverflowError and CK+ ``nan`` / ``inf`` ValueError or
OverflowError from ``int()`` and ``round()``)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from dan.cli.main import main
from dan.data.formats import ReadOptions, get_format
from dan.data.numbers import LIMIT, finite, whole
from dan.errors import DanError

import fakedata as fd


def _expw(root: Path, bad: str) -> tuple[Path, int]:
    fd.make_expw(root, photos_per_class=2)
    lst = root / "label" / "label.lst"
    lines = lst.read_text().splitlines()
    parts = lines[2].split()
    parts[{"box": 3, "confidence": 6, "label": 7}[bad.split(":")[0]]] = bad.split(":")[1]
    lines[2] = " ".join(parts)
    lst.write_text("\n".join(lines) + "\n")
    return lst, 3


def _ckplus_emotion(root: Path, bad: str) -> tuple[Path, int]:
    fd.make_ckplus(root, subjects=10, frames=3)
    path = sorted((root / "Emotion").rglob("*_emotion.txt"))[0]
    path.write_text(f"   {bad}\n")
    return path, 1


def _ckplus_landmarks(root: Path, bad: str) -> tuple[Path, int]:
    fd.make_ckplus(root, subjects=10, frames=3)
    for path in (root / "Landmarks").rglob("*_landmarks.txt"):  # every file: whichever a split reads first
        lines = path.read_text().splitlines()
        lines[1] = f"   {bad}"
        path.write_text("\n".join(lines) + "\n")
    return Path("_landmarks.txt"), 2


def _ferplus(root: Path, bad: str) -> tuple[Path, int]:
    fd.make_ferplus(root)
    path = root / "fer2013new.csv"
    rows = list(csv.reader(path.open()))
    rows[1][2] = bad
    with path.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    return path, 2


def _affectnet(root: Path, bad: str) -> tuple[Path, int]:
    fd.make_affectnet_csv(root)
    path = root / "Manually_Annotated_file_lists" / "training.csv"
    rows = list(csv.reader(path.open()))
    column, value = bad.split(":")
    rows[1][{"box": 1, "expression": 6, "valence": 7}[column]] = value
    with path.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    return path, 2


def _rafdb_va(root: Path, bad: str) -> tuple[Path, int]:
    fd.make_rafdb(root, train_per_class=2)
    path = root / "EmoLabel" / "valence_arousal.txt"
    path.write_text(f"train_00001.jpg 0.5 0.5\ntrain_00002.jpg {bad}\n")
    return path, 2


CASES = [
    ("expw", "train", _expw, "box:inf"),
    ("expw", "train", _expw, "box:nan"),
    ("expw", "train", _expw, "box:1e999"),
    ("expw", "train", _expw, "box:9e20"),
    ("expw", "train", _expw, "confidence:nan"),
    ("expw", "train", _expw, "label:inf"),
    ("ckplus", "train", _ckplus_emotion, "nan"),
    ("ckplus", "train", _ckplus_emotion, "inf"),
    ("ckplus", "train", _ckplus_emotion, "-inf"),
    ("ckplus", "train", _ckplus_landmarks, "nan nan"),
    ("ckplus", "train", _ckplus_landmarks, "inf 5"),
    ("ferplus", "Training", _ferplus, "nan"),
    ("ferplus", "Training", _ferplus, "inf"),
    ("ferplus", "Training", _ferplus, "1e40"),
    ("affectnet", "train", _affectnet, "box:inf"),
    ("affectnet", "train", _affectnet, "box:nan"),
    ("affectnet", "train", _affectnet, "expression:inf"),
    ("affectnet", "train", _affectnet, "valence:nan"),
    ("affectnet", "train", _affectnet, "valence:inf"),
    ("rafdb", "train", _rafdb_va, "nan 0.5"),
    ("rafdb", "train", _rafdb_va, "0.5 inf"),
    ("rafdb", "train", _rafdb_va, "2 0.5"),
]


@pytest.mark.parametrize(
    ("fmt", "split", "make", "bad"), CASES, ids=[f"{c[0]}-{c[2].__name__[1:]}-{c[3]}" for c in CASES]
)
def test_a_bad_number_names_the_file_and_line(fmt, split, make, bad, tmp_path: Path) -> None:
    root = tmp_path / "data"
    path, line = make(root, bad)
    with pytest.raises(DanError) as err:
        get_format(fmt).read_split(root, split, ReadOptions())
    message = str(err.value)
    assert "\n" not in message and f"{path}:{line}: " in message, message  # the whole path, or its end


@pytest.mark.parametrize("command", ["check", "evaluate"])
def test_expw_infinite_box_is_one_line_in_data_check_and_evaluate(command, tmp_path, tiny_checkpoint, capsys) -> None:
    """main: OverflowError tracebacks in both."""
    path, _ = _expw(tmp_path / "data", "box:inf")
    root = str(tmp_path / "data")
    if command == "check":
        assert main(["data", "check", "--format", "expw", "--root", root, "--no-decode"]) == 1
        assert f"{path}:3" in capsys.readouterr().out
    else:
        argv = ["evaluate", "--checkpoint", str(tiny_checkpoint), "--format", "expw", "--root", root]
        assert main([*argv, "--workers", "0", "--output", str(tmp_path / "r")]) == 1
        err = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("device: ")]
        assert len(err) == 1 and f"{path}:3" in err[0]


def test_number_helpers() -> None:
    assert finite(" 2.5 ") == 2.5 and whole("12") == 12 and whole("12.0") == 12 and whole("12.7", exact=False) == 12
    for bad in ("nan", "inf", "-inf", "1e999", "x", ""):
        with pytest.raises(ValueError):
            finite(bad)
    for bad in ("12.5", str(LIMIT + 1), "9e20", "inf"):
        with pytest.raises(ValueError):
            whole(bad)
