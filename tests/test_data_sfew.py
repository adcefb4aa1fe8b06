"""SFEW 2.0: Train/ and Val/ class folders of aligned faces; Val is also the test split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dan.cli.main import main
from dan.data.check import check_dataset
from dan.data.datamodule import FERDataModule
from dan.data.dataset import load_sample_image
from dan.data.formats import get_format
from dan.data.options import ReadOptions
from dan.data.readers import default_splits, read_split
from dan.errors import DanError
from dan.vocab import LABEL_SETS

import fakedata as fd


def test_reads_classes_in_folder_order_and_val_is_the_test_split(tmp_path: Path) -> None:
    truth = fd.make_sfew(tmp_path, {"Train": 2, "Val": 1})
    train = read_split("sfew", tmp_path, "train")
    assert train.split == "Train" and train.label_names == LABEL_SETS["sfew"]
    assert train.label_names == ("anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise")
    assert sorted(train.labels) == sorted(truth["Train"]) and len(train) == 14
    for sample in train.samples:  # the folder's colour came with the folder's label
        assert tuple(load_sample_image(sample)[0, 0]) == fd.color_of(sample.label)
    happy = [s for s in train.samples if "/Happy/" in s.source]
    assert {s.label for s in happy} == {LABEL_SETS["sfew"].index("happiness")}
    assert read_split("sfew", tmp_path, "val").split == "Val" and read_split("sfew", tmp_path, "test").split == "Val"
    assert default_splits("sfew", tmp_path) == ("Train", "Val", "Val")
    assert get_format("sfew").crop(tmp_path).crop == "align"


def test_folder_names_in_any_case(tmp_path: Path) -> None:
    for split, n in (("train", 2), ("val", 1)):
        for folder in ("happy", "SAD"):
            for k in range(n):
                fd.write_image(tmp_path / split / folder / f"{k}.png", np.zeros((8, 8, 3), np.uint8))
    data = read_split("sfew", tmp_path, "Train")
    assert data.split == "Train" and data.class_counts()["sadness"] == 2
    assert len(read_split("sfew", tmp_path, "val")) == 2


def test_an_unknown_class_folder_names_the_folder(tmp_path: Path) -> None:
    fd.make_sfew(tmp_path)
    fd.write_image(tmp_path / "Train" / "Bored" / "0.png", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(DanError, match=r"Train/Bored: class folder 'Bored' is not one of SFEW's Angry, Disgust"):
        read_split("sfew", tmp_path, "train")
    assert len(read_split("sfew", tmp_path, "train", ReadOptions(strict=False))) == 14  # check: listed, the rest read
    with pytest.raises(DanError, match=r"SFEW has no split 'Holdout': use Train, Val"):
        read_split("sfew", tmp_path, "Holdout")
    assert read_split("sfew", tmp_path, "Test").split == "Val"  # the test role: Val, its labels are public
    (tmp_path / "Val").rename(tmp_path / "Val2")
    with pytest.raises(DanError, match=r"Val: SFEW split folder not found \(expected Val/<Class>/\*.png under"):
        read_split("sfew", tmp_path, "val")
    with pytest.raises(DanError, match="not an SFEW 2.0 folder"):
        get_format("sfew").check(tmp_path / "Train")  # type: ignore[misc]


def test_check_reports_counts_and_an_empty_class(tmp_path: Path, capsys) -> None:
    fd.make_sfew(tmp_path, {"Train": 2, "Val": 1}, empty=("Fear",))
    report = check_dataset("sfew", tmp_path)
    assert report.counts["Train"]["fear"] == 0 and report.counts["Val"]["happiness"] == 1
    assert [str(p) for p in report.problems] == [f"{tmp_path}: class 'fear' has no images in any split"]
    assert main(["data", "check", "--format", "sfew", "--root", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "Train" in out and "Val" in out and "class 'fear' has no images" in out
    with pytest.raises(DanError, match="class 'fear' has no training images"):  # training refuses it
        FERDataModule(format="sfew", root=str(tmp_path), num_workers=0).setup("fit")


def test_data_module_batches(tmp_path: Path) -> None:
    fd.make_sfew(tmp_path, {"Train": 3, "Val": 1})
    dm = FERDataModule(format="sfew", root=str(tmp_path), image_size=16, batch_size=4, num_workers=0, seed=0)
    assert dm.num_classes == 7 and dm.val_split == "Val" and dm.test_split == "Val"
    assert (dm.preprocessing.crop, dm.preprocessing.face_size) == ("align", 100)
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    images, labels = batch["image"], batch["label"]
    assert images.shape == (4, 3, 16, 16) and labels.shape == (4,)
    assert len(dm.train_dataset) == 21 and len(dm.val_dataset) == 7 and dm.test_dataset is dm.val_dataset
