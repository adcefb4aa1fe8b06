"""The format registry: one record per layout, read by everything; a new layout is one file and one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dan.data import formats
from dan.data.check import check_dataset
from dan.data.datamodule import FERDataModule
from dan.data.formats import FORMATS, DataFormat, FaceCrop, get_format, register
from dan.data.options import ReadOptions
from dan.data.readers import default_splits, read_split
from dan.data.samples import Sample, SplitData
from dan.errors import DanError
from dan.vocab import FACE_CROPS, FORMAT_NAMES, LABEL_SETS

import fakedata as fd

BUILDERS = {
    "rafdb": fd.make_rafdb,
    "affectnet": fd.make_affectnet_csv,
    "fer2013": fd.make_fer2013,
    "folder": fd.make_folder,
    "sfew": fd.make_sfew,
    "ferplus": fd.make_ferplus,
    "expw": fd.make_expw,
    "ckplus": fd.make_ckplus,
    "packed": fd.make_packed,
}


@pytest.mark.parametrize("name", FORMAT_NAMES)
def test_every_record_describes_its_data_set(tmp_path: Path, name: str) -> None:
    BUILDERS[name](tmp_path)  # every format has a fixture writer
    fmt = get_format(name)
    assert fmt is FORMATS[name] and fmt.name == name and fmt.title
    if fmt.check is not None:
        fmt.check(tmp_path)
    names = fmt.label_names(tmp_path)
    splits = fmt.split_names(tmp_path)
    roles = fmt.role_splits(tmp_path)
    assert set(roles) == {"train", "val", "test"}
    listed = {s.source for split in splits for s in fmt.read_split(tmp_path, split).samples}
    for role, split in roles.items():  # each role reads the split the record names for it
        if split is not None:
            data = fmt.read_split(tmp_path, role)
            assert data.split == split and data.label_names == names and len(data) > 0
            assert split in splits or {s.source for s in data.samples} <= listed  # or one made of listed ones
    assert default_splits(name, tmp_path)[0] == roles["train"]
    crop = fmt.crop(tmp_path)
    assert crop.crop in FACE_CROPS and crop.preprocessing().crop == crop.crop
    assert fmt.eval_labels is None or len(LABEL_SETS[fmt.eval_labels]) in (7, len(names))


def test_face_crops_come_from_the_record(tmp_path: Path) -> None:
    fd.make_rafdb(tmp_path, original=True)
    rafdb = get_format("rafdb")
    assert rafdb.crop(tmp_path) == FaceCrop("align", face_size=100)
    assert rafdb.crop(tmp_path, ReadOptions(rafdb_images="original")) == FaceCrop("box", margin=0.2)
    dm = FERDataModule(format="rafdb", root=str(tmp_path), rafdb_images="original")
    assert (dm.preprocessing.crop, dm.preprocessing.margin) == ("box", 0.2)
    assert get_format("affectnet").crop(tmp_path).margin == 0.0 and get_format("fer2013").crop(tmp_path).margin == 0.1


def test_unknown_and_unregistered_formats(monkeypatch) -> None:
    with pytest.raises(DanError, match=r"--format='imagenet': unknown data format; choose one of rafdb, affectnet"):
        get_format("imagenet", "--format")
    stray = DataFormat("imagenet", "ImageNet", lambda r, s, o: None, (), (), {}, FaceCrop())  # type: ignore[arg-type,return-value]
    with pytest.raises(ValueError, match="not listed in dan.vocab.FORMAT_NAMES"):
        register(stray)
    with pytest.raises(ValueError, match="registered twice"):
        register(DataFormat("rafdb", "RAF-DB again", stray.read, (), (), {}, FaceCrop()))


# a layout of our own, as a contributor would add it in dan/data/toy.py: one list file "NAME LABEL SPLIT"
TOY_LABELS = ("happiness", "sadness")


def read_toy(root: Path, split: str, options: ReadOptions) -> SplitData:
    samples = []
    for line, text in enumerate((root / "labels.txt").read_text().splitlines(), start=1):
        name, label, in_split = text.split()
        if in_split == split:
            samples.append(Sample(str(root / name), int(label), None, line))
    return SplitData("toy", split, TOY_LABELS, samples, str(root / "labels.txt"))


def test_a_new_layout_is_one_file_and_one_registration(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(formats, "FORMAT_NAMES", (*FORMAT_NAMES, "toy"))  # its name in dan.vocab.FORMAT_NAMES
    monkeypatch.setattr(formats, "FORMATS", dict(FORMATS))
    register(  # the registration line at the bottom of dan/data/toy.py
        DataFormat(
            name="toy",
            title="Toy",
            read=read_toy,
            labels=TOY_LABELS,
            splits=("fit", "exam"),
            roles={"train": "fit", "test": "exam"},
            face_crop=FaceCrop("box", margin=0.3),
        )
    )
    lines = []
    for i in range(12):
        fd.write_image(tmp_path / f"{i}.png", np.full((20, 20, 3), fd.color_of(i % 2), np.uint8))
        lines.append(f"{i}.png {i % 2} {'fit' if i < 8 else 'exam'}")
    (tmp_path / "labels.txt").write_text("\n".join(lines) + "\n")

    assert len(read_split("toy", tmp_path, "training")) == 8 and read_split("toy", tmp_path, "test").split == "exam"
    with pytest.raises(DanError, match="the Toy data set has no validation split"):
        read_split("toy", tmp_path, "val")
    assert default_splits("toy", tmp_path) == ("fit", None, "exam")
    dm = FERDataModule(format="toy", root=str(tmp_path), image_size=16, augment="eval", num_workers=0, seed=1)
    dm.setup()
    assert dm.label_names == TOY_LABELS and len(dm.train_dataset) == 6 and len(dm.val_dataset) == 2  # held out
    assert len(dm.test_dataset) == 4 and dm.preprocessing.margin == 0.3 and dm.preprocessing.input_size == 16
    report = check_dataset("toy", tmp_path)
    assert report.ok and report.counts == {
        "fit": {"happiness": 4, "sadness": 4},
        "exam": {"happiness": 2, "sadness": 2},
    }


def test_rafdb_has_no_validation_split_anywhere(tmp_path: Path, capsys) -> None:
    import torch

    import dan
    from dan.cli.main import main

    fd.make_rafdb(tmp_path / "rafdb")
    torch.manual_seed(0)
    model = dan.DAN(7, 1, backbone="test_resnet").eval()
    model.labels, model.preprocessing = LABEL_SETS["rafdb"], dan.Preprocessing(input_size=32)
    ckpt = dan.save_model(model, tmp_path / "m.pt")
    out = tmp_path / "report"
    args = [
        "evaluate",
        "--checkpoint",
        str(ckpt),
        "--format",
        "rafdb",
        "--root",
        str(tmp_path / "rafdb"),
        "--workers",
        "0",
    ]
    assert main([*args, "--split", "val", "--output", str(out)]) == 1
    err = capsys.readouterr().err
    assert "--split val: " in err and "the RAF-DB data set has no validation split (its splits: train, test)" in err
    assert len(err.strip().splitlines()) == 1 and not out.exists()  # one line, nothing scored or written
    assert main([*args, "--split", "test", "--output", str(out)]) == 0
    assert "rafdb/test: 7 images" in capsys.readouterr().out
    with pytest.raises(DanError, match=r"data.val_split='validation': .* RAF-DB data set has no validation split"):
        FERDataModule(format="rafdb", root=str(tmp_path / "rafdb"), val_split="validation")
    with pytest.raises(DanError, match="has no validation split"):
        get_format("rafdb").split_for_role(tmp_path / "rafdb", "val")
