"""ExpW: face boxes cut from photos; a seeded, stratified 80/10/10 split by photo."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from dan.data.check import check_dataset
from dan.data.datamodule import FERDataModule
from dan.data.dataset import load_sample_image
from dan.data.formats import get_format
from dan.data.groups import deal_groups
from dan.data.options import ReadOptions
from dan.data.readers import read_split
from dan.errors import DanError
from dan.vocab import LABEL_SETS

import fakedata as fd


def _photos(root: Path, seed: int = 0) -> dict[str, set[str]]:
    expw = get_format("expw")
    return {
        s: {x.source for x in expw.read_split(root, s, ReadOptions(split_seed=seed)).samples}
        for s in ("train", "val", "test")
    }


@pytest.mark.parametrize("image_dir", ["image/origin", "origin"])
def test_boxes_labels_and_a_split_by_photo(tmp_path: Path, image_dir: str) -> None:
    truth = fd.make_expw(tmp_path, photos_per_class=3, image_dir=image_dir)
    faces = {
        (s.source, s.box): s.label
        for split in ("train", "val", "test")
        for s in read_split("expw", tmp_path, split).samples
    }
    wanted = {(str(tmp_path / image_dir / name), box): label for name, fs in truth.items() for _, box, label in fs}
    assert faces == wanted  # every face once, with its box and label
    data = read_split("expw", tmp_path, "train")
    assert data.label_names == LABEL_SETS["expw"] == LABEL_SETS["fer2013"]
    for sample in data.samples:  # the box cut from the photo is the face painted in the label's colour
        centre = load_sample_image(sample)[sample.box[3] // 2, sample.box[2] // 2].astype(int)  # type: ignore[index]
        assert np.abs(centre - fd.color_of(sample.label)).max() <= 8
    photos = _photos(tmp_path)
    assert (
        not (photos["train"] & photos["val"])
        and not (photos["train"] & photos["test"])
        and not (photos["val"] & photos["test"])
    )
    assert [len(photos[s]) for s in ("train", "val", "test")] == [17, 2, 2]  # 21 photos dealt into 10 parts


def test_the_split_is_seeded_and_stratified(tmp_path: Path) -> None:
    fd.make_expw(tmp_path)
    assert _photos(tmp_path, 0) == _photos(tmp_path, 0)
    assert _photos(tmp_path, 0)["test"] != _photos(tmp_path, 1)["test"]
    for split in ("val", "test"):  # every class in every split: 10 photos per class, one per part
        counts = read_split("expw", tmp_path, split).class_counts()
        assert min(counts.values()) >= 1 and sum(counts.values()) <= 12, counts
    parts = deal_groups({"a": [0], "b": [1, 0], "c": [0]}, 2, seed=3)
    assert parts == deal_groups({"c": [0], "a": [0], "b": [0, 1]}, 2, seed=3)  # listing order does not matter


def test_bad_lines_name_file_and_line(tmp_path: Path) -> None:
    fd.make_expw(tmp_path, photos_per_class=2)
    lst = tmp_path / "label" / "label.lst"
    lines = lst.read_text().splitlines()
    good = len(lines)
    bad = {
        2: ("angry_photo_000.jpg 0 1 2 3", "expected 8 fields"),
        4: (lines[3].rsplit(" ", 1)[0] + " 7", "expression '7' outside 0..6"),
        6: (" ".join([*lines[5].split()[:6], "high", "1"]), "face box, confidence or expression is not a number"),
        8: ("x.jpg 0 30 10 5 40 0.9 1", "empty face box (top 30, left 10, right 5, bottom 40)"),
    }
    for line, (text, _) in bad.items():
        lines[line - 1] = text
    lst.write_text("\n".join([*lines, lines[0]]) + "\n")  # and a duplicate of the first face
    with pytest.raises(DanError, match=r"label.lst:2: expected 8 fields .* \(and 3 more; run 'dan data check'"):
        read_split("expw", tmp_path, "train")
    report = check_dataset("expw", tmp_path, decode=False)
    found = {p.line: p.message for p in report.problems if p.path == str(lst)}
    for line, (_, message) in bad.items():
        assert message in found[line]
    assert "duplicate face 0 of " in found[good + 1] and "(first on line 1)" in found[good + 1]
    (tmp_path / "image" / "origin").rename(tmp_path / "photos")
    with pytest.raises(DanError, match=r"image/origin: ExpW photo folder not found \(also looked for .*origin\)"):
        read_split("expw", tmp_path, "train")


def test_check_and_data_module(tmp_path: Path) -> None:
    fd.make_expw(tmp_path)  # 10 photos per class: every class in every split
    report = check_dataset("expw", tmp_path)
    assert report.ok and sum(sum(c.values()) for c in report.counts.values()) == 70 + 24  # 24 second faces
    dm = FERDataModule(format="expw", root=str(tmp_path), image_size=16, batch_size=4, num_workers=0, seed=0)
    assert dm.num_classes == 7 and (dm.val_split, dm.test_split) == ("val", "test")
    assert (dm.preprocessing.crop, dm.preprocessing.margin) == ("box", 0.0)
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    images, labels = batch["image"], batch["label"]
    assert images.shape == (4, 3, 16, 16) and labels.shape == (4,)
    per_photo = defaultdict(set)
    for name, ds in (("train", dm.train_dataset), ("val", dm.val_dataset), ("test", dm.test_dataset)):
        for source, _ in ds.samples:
            per_photo[source].add(name)
    assert all(len(splits) == 1 for splits in per_photo.values())


def test_the_data_module_passes_the_split_seed(tmp_path: Path) -> None:
    fd.make_expw(tmp_path)
    for seed in (0, 5):
        dm = FERDataModule(format="expw", root=str(tmp_path), split_seed=seed, seed=1, image_size=16, num_workers=0)
        dm.setup("test")
        assert (
            dm.test_dataset is not None and {s for s, _ in dm.test_dataset.samples} == _photos(tmp_path, seed)["test"]
        )
