"""FERPlus: FER2013's images, labels by FERPlus's majority vote, optional vote fractions."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from dan.data.check import check_dataset
from dan.data.datamodule import FERDataModule
from dan.data.ferplus import majority_label
from dan.data.formats import get_format
from dan.data.options import ReadOptions
from dan.data.readers import default_splits, read_split
from dan.errors import DanError
from dan.vocab import LABEL_SETS

import fakedata as fd


def test_the_majority_rule_of_ferplus() -> None:
    assert majority_label(fd.ferplus_votes(3)) == 3 and majority_label(fd.ferplus_votes(7, 1)) == 7
    for what, votes in fd.FERPLUS_DROPPED:
        assert majority_label(votes) is None, what
    assert majority_label([5, 1, 1, 1, 1, 1, 0, 0, 0, 0]) == 0  # single votes are outliers: 5 of 5
    assert majority_label([3, 3, 2, 0, 0, 0, 0, 0, 1, 1]) is None  # a tie at the top
    assert majority_label([0, 0, 6, 0, 0, 0, 4, 0, 0, 0]) == 2 and majority_label([0] * 10) is None


def test_reads_labels_pixels_and_usage_splits(tmp_path: Path) -> None:
    truth = fd.make_ferplus(tmp_path, {"Training": 2, "PublicTest": 1, "PrivateTest": 1})
    for usage, role in (("Training", "train"), ("PublicTest", "val"), ("PrivateTest", "test")):
        data = read_split("ferplus", tmp_path, role)
        assert data.split == usage and data.label_names == LABEL_SETS["ferplus"] and data.soft is None
        assert data.labels == [label for label, _, _ in truth[usage]]
        assert data.pixels is not None and all(np.array_equal(p, t[1]) for p, t in zip(data.pixels, truth[usage]))
        assert all(s.source.startswith(str(tmp_path / "fer2013.csv:")) for s in data.samples)
    train = read_split("ferplus", tmp_path, "train")
    assert train.class_counts() == {"neutral": 3, **dict.fromkeys(LABEL_SETS["ferplus"][1:], 2)}  # + 5/5 neutral
    assert default_splits("ferplus", tmp_path) == ("Training", "PublicTest", "PrivateTest")


def test_soft_targets_are_the_vote_fractions(tmp_path: Path) -> None:
    truth = fd.make_ferplus(tmp_path)
    data = get_format("ferplus").read_split(tmp_path, "train", ReadOptions(soft_targets=True))
    assert data.soft is not None and data.soft.shape == (len(data), 8) and data.soft.dtype == np.float32
    votes = np.array([t[2][:8] for t in truth["Training"]], np.float32)
    assert np.allclose(data.soft, votes / votes.sum(1, keepdims=True)) and np.allclose(data.soft.sum(1), 1)
    assert (data.soft.argmax(1) == np.array(data.labels)).all()
    rest, held = data.holdout(0.25, seed=0)  # a held-out share keeps each sample's own row
    assert held.soft is not None and rest.soft is not None and len(held.soft) == len(held)
    by_source = {s.source: row for s, row in zip(data.samples, data.soft)}
    assert all(np.array_equal(by_source[s.source], row) for s, row in zip(held.samples, held.soft))


def _rewrite(path: Path, line: int, column: int, value: str) -> None:
    rows = list(csv.reader(path.open(newline="")))
    rows[line - 1][column] = value
    with path.open("w", newline="") as f:
        csv.writer(f).writerows(rows)


def test_bad_rows_name_file_and_line(tmp_path: Path) -> None:
    fd.make_ferplus(tmp_path)
    new, old = tmp_path / "fer2013new.csv", tmp_path / "fer2013.csv"
    _rewrite(new, 3, 4, "two")
    with pytest.raises(DanError, match=r"fer2013new.csv:3: votes are not ten counts \(non-negative integers\)$"):
        read_split("ferplus", tmp_path, "train")
    assert len(read_split("ferplus", tmp_path, "train", ReadOptions(strict=False))) == 16  # the rest is read
    fd.make_ferplus(tmp_path)
    _rewrite(old, 2, 2, "PrivateTest")
    with pytest.raises(DanError, match=r"fer2013new.csv:2: Usage 'Training', but fer2013.csv:2 says 'PrivateTest'"):
        read_split("ferplus", tmp_path, "train")
    fd.make_ferplus(tmp_path)
    _rewrite(old, 4, 1, "1 2 3")
    with pytest.raises(DanError, match=r"fer2013.csv:4: pixels: 3 values, not a square 0..255 image"):
        read_split("ferplus", tmp_path, "train")
    fd.make_ferplus(tmp_path)
    old.write_text("".join(old.read_text().splitlines(keepends=True)[:-1]))
    with pytest.raises(DanError, match=r"fer2013new.csv: 50 rows, but fer2013.csv has 49: FERPlus needs one row per"):
        read_split("ferplus", tmp_path, "train")
    fd.make_ferplus(tmp_path)
    _rewrite(new, 1, 10, "unknwon")
    with pytest.raises(DanError, match=r"fer2013new.csv:1: missing column 'unknown' \(header: Usage, Image name"):
        read_split("ferplus", tmp_path, "train")
    new.unlink()
    with pytest.raises(DanError, match="fer2013new.csv: FERPlus vote file not found"):
        read_split("ferplus", tmp_path, "train")


def test_check_and_data_module(tmp_path: Path) -> None:
    fd.make_ferplus(tmp_path)
    report = check_dataset("ferplus", tmp_path)
    assert report.ok and report.counts["PrivateTest"] == {"neutral": 2, **dict.fromkeys(LABEL_SETS["ferplus"][1:], 1)}
    dm = FERDataModule(format="ferplus", root=str(tmp_path), image_size=16, batch_size=4, num_workers=0, seed=0)
    assert dm.num_classes == 8 and dm.val_split == "PublicTest" and dm.test_split == "PrivateTest"
    assert (dm.preprocessing.crop, dm.preprocessing.margin) == ("box", 0.1)
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    images, labels = batch["image"], batch["label"]
    assert images.shape == (4, 3, 16, 16) and labels.max() < 8
    assert len(dm.train_dataset) == 17 and len(dm.val_dataset) == 9 and len(dm.test_dataset) == 9


def test_soft_targets_through_the_data_module(tmp_path: Path) -> None:
    fd.make_ferplus(tmp_path)
    dm = FERDataModule(format="ferplus", root=str(tmp_path), soft_targets=True, num_workers=0, image_size=16)
    dm.setup()
    for ds in (dm.train_dataset, dm.val_dataset, dm.test_dataset):
        assert ds is not None and ds.data.soft is not None and ds.data.soft.shape == (len(ds), 8)
    plain = FERDataModule(format="ferplus", root=str(tmp_path), num_workers=0, image_size=16)
    plain.setup("fit")
    assert plain.train_dataset is not None and plain.train_dataset.data.soft is None
