"""Readers: every layout read back with the right labels and counts, and every bad input rejected."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dan.data.dataset import FERDataset
from dan.data.options import ReadOptions
from dan.data.readers import default_splits, format_label_names, read_split
from dan.errors import DanError
from dan.vocab import LABEL_SETS, canonical_class_name

import fakedata as fd


def test_rafdb_reads_labels_counts_and_image_variants(tmp_path: Path) -> None:
    truth = fd.make_rafdb(tmp_path, train_per_class=2, test_per_class=1, original=True)
    train = read_split("rafdb", tmp_path, "train")
    assert train.label_names == LABEL_SETS["rafdb"]
    assert [(Path(s.source).name, s.label) for s in train.samples] == [
        (n.replace(".jpg", "_aligned.jpg"), lab) for n, lab in truth["train"]
    ]
    assert train.class_counts() == dict.fromkeys(LABEL_SETS["rafdb"], 2)
    test = read_split("rafdb", tmp_path, "testing")
    assert test.split == "test" and len(test) == 7 and test.samples[0].line == 15
    with pytest.raises(DanError, match=r"the RAF-DB data set has no validation split \(its splits: train, test\)"):
        read_split("rafdb", tmp_path, "val")  # never the test split in its place
    original = read_split("rafdb", tmp_path, "train", ReadOptions(rafdb_images="original"))
    assert all("/Image/original/train_" in s.source for s in original.samples)
    image = FERDataset(original).load(0)
    assert image.shape == (48, 48, 3)


def test_affectnet_csv_drops_non_emotions_and_crops_faces(tmp_path: Path) -> None:
    truth = fd.make_affectnet_csv(tmp_path, per_class=2, header_val=False)
    train8 = read_split("affectnet", tmp_path, "train", ReadOptions(num_classes=8))
    assert [s.label for s in train8.samples] == truth["training"]
    assert train8.class_counts() == dict.fromkeys(LABEL_SETS["affectnet8"], 2)
    train7 = read_split("affectnet", tmp_path, "train", ReadOptions(num_classes=7))
    assert len(train7) == 14 and max(s.label for s in train7.samples) == 6
    assert train7.label_names == LABEL_SETS["affectnet7"]
    val = read_split("affectnet", tmp_path, "val")  # validation.csv has no header row here
    assert val.split == "validation" and [s.label for s in val.samples] == truth["validation"]
    ds = FERDataset(val)
    face = ds.load(5)
    assert face.shape == (36, 40, 3)  # the face box, not the 64x48 image
    assert tuple(face[18, 20]) == fd.color_of(val.samples[5].label)


def test_affectnet_npy_and_class_folder_layouts(tmp_path: Path) -> None:
    truth = fd.make_affectnet_npy(tmp_path / "npy")
    npy = read_split("affectnet", tmp_path / "npy", "train")
    assert [s.label for s in npy.samples] == sorted(truth["train_set"])
    assert len(read_split("affectnet", tmp_path / "npy", "validation", ReadOptions(num_classes=7))) == 7
    fd.make_affectnet_folders(tmp_path / "fold", per_class=2)
    folders = read_split("affectnet", tmp_path / "fold", "validation", ReadOptions(num_classes=8))
    assert folders.class_counts() == dict.fromkeys(LABEL_SETS["affectnet8"], 2)
    pixel = FERDataset(folders).load(len(folders) - 1)[0, 0]
    assert tuple(pixel) == pytest.approx(fd.color_of(7), abs=3)


def test_fer2013_splits_and_pixels(tmp_path: Path) -> None:
    truth = fd.make_fer2013(tmp_path, {"Training": 2, "PublicTest": 1, "PrivateTest": 1})
    train = read_split("fer2013", tmp_path, "train")
    assert train.split == "Training" and len(train) == 14
    assert train.class_counts() == dict.fromkeys(LABEL_SETS["fer2013"], 2)
    test = read_split("fer2013", tmp_path / "fer2013.csv", "PrivateTest")
    ds = FERDataset(test)
    label, pixels = truth["PrivateTest"][3]
    image = ds.load(3)
    assert ds.samples[3][1] == label and image.shape == (48, 48, 3)
    assert np.array_equal(image[..., 0], pixels) and np.array_equal(image[..., 2], pixels)
    assert default_splits("fer2013", tmp_path) == ("Training", "PublicTest", "PrivateTest")


def test_folder_synonyms_order_and_split_aliases(tmp_path: Path) -> None:
    fd.make_folder(tmp_path, classes=("happy", "Sad", "angry", "neutral", "surprised"), splits=("train", "validation"))
    names = format_label_names("folder", tmp_path)
    assert names == ("neutral", "happiness", "sadness", "surprise", "anger")  # AffectNet-8 order
    val = read_split("folder", tmp_path, "val")
    assert val.split == "validation" and val.class_counts() == dict.fromkeys(names, 2)
    ds = FERDataset(val)
    for i, (_, label) in enumerate(ds.samples):
        folder = Path(ds.samples[i][0]).parent.name
        assert names[label] == canonical_class_name(folder)
    assert canonical_class_name("Fearful") == "fear" and canonical_class_name("disgusted") == "disgust"
    assert default_splits("folder", tmp_path)[1] == "validation"


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


@pytest.mark.parametrize("fmt", ["rafdb", "affectnet", "fer2013", "folder", "sfew", "ferplus", "expw", "ckplus"])
def test_missing_root(tmp_path: Path, fmt: str) -> None:
    with pytest.raises(DanError, match="nowhere"):
        read_split(fmt, tmp_path / "nowhere", "train")


def test_rafdb_bad_inputs_name_file_and_line(tmp_path: Path) -> None:
    fd.make_rafdb(tmp_path)
    list_file = tmp_path / "EmoLabel" / "list_patition_label.txt"
    lines = _lines(list_file)
    lines[4] = "train_00005.jpg 9"
    list_file.write_text("\n".join(lines) + "\n")
    with pytest.raises(DanError, match=r"list_patition_label\.txt:5: label '9' outside 1\.\.7"):
        read_split("rafdb", tmp_path, "train")
    assert len(read_split("rafdb", tmp_path, "train", ReadOptions(strict=False)).issues) == 1
    list_file.write_text("\n".join(x for x in lines if x.startswith("train")) + "\n")
    with pytest.raises(DanError, match="split 'test' of the rafdb data set is empty"):
        read_split("rafdb", tmp_path, "test")
    list_file.unlink()
    with pytest.raises(DanError, match="list_patition_label.txt: RAF-DB list file not found"):
        read_split("rafdb", tmp_path, "train")
    with pytest.raises(DanError, match="no split 'dev'"):
        read_split("rafdb", tmp_path, "dev")


def test_affectnet_bad_inputs(tmp_path: Path) -> None:
    fd.make_affectnet_csv(tmp_path, per_class=1, extra=(11,))
    csv_file = tmp_path / "Manually_Annotated_file_lists" / "training.csv"
    with pytest.raises(DanError, match=r"training\.csv:10: expression 11 outside 0\.\.10"):
        read_split("affectnet", tmp_path, "train")
    lines = _lines(csv_file)
    csv_file.write_text("\n".join([lines[0].replace("expression", "emotion"), *lines[1:]]) + "\n")
    with pytest.raises(DanError, match=r"training\.csv:1: missing column 'expression'"):
        read_split("affectnet", tmp_path, "train")
    with pytest.raises(DanError, match="7 or 8 classes"):
        read_split("affectnet", tmp_path, "validation", ReadOptions(num_classes=6))
    (tmp_path / "Manually_Annotated_file_lists" / "validation.csv").unlink()
    with pytest.raises(DanError, match=r"validation\.csv: AffectNet list file not found"):
        read_split("affectnet", tmp_path, "validation")


def test_fer2013_bad_inputs(tmp_path: Path) -> None:
    fd.make_fer2013(tmp_path, {"Training": 1, "PublicTest": 1})
    csv_file = tmp_path / "fer2013.csv"
    with pytest.raises(DanError, match="split 'PrivateTest' of the fer2013 data set is empty"):
        read_split("fer2013", tmp_path, "test")
    lines = _lines(csv_file)
    bad = lines[3].split(",")
    bad[0] = "7"
    csv_file.write_text("\n".join([*lines[:3], ",".join(bad), *lines[4:]]) + "\n")
    with pytest.raises(DanError, match=r"fer2013\.csv:4: emotion '7' outside 0\.\.6"):
        read_split("fer2013", tmp_path, "train")
    lines[2] = lines[2][:-40] + ",Training"  # pixels cut short
    csv_file.write_text("\n".join(lines) + "\n")
    with pytest.raises(DanError, match=r"fer2013\.csv:3: pixels: .* not a square"):
        read_split("fer2013", tmp_path, "train")
    csv_file.write_text("emotion,pixels,Usage\n0,1 2 3 4,Training\n1,2222222214 2 3 4,Training\n")  # found by fuzzing
    with pytest.raises(DanError, match=r"fer2013\.csv:3: pixels are not space-separated integers"):
        read_split("fer2013", tmp_path, "train")
    csv_file.write_text("emotion,pixels\n0,1 2 3 4\n")
    with pytest.raises(DanError, match=r"fer2013\.csv:1: missing column 'Usage'"):
        read_split("fer2013", tmp_path, "train")


def test_folder_bad_inputs(tmp_path: Path) -> None:
    fd.make_folder(tmp_path, splits=("train",))
    with pytest.raises(DanError, match=r"class-folder data set has no validation split \(its splits: train\)"):
        read_split("folder", tmp_path, "val")
    with pytest.raises(DanError, match="has no split 'dev': use train"):
        read_split("folder", tmp_path, "dev")
    (tmp_path / "test" / "happy").mkdir(parents=True)
    with pytest.raises(DanError, match="split 'test' of the folder data set is empty"):
        read_split("folder", tmp_path, "test")
    with pytest.raises(DanError, match="has 4 classes, not num_classes=7"):
        read_split("folder", tmp_path, "train", ReadOptions(num_classes=7))
    with pytest.raises(DanError, match="unknown data format"):
        read_split("imagenet", tmp_path, "train")
