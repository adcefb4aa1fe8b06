"""A UTF-8 byte order mark (what Windows editors write) at the start of a list file is read like none."""

from __future__ import annotations

from pathlib import Path

import pytest

from dan.data.options import ReadOptions
from dan.data.readers import read_split

import fakedata as fd

BOM = b"\xef\xbb\xbf"


def _with_bom(path: Path, crlf: bool = False) -> None:
    data = path.read_bytes()
    if crlf:
        data = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    path.write_bytes(BOM + data)


def _labels(fmt: str, root: Path, split: str) -> list[tuple[str, int]]:
    data = read_split(fmt, root, split, ReadOptions(strict=True))  # strict: any issue (a line it cannot read) raises
    return [(Path(s.source).name, s.label) for s in data.samples]


@pytest.mark.parametrize(
    ("fmt", "make", "files", "split"),
    [
        ("rafdb", fd.make_rafdb, ["EmoLabel/list_patition_label.txt"], "train"),  # the first line is a sample
        ("affectnet", fd.make_affectnet_csv, ["Manually_Annotated_file_lists/training.csv"], "train"),  # header
        ("fer2013", fd.make_fer2013, ["fer2013.csv"], "train"),  # header
        ("ferplus", fd.make_ferplus, ["fer2013.csv", "fer2013new.csv"], "train"),  # headers
        ("expw", fd.make_expw, ["label/label.lst"], "train"),  # the first line is a sample
    ],
)
@pytest.mark.parametrize("crlf", [False, True])
def test_a_bom_is_read_like_none(tmp_path: Path, fmt: str, make, files: list[str], split: str, crlf: bool) -> None:
    make(tmp_path)
    expected = _labels(fmt, tmp_path, split)
    for name in files:
        _with_bom(tmp_path / name, crlf)
    assert _labels(fmt, tmp_path, split) == expected
