"""CK+: peak frames of labelled sequences, optional neutral first frames, subject-independent folds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dan.cli.main import main
from dan.data.check import check_dataset
from dan.data.dataset import load_sample_image
from dan.data.formats import get_format
from dan.data.options import ReadOptions
from dan.data.samples import SplitData
from dan.errors import DanError
from dan.vocab import LABEL_SETS

import fakedata as fd

CK = get_format("ckplus")


def _read(root: Path, split: str, **options) -> SplitData:
    return CK.read_split(root, split, ReadOptions(**options))


def _all(root: Path, **options) -> list:
    o = ReadOptions(**options)
    return [s for split in CK.split_names(root, o) for s in CK.read_split(root, split, o).samples]


def _subjects(data: SplitData) -> set[str]:
    return {Path(s.source).parent.parent.name for s in data.samples}


def test_peak_frames_labels_and_boxes(tmp_path: Path) -> None:
    truth = fd.make_ckplus(tmp_path, subjects=10, frames=5)
    samples = _all(tmp_path)
    wanted = {str(p): code - 1 for seqs in truth.values() for code, paths in seqs.values() if code for p in paths[2:]}
    assert {s.source: s.label for s in samples} == wanted and len(samples) == 10 * 7 * 3  # the unlabelled 008: none
    assert (
        CK.label_names(tmp_path)
        == LABEL_SETS["ckplus7"]
        == ("anger", "contempt", "disgust", "fear", "happiness", "sadness", "surprise")
    )
    for s in samples[::7]:  # the landmarks' box (squared, plus 10 %) is the painted face
        assert s.box == fd.CKPLUS_FACE
        face = load_sample_image(s)
        assert face.shape == (24, 24, 3)
        if "S101" not in s.source:  # the first subject's frames are grey
            assert tuple(face[12, 12]) == fd.color_of(s.label + 1)
    one = _all(tmp_path, peak_frames=1)
    assert {s.source for s in one} == {
        str(paths[-1]) for seqs in truth.values() for code, paths in seqs.values() if code
    }


def test_the_first_frame_as_neutral(tmp_path: Path) -> None:
    truth = fd.make_ckplus(tmp_path, subjects=10, frames=5)
    samples = _all(tmp_path, first_frame_neutral=True)
    assert CK.label_names(tmp_path, ReadOptions(first_frame_neutral=True)) == LABEL_SETS["ckplus"]
    neutral = {s.source for s in samples if s.label == 0}
    assert neutral == {str(paths[0]) for seqs in truth.values() for code, paths in seqs.values() if code}
    assert len(samples) == 10 * 7 * 4 and {s.label for s in samples} == set(range(8))  # codes are the indices
    short = _all(tmp_path, first_frame_neutral=True, peak_frames=5)  # the first frame is a peak frame: not neutral
    assert not any(s.label == 0 for s in short) and len(short) == 10 * 7 * 5


def test_folds_are_subject_independent_and_seeded(tmp_path: Path) -> None:
    fd.make_ckplus(tmp_path, subjects=12, frames=4)
    folds = {f"fold{i}": _subjects(_read(tmp_path, f"fold{i}", folds=4)) for i in range(4)}
    assert all(folds.values()) and sum(map(len, folds.values())) == 12
    assert set().union(*folds.values()) == {f"S{101 + i}" for i in range(12)}  # every subject in exactly one fold
    train, val, test = (_read(tmp_path, role, folds=4, fold=2) for role in ("train", "val", "test"))
    assert (train.split, val.split, test.split) == ("train", "fold3", "fold2")
    assert _subjects(test) == folds["fold2"] and _subjects(val) == folds["fold3"]
    assert _subjects(train) == folds["fold0"] | folds["fold1"]  # every other fold, no subject twice
    assert CK.default_splits(tmp_path, ReadOptions(folds=4, fold=3)) == ("train", "fold0", "fold3")  # wraps
    again = {f"fold{i}": _subjects(_read(tmp_path, f"fold{i}", folds=4)) for i in range(4)}
    other = {f"fold{i}": _subjects(_read(tmp_path, f"fold{i}", folds=4, split_seed=7)) for i in range(4)}
    assert again == folds and other != folds
    with pytest.raises(DanError, match=r"Emotion: 12 labelled subject\(s\), too few for folds=20"):
        _read(tmp_path, "fold0", folds=20)
    with pytest.raises(DanError, match=r"fold=4: choose 0..3 \(folds=4\)"):
        ReadOptions(folds=4, fold=4)
    with pytest.raises(DanError, match="CK\\+ has no split 'fold4': use fold0, fold1, fold2, fold3"):
        _read(tmp_path, "fold4", folds=4)


def test_bad_files_are_named(tmp_path: Path) -> None:
    fd.make_ckplus(tmp_path, subjects=10, frames=4)
    emotion = next((tmp_path / "Emotion" / "S102" / "003").glob("*_emotion.txt"))
    emotion.write_text("   9.0000000e+00\n")
    with pytest.raises(DanError, match=rf"{emotion}:1: expected one emotion code 1..7, got '9.0000000e\+00'$"):
        _all(tmp_path)
    assert len(_all(tmp_path, strict=False)) == 10 * 7 * 3 - 3  # the rest is read
    emotion.write_text("   3.0000000e+00\n")
    frame = emotion.parent.parent.parent.parent / "cohn-kanade-images" / "S102" / "003" / "S102_003_00000004.png"
    frame.unlink()
    with pytest.raises(DanError, match=r"_emotion.txt: its frame S102_003_00000004.png is not in .*S102/003"):
        _all(tmp_path)
    fd.make_ckplus(tmp_path, subjects=10, frames=4)
    marks = tmp_path / "Landmarks" / "S104" / "005" / "S104_005_00000003_landmarks.txt"
    marks.write_text("   1.0e+01   2.0e+01\n   3.0e+01 x\n")
    with pytest.raises(DanError, match=rf"{marks}:2: expected 'x y', got '3.0e\+01 x'"):
        _all(tmp_path)
    marks.unlink()
    with pytest.raises(DanError, match=rf"{marks}: landmarks file missing"):
        _all(tmp_path)


def test_bom_and_crlf_files_read_alike(tmp_path: Path) -> None:
    fd.make_ckplus(tmp_path, subjects=10, frames=4)
    before = [(s.source, s.label, s.box) for s in _all(tmp_path)]
    for path in [*tmp_path.glob("Emotion/*/*/*.txt"), *tmp_path.glob("Landmarks/*/*/*.txt")]:
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes().replace(b"\n", b"\r\n"))
    assert [(s.source, s.label, s.box) for s in _all(tmp_path)] == before


def test_check_counts_folds_and_says_when_frames_are_whole(tmp_path: Path, capsys) -> None:
    fd.make_ckplus(tmp_path / "ck", subjects=10, frames=4)
    report = check_dataset("ckplus", tmp_path / "ck")
    assert report.ok and list(report.counts) == [f"fold{i}" for i in range(10)]
    assert report.counts["fold4"] == dict.fromkeys(LABEL_SETS["ckplus7"], 3)  # one subject, 7 sequences
    fd.make_ckplus(tmp_path / "whole", subjects=10, frames=4, landmarks=False)
    assert main(["data", "check", "--format", "ckplus", "--root", str(tmp_path / "whole")]) == 1
    out = capsys.readouterr().out
    assert out.count("no Landmarks/ folder: the frames are used whole") == 1 and "1 problem(s)" in out
    data = _read(tmp_path / "whole", "fold0")  # training goes on: a warning, not an error
    assert all(s.box is None for s in data.samples) and np.array_equal(
        load_sample_image(data.samples[0]).shape, (40, 48, 3)
    )
    with pytest.raises(DanError, match="cohn-kanade-images: CK\\+ folder not found"):
        _read(tmp_path / "ck" / "Emotion", "fold0")


def test_data_module_trains_on_the_other_folds(tmp_path: Path) -> None:
    from dan.data.datamodule import FERDataModule

    fd.make_ckplus(tmp_path, subjects=10, frames=4)
    dm = FERDataModule(format="ckplus", root=str(tmp_path), fold=4, image_size=16, batch_size=8, num_workers=0, seed=0)
    assert dm.label_names == LABEL_SETS["ckplus7"] and (dm.val_split, dm.test_split) == ("fold5", "fold4")
    assert (dm.preprocessing.crop, dm.preprocessing.margin) == ("box", 0.1)
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    images, labels = batch["image"], batch["label"]
    assert images.shape == (8, 3, 16, 16) and labels.max() < 7
    parts = [
        {Path(s).parent.parent.name for s, _ in d.samples} for d in (dm.train_dataset, dm.val_dataset, dm.test_dataset)
    ]
    assert [len(p) for p in parts] == [8, 1, 1] and not (parts[0] & parts[1]) and not (parts[0] & parts[2])
    assert parts[2] == _subjects(_read(tmp_path, "fold4"))  # the fold dan evaluate --split fold4 scores
    neutral = FERDataModule(format="ckplus", root=str(tmp_path), first_frame_neutral=True, peak_frames=2)
    assert neutral.num_classes == 8 and neutral.label_names[0] == "neutral"
    with pytest.raises(DanError, match=r"^data.fold=10: choose 0..9 \(folds=10\)$"):
        FERDataModule(format="ckplus", root=str(tmp_path), fold=10)
    with pytest.raises(DanError, match=r"^data.peak_frames=0: must be at least 1$"):
        FERDataModule(format="ckplus", root=str(tmp_path), peak_frames=0)


def test_dan_evaluate_scores_a_fold(tmp_path: Path, capsys) -> None:
    import torch

    import dan

    fd.make_ckplus(tmp_path / "ck", subjects=10, frames=4)
    torch.manual_seed(0)
    model = dan.DAN(7, 1, backbone="test_resnet").eval()
    model.labels, model.preprocessing = LABEL_SETS["ckplus7"], dan.Preprocessing(input_size=32, crop="box")
    ckpt = dan.save_model(model, tmp_path / "m.pt")
    args = ["evaluate", "--checkpoint", str(ckpt), "--format", "ckplus", "--root", str(tmp_path / "ck")]
    assert main([*args, "--workers", "0", "--split", "fold3", "--output", str(tmp_path / "r3")]) == 0
    assert "ckplus/fold3: 21 images" in capsys.readouterr().out
    assert main([*args, "--workers", "0", "--output", str(tmp_path / "r0")]) == 0  # default: the test role, fold0
    assert "ckplus/fold0: 21 images" in capsys.readouterr().out
