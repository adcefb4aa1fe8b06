"""One read path: a model records the reader options it was trained with; ``dan evaluate`` and
``dan calibrate`` read with them (flags override), and never score or fit faces the model trained on."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import torch

import dan
from dan.cli.main import main
from dan.data.datamodule import FERDataModule
from dan.data.formats import get_format
from dan.data.options import ReadOptions
from dan.data.provenance import TrainedOn
from dan.data.readers import read_split
from dan.errors import DanError
from dan.vocab import LABEL_SETS

import fakedata as fd

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CONF = Path(__file__).parent / "conf" / "tiny.yaml"


def _saved(dm: FERDataModule, path: Path) -> Path:
    """A random tiny model as if trained by ``dm`` (its classes and its ``trained_on`` record), saved."""
    torch.manual_seed(0)
    model = dan.DAN(dm.num_classes, 1, backbone="test_resnet").eval()
    model.labels, model.preprocessing = dm.label_names, dan.Preprocessing(input_size=32, crop="box")
    model.trained_on = dm.trained_on
    return dan.save_model(model, path)


def _evaluate(ckpt: Path, fmt: str, root: Path, out: Path, *flags: str) -> int:
    argv = ["evaluate", "--checkpoint", str(ckpt), "--format", fmt, "--root", str(root), "--workers", "0"]
    return main([*argv, "--output", str(out), *flags])


def _scored(out: Path) -> set[str]:
    with open(out / "predictions.csv") as f:
        return {row["path"] for row in csv.DictReader(f)}


def _refused(capsys: pytest.CaptureFixture, out: Path) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "faces the model trained on" in err, err
    assert not out.exists()  # refused before any output folder is made
    return err


@pytest.fixture(scope="module")
def ck(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ck") / "ck"
    fd.make_ckplus(root, subjects=10, frames=4)
    return root


def test_ckplus_fit_records_its_fold_and_evaluate_scores_that_fold(
    ck: Path, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CK+ model trained (``dan fit``) on ``data.fold: 3`` is scored on fold 3 by default, its
    validation fold may be scored and calibrated on, and a fold it trained on is refused."""
    fit = ["fit", "-c", str(CONF), "--data.format", "ckplus", "--data.root", str(ck), "--data.fold", "3"]
    fit += ["--data.image_size", "32", "--model.backbone", "test_resnet", "--trainer.max_steps", "2"]
    monkeypatch.chdir(tmp_path)  # tiny.yaml logs to runs/
    assert main([*fit, "--trainer.limit_val_batches", "1", "--trainer.default_root_dir", str(tmp_path)]) == 0
    ckpt = next((tmp_path / "runs").rglob("last.ckpt"))
    record = TrainedOn.from_dict(dan.load_model(ckpt).trained_on)
    assert record is not None and record.options == ReadOptions(num_classes=7, fold=3)
    assert (record.train_split, record.val_split, record.train_samples) == ("train", "fold4", 8 * 21)
    capsys.readouterr()

    assert _evaluate(ckpt, "ckplus", ck, tmp_path / "default") == 0
    assert "ckplus/fold3: 21 images" in capsys.readouterr().out
    metrics = json.loads((tmp_path / "default" / "metrics.json").read_text())
    assert metrics["split"] == "fold3" and metrics["read"]["fold"] == 3
    fold3 = {s.source for s in read_split("ckplus", ck, "fold3", ReadOptions(fold=3)).samples}
    assert _scored(tmp_path / "default") == fold3

    for flags in (["--fold", "0"], ["--split", "fold0"], ["--split", "train"], ["--folds", "5", "--fold", "4"]):
        assert _evaluate(ckpt, "ckplus", ck, tmp_path / "leak", *flags) == 1, flags
        err = _refused(capsys, tmp_path / "leak")
        assert "read with num_classes=7, fold=3" in err and "its test split: fold3" in err
    assert _evaluate(ckpt, "ckplus", ck, tmp_path / "val", "--split", "val") == 0  # validated, never trained on
    assert "ckplus/fold4: 21 images" in capsys.readouterr().out

    cal = ["calibrate", "--checkpoint", str(ckpt), "--format", "ckplus", "--root", str(ck), "--workers", "0"]
    assert main([*cal, "--output", str(tmp_path / "c.ckpt")]) == 0
    assert "calibration split: ckplus/fold4 (validation): 21 images" in capsys.readouterr().out
    assert main([*cal, "--output", str(tmp_path / "c2.ckpt"), "--split", "fold1"]) == 1
    assert "fit on the validation split" in _refused(capsys, tmp_path / "nothing")
    assert not (tmp_path / "c2.ckpt").exists()


def test_first_frame_neutral_is_scored_on_eight_classes(ck: Path, tmp_path: Path, capsys) -> None:
    dm = FERDataModule(format="ckplus", root=str(ck), first_frame_neutral=True, image_size=32)
    assert dm.num_classes == 8
    ckpt = _saved(dm, tmp_path / "m.pt")
    assert _evaluate(ckpt, "ckplus", ck, tmp_path / "r") == 0
    out = capsys.readouterr().out
    assert "ckplus/fold0: 28 images," in out and "note:" not in out  # 7 sequences x (3 peak + 1 neutral) frames
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert tuple(metrics["labels"]) == LABEL_SETS["ckplus"] and metrics["samples"] == 28
    assert _evaluate(ckpt, "ckplus", ck, tmp_path / "r7", "--no-first-frame-neutral", "--num-classes", "7") == 0
    assert "ckplus/fold0: 21 images" in capsys.readouterr().out  # 7 classes when asked


def test_expw_split_seed_is_the_models(tmp_path: Path, capsys) -> None:
    fd.make_expw(tmp_path / "expw", photos_per_class=10)
    dm = FERDataModule(format="expw", root=str(tmp_path / "expw"), split_seed=5, image_size=32)
    ckpt = _saved(dm, tmp_path / "m.pt")
    assert _evaluate(ckpt, "expw", tmp_path / "expw", tmp_path / "r") == 0
    test5 = read_split("expw", tmp_path / "expw", "test", ReadOptions(split_seed=5))
    assert _scored(tmp_path / "r") == {s.source for s in test5.samples}
    capsys.readouterr()
    assert _evaluate(ckpt, "expw", tmp_path / "expw", tmp_path / "leak", "--split-seed", "0") == 1
    assert "split_seed=5" in _refused(capsys, tmp_path / "leak")


def test_affectnet_class_count_and_its_training_split(tmp_path: Path, capsys) -> None:
    fd.make_affectnet_csv(tmp_path / "aff", per_class=2)
    dm = FERDataModule(format="affectnet", root=str(tmp_path / "aff"), num_classes=7, image_size=32)
    ckpt = _saved(dm, tmp_path / "m.pt")
    assert _evaluate(ckpt, "affectnet", tmp_path / "aff", tmp_path / "r") == 0
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert metrics["read"]["num_classes"] == 7 and metrics["samples"] == 14  # contempt's rows left out
    capsys.readouterr()
    assert _evaluate(ckpt, "affectnet", tmp_path / "aff", tmp_path / "leak", "--split", "train") == 1
    assert "14 of the 14 faces of affectnet/train are faces" in _refused(capsys, tmp_path / "leak")


def test_ferplus_soft_targets_are_recorded_and_training_refused(tmp_path: Path, capsys) -> None:
    fd.make_ferplus(tmp_path / "fp")
    dm = FERDataModule(format="ferplus", root=str(tmp_path / "fp"), soft_targets=True, image_size=32)
    assert dm.trained_on["read"]["soft_targets"] is True
    ckpt = _saved(dm, tmp_path / "m.pt")
    assert _evaluate(ckpt, "ferplus", tmp_path / "fp", tmp_path / "r") == 0
    assert json.loads((tmp_path / "r" / "metrics.json").read_text())["read"]["soft_targets"] is True
    capsys.readouterr()
    assert _evaluate(ckpt, "ferplus", tmp_path / "fp", tmp_path / "leak", "--split", "Training") == 1
    _refused(capsys, tmp_path / "leak")


def test_held_out_validation_and_root_identity(tmp_path: Path, capsys) -> None:
    """RAF-DB validates on a held-out share of training: that share may be fitted on, the rest never
    scored. The data set is known by its contents, not its path: a copy elsewhere is the same data set,
    another data set of the same format is not."""
    fd.make_rafdb(tmp_path / "raf", train_per_class=30, test_per_class=1)  # 21 held out: calibration needs 20
    dm = FERDataModule(format="rafdb", root=str(tmp_path / "raf"), image_size=32, seed=0)
    ckpt = _saved(dm, tmp_path / "m.pt")
    assert _evaluate(ckpt, "rafdb", tmp_path / "raf", tmp_path / "leak", "--split", "train") == 1
    assert "189 of the 210 faces of rafdb/train" in _refused(capsys, tmp_path / "leak")  # 21 held out
    shutil.copytree(tmp_path / "raf", tmp_path / "moved")
    assert _evaluate(ckpt, "rafdb", tmp_path / "moved", tmp_path / "leak", "--split", "train") == 1
    _refused(capsys, tmp_path / "leak")
    fd.make_rafdb(tmp_path / "other", train_per_class=3, test_per_class=1)
    assert _evaluate(ckpt, "rafdb", tmp_path / "other", tmp_path / "other-r", "--split", "train") == 0

    cal = ["calibrate", "--checkpoint", str(ckpt), "--format", "rafdb", "--root", str(tmp_path / "raf")]
    assert main([*cal, "--workers", "0"]) == 0
    assert "train[holdout 0.1]: 21 images" in capsys.readouterr().out
    assert main([*cal, "--workers", "0", "--seed", "1", "--output", str(tmp_path / "c.pt")]) == 1  # other faces
    _refused(capsys, tmp_path / "nothing")


def test_an_older_model_says_it_reads_with_the_defaults(ck: Path, tmp_path: Path, capsys) -> None:
    torch.manual_seed(0)
    model = dan.DAN(7, 1, backbone="test_resnet").eval()
    model.labels, model.preprocessing = LABEL_SETS["ckplus7"], dan.Preprocessing(input_size=32, crop="box")
    model.trained_on = {"format": "ckplus", "synthetic": False}  # what an older dan recorded
    ckpt = dan.save_model(model, tmp_path / "old.pt")
    assert _evaluate(ckpt, "ckplus", ck, tmp_path / "r", "--fold", "2") == 0
    out = capsys.readouterr().out
    assert "does not record how its training read the CK+ data set" in out and "ckplus/fold2: 21 images" in out


def test_read_options_record_round_trip_and_bad_values() -> None:
    options = ReadOptions(num_classes=8, fold=2, folds=5, first_frame_neutral=True, strict=False)
    record = options.to_record()
    assert "strict" not in record and json.loads(json.dumps(record)) == record
    assert ReadOptions.from_record(record) == ReadOptions(num_classes=8, fold=2, folds=5, first_frame_neutral=True)
    with pytest.raises(DanError, match=r"^m.pt: trained_on.read.fold='2': expected int$"):
        ReadOptions.from_record({**record, "fold": "2"}, "m.pt: trained_on.read.")
    with pytest.raises(DanError, match=r"trained_on.read.first_frame_neutral=1: expected bool"):
        ReadOptions.from_record({**record, "first_frame_neutral": 1}, "trained_on.read.")
    with pytest.raises(DanError, match=r"^x: fold=7: choose 0..4 \(folds=5\)$"):
        ReadOptions.from_record({**record, "fold": 7}, "x: ")
    with pytest.raises(DanError, match=r"trained_on.seed='0': expected int"):
        TrainedOn.from_dict({"format": "rafdb", "read": {}, "seed": "0"})
    assert TrainedOn.from_dict({"format": "rafdb", "synthetic": True}) == TrainedOn("rafdb", True)


def test_data_check_and_evaluate_flags_name_themselves(ck: Path, tmp_path: Path, capsys) -> None:
    assert main(["data", "check", "--format", "ckplus", "--root", str(ck), "--folds", "5", "--no-decode"]) in (0, 1)
    out = capsys.readouterr().out
    assert "fold4" in out and "fold5" not in out
    dm = FERDataModule(format="ckplus", root=str(ck), image_size=32)
    ckpt = _saved(dm, tmp_path / "m.pt")
    assert _evaluate(ckpt, "ckplus", ck, tmp_path / "r", "--fold", "12") == 1
    assert capsys.readouterr().err.strip().endswith("--fold 12: choose 0..9 (folds=10)")
    assert get_format("ckplus").default_splits(ck, ReadOptions(fold=9)) == ("train", "fold0", "fold9")
