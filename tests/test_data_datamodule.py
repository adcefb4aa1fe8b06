"""FERDataModule: class info right after __init__, batches of the right shape, early errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dan.data.batch import DeviceTransform
from dan.data.datamodule import FERDataModule
from dan.data.sampler import EpochSampler
from dan.errors import DanError
from dan.preprocess import Preprocessing, prepare_face
from dan.vocab import LABEL_SETS

import fakedata as fd


def test_class_info_right_after_init_without_reading_lists(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    dm = FERDataModule(format="rafdb", root=str(tmp_path / "empty"))
    assert dm.num_classes == 7 and dm.label_names == LABEL_SETS["rafdb"]
    dm7 = FERDataModule(format="affectnet", root=str(tmp_path / "empty"), num_classes=7)
    assert dm7.num_classes == 7 and dm7.label_names == LABEL_SETS["affectnet7"]
    assert FERDataModule(format="affectnet", root=str(tmp_path)).num_classes == 8
    assert FERDataModule(format="fer2013", root=str(tmp_path)).label_names == LABEL_SETS["fer2013"]
    fd.make_folder(tmp_path / "tree", classes=("sad", "happy", "contempt"))
    tree = FERDataModule(format="folder", root=str(tmp_path / "tree"))
    assert tree.label_names == ("happiness", "sadness", "contempt") and tree.num_classes == 3
    assert tree.val_split == "val" and tree.test_split == "val"  # no test/ folder: test on val/
    with pytest.raises(DanError, match="list_patition_label.txt"):
        dm.setup("fit")  # the lists are checked in setup, before any training step


def test_batches_shapes_and_dtypes(tmp_path: Path) -> None:
    fd.make_rafdb(tmp_path, train_per_class=3, test_per_class=1)
    dm = FERDataModule(format="rafdb", root=str(tmp_path), image_size=32, batch_size=8, num_workers=0)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (8, 3, 32, 32) and batch["image"].dtype == torch.uint8  # normalised on the device
    assert batch["image"].is_contiguous(memory_format=torch.channels_last)  # the workers' (S, S, 3) layout
    assert batch["label"].shape == (8,) and batch["label"].dtype == torch.int64
    assert batch["erase"].shape == (8, 4) and batch["erase"].dtype == torch.int32
    assert len(dm.train_dataloader()) == 1  # 21 images - 7 held out = 14, batch 8, last partial batch dropped
    val = next(iter(dm.val_dataloader()))
    assert val["image"].shape == (7, 3, 32, 32) and sorted(val["label"].tolist()) == list(range(7))
    assert val["image"].dtype == torch.uint8 and (val["erase"] == -1).all()  # evaluation erases nothing
    old = FERDataModule(format="rafdb", root=str(tmp_path), image_size=32, batch_size=8, num_workers=0)
    old.device_transforms = False  # the all-CPU pipeline, kept for comparison
    old.setup("fit")
    images, labels = next(iter(old.train_dataloader()))
    assert images.shape == (8, 3, 32, 32) and images.dtype == torch.float32 and labels.dtype == torch.int64
    dm.setup("test")
    assert dm.test_dataset is not dm.val_dataset and len(dm.test_dataset) == 7 and dm.bad_files == 0


def test_validation_is_held_out_of_training_never_the_test_split(tmp_path: Path) -> None:
    fd.make_rafdb(tmp_path, train_per_class=20, test_per_class=2)
    dm = FERDataModule(format="rafdb", root=str(tmp_path), image_size=16, num_workers=0, val_fraction=0.25, seed=3)
    assert dm.val_split is None and dm.test_split == "test"
    dm.setup()
    train = {s for s, _ in dm.train_dataset.samples}
    val = {s for s, _ in dm.val_dataset.samples}
    test = {s for s, _ in dm.test_dataset.samples}
    assert len(val) == 35 and len(train) == 105 and not (train & val) and not (val & test)
    assert all("train_" in Path(s).name for s in val)
    assert dm.val_dataset.class_counts() == dict.fromkeys(LABEL_SETS["rafdb"], 5)  # stratified
    again = FERDataModule(format="rafdb", root=str(tmp_path), image_size=16, num_workers=0, val_fraction=0.25, seed=3)
    again.setup("validate")
    assert {s for s, _ in again.val_dataset.samples} == val  # the same seed holds out the same faces
    other = FERDataModule(format="rafdb", root=str(tmp_path), image_size=16, num_workers=0, val_fraction=0.25, seed=4)
    other.setup("validate")
    assert {s for s, _ in other.val_dataset.samples} != val
    named = FERDataModule(format="rafdb", root=str(tmp_path), image_size=16, num_workers=0, val_split="test")
    named.setup("fit")
    assert len(named.train_dataset) == 140 and len(named.val_dataset) == 14  # the reference's protocol, on request
    with pytest.raises(DanError, match="no validation split: set data.val_fraction"):
        FERDataModule(format="rafdb", root=str(tmp_path), val_fraction=0.0).setup("fit")


def test_fer2013_defaults_and_balanced_sampler(tmp_path: Path) -> None:
    fd.make_fer2013(tmp_path, {"Training": 3, "PublicTest": 1, "PrivateTest": 2})
    dm = FERDataModule(
        format="fer2013", root=str(tmp_path), image_size=24, batch_size=4, eval_batch_size=5, balanced_sampler=True
    )
    dm.num_workers = 0
    dm.setup()
    assert (dm.val_split, dm.test_split) == ("PublicTest", "PrivateTest")
    assert len(dm.val_dataset) == 7 and len(dm.test_dataset) == 14
    loader = dm.train_dataloader()
    assert isinstance(loader.sampler, EpochSampler) and loader.sampler.balanced and len(loader.sampler) == 21
    batch = next(iter(loader))
    assert batch["image"].shape == (4, 3, 24, 24) and batch["label"].dtype == torch.int64
    assert next(iter(dm.test_dataloader()))["image"].shape == (5, 3, 24, 24)


def test_early_errors(tmp_path: Path) -> None:
    with pytest.raises(DanError, match="data root not found"):
        FERDataModule(format="rafdb", root=str(tmp_path / "missing"))
    with pytest.raises(DanError, match="data.format='imagenet'"):
        FERDataModule(format="imagenet", root=str(tmp_path))
    with pytest.raises(DanError, match="not num_classes=8"):
        FERDataModule(format="rafdb", root=str(tmp_path), num_classes=8)
    with pytest.raises(DanError, match="data.augment='strong'"):
        FERDataModule(format="rafdb", root=str(tmp_path), augment="strong")


def test_a_class_without_training_images_stops_before_training(tmp_path: Path) -> None:
    fd.make_folder(tmp_path, classes=("happy", "sad", "angry"))
    for image in (tmp_path / "train" / "angry").iterdir():
        image.unlink()  # the class folder is there, its images are not
    dm = FERDataModule(format="folder", root=str(tmp_path), image_size=16, num_workers=0)
    with pytest.raises(DanError, match=r"class 'anger' has no training images"):
        dm.setup("fit")


def test_one_preprocessing_record_for_every_loader(tmp_path: Path) -> None:
    fd.make_rafdb(tmp_path, train_per_class=3, test_per_class=1, original=True)
    dm = FERDataModule(
        format="rafdb",
        root=str(tmp_path),
        image_size=24,
        mean=(0.5, 0.5, 0.5),
        std=(0.25, 0.25, 0.25),
        resize="bicubic",
        num_workers=0,
    )
    record = Preprocessing(input_size=24, mean=(0.5,) * 3, std=(0.25,) * 3, resize="bicubic", crop="align")
    assert dm.preprocessing == record  # the format's face crop (aligned RAF-DB faces) and the image options
    dm.setup()
    for ds in (dm.train_dataset, dm.val_dataset, dm.test_dataset):
        assert ds.transform.pre is dm.preprocessing
    image = dm.test_dataset.load(0)
    finished = DeviceTransform(record)(dm.test_dataset[0]["image"][None])[0]  # (1, 3, S, S) -> (3, S, S)
    assert torch.equal(finished, torch.from_numpy(prepare_face(image, record)))
    original = FERDataModule(format="rafdb", root=str(tmp_path), rafdb_images="original")
    assert (original.preprocessing.crop, original.preprocessing.margin) == ("box", 0.2)
    with pytest.raises(DanError, match=r"data\.preprocessing\.std=0: must be between"):
        FERDataModule(format="rafdb", root=str(tmp_path), std=(1, 0, 1))
