"""``dan data pack`` and the ``packed`` format: a packed split yields exactly the original samples."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dan.data.check import check_dataset
from dan.data.dataset import load_sample_image
from dan.data.formats import get_format
from dan.data.options import ReadOptions
from dan.data.pack import MANIFEST, pack_dataset
from dan.data.packed import read_pack_manifest
from dan.errors import DanError
from tests.fakedata import make_affectnet_csv, make_ckplus, make_fer2013, make_ferplus, make_folder, make_rafdb

pytest.importorskip("litdata")

SOURCES = {
    "rafdb": lambda root: make_rafdb(root),
    "affectnet": lambda root: make_affectnet_csv(root),  # face boxes and valence/arousal
    "fer2013": lambda root: make_fer2013(root),  # in-memory pixels
    "ferplus": lambda root: make_ferplus(root),  # soft targets
    "folder": lambda root: make_folder(root),
    "ckplus": lambda root: make_ckplus(root),  # a role split ("train") made of listed folds
}


def _equal_splits(fmt_name: str, root: Path, packed: Path, options: ReadOptions) -> int:
    """Assert every split of the original and the packed copy holds the same samples; returns how many."""
    fmt, packed_fmt = get_format(fmt_name), get_format("packed")
    total = 0
    for split in read_pack_manifest(packed)["splits"]:
        original = fmt.read_split(root, split, options)
        copy = packed_fmt.read_split(packed, split)
        assert copy.label_names == original.label_names
        assert copy.labels == original.labels
        assert [s.box for s in copy.samples] == [s.box for s in original.samples]
        assert [s.source for s in copy.samples] == [s.source for s in original.samples]
        if original.va is None:
            assert copy.va is None
        else:
            np.testing.assert_array_equal(copy.va, original.va)
        if original.soft is None:
            assert copy.soft is None
        else:
            np.testing.assert_array_equal(copy.soft, original.soft)
        for i, sample in enumerate(original.samples):
            want = load_sample_image(sample, original.pixels, i)
            got = load_sample_image(copy.samples[i], copy.pixels, i, copy.images)
            np.testing.assert_array_equal(got, want)  # the bytes as stored: the same decoded, cropped pixels
        total += len(original)
    return total


@pytest.mark.parametrize("fmt_name", sorted(SOURCES))
def test_packed_split_equals_the_original(tmp_path: Path, fmt_name: str) -> None:
    root = tmp_path / fmt_name
    SOURCES[fmt_name](root)
    source = root / "fer2013.csv" if fmt_name == "fer2013" else root
    options = ReadOptions(soft_targets=True)
    lines: list[str] = []
    manifest = pack_dataset(fmt_name, source, tmp_path / "packed", options=options, say=lines.append)
    fmt = get_format(fmt_name)
    assert manifest["label_names"] == list(fmt.label_names(source, options))
    assert manifest["face_crop"]["crop"] == fmt.crop(source, options).crop
    assert lines[-1].startswith("packed ") and any("samples (" in line for line in lines)
    assert _equal_splits(fmt_name, source, tmp_path / "packed", options) == sum(manifest["splits"].values())
    packed = get_format("packed")
    assert packed.role_splits(tmp_path / "packed") == fmt.role_splits(source, options)
    assert not list(tmp_path.glob(".packed.packing-*"))  # the stage folder is gone


def test_check_reads_packed_data(tmp_path: Path) -> None:
    make_rafdb(tmp_path / "raf")
    pack_dataset("rafdb", tmp_path / "raf", tmp_path / "packed", say=lambda _: None)
    report = check_dataset("packed", tmp_path / "packed")
    original = check_dataset("rafdb", tmp_path / "raf")
    assert report.ok, report.text()
    assert report.counts == original.counts


def test_unfinished_pack_is_refused(tmp_path: Path) -> None:
    make_rafdb(tmp_path / "raf")
    pack_dataset("rafdb", tmp_path / "raf", tmp_path / "packed", say=lambda _: None)
    (tmp_path / "packed" / MANIFEST).unlink()  # what a pack killed before its last write leaves
    with pytest.raises(DanError, match="did not finish"):
        get_format("packed").label_names(tmp_path / "packed")
    report = check_dataset("packed", tmp_path / "packed")
    assert not report.ok and "did not finish" in report.text()


def test_pack_refuses_an_existing_output_and_a_bad_split(tmp_path: Path) -> None:
    make_rafdb(tmp_path / "raf")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "x").write_text("keep")
    with pytest.raises(DanError, match="exists"):
        pack_dataset("rafdb", tmp_path / "raf", tmp_path / "out", say=lambda _: None)
    with pytest.raises(DanError, match="no validation split"):
        pack_dataset("rafdb", tmp_path / "raf", tmp_path / "new", splits=["val"], say=lambda _: None)
    assert not (tmp_path / "new").exists()


def test_pack_one_split_and_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from dan.cli.data import main

    make_rafdb(tmp_path / "raf")
    argv = ["pack", "--format", "rafdb", "--root", str(tmp_path / "raf"), "--output", str(tmp_path / "p")]
    assert main([*argv, "--split", "test"]) == 0
    out = capsys.readouterr().out
    assert "packing RAF-DB test" in out and "lightning.ai" not in out
    manifest = json.loads((tmp_path / "p" / MANIFEST).read_text())
    assert list(manifest["splits"]) == ["test"] and manifest["roles"]["train"] is None
    assert main(["check", "--format", "packed", "--root", str(tmp_path / "p")]) == 0
