"""``dan calibrate`` end to end, the temperature in exports, and scoring across label sets."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from dan.evaluation.evaluate import evaluate_backend
from dan.evaluation.report import write_report
from dan.vocab import LABEL_SETS

import fakedata as fd

pytestmark = pytest.mark.usefixtures("one_torch_thread")

RAFDB = LABEL_SETS["rafdb"]


class _Faces(torch.utils.data.Dataset):
    """``(image whose first pixel is the label, label)`` for every sample; ``samples`` and ``label_names``."""

    def __init__(self, labels: list[int], names: tuple[str, ...]) -> None:
        self.samples = [(f"img{i}.png", y) for i, y in enumerate(labels)]
        self.label_names = names

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        x = torch.zeros(3, 4, 4)
        x[0, 0, 0] = self.samples[i][1]
        return x, self.samples[i][1]


class _Oracle:
    """A backend that gives the data set's class of the same name a logit of 2 (and 0 to the rest)."""

    name = "fake"

    def __init__(self, labels: tuple[str, ...], data_labels: tuple[str, ...]) -> None:
        self.labels, self.data_labels = labels, data_labels

    def __call__(self, x: np.ndarray) -> np.ndarray:
        z = np.zeros((len(x), len(self.labels)), np.float32)  # (B, C)
        for i, y in enumerate(x[:, 0, 0, 0].astype(int)):
            name = self.data_labels[y]
            z[i, self.labels.index(name)] = 2.0
        return z


def test_cross_data_set_scores_the_shared_classes(tmp_path: Path) -> None:
    ck = ("neutral", "anger", "contempt", "disgust", "fear", "happiness", "sadness", "surprise")
    labels = [0, 1, 2, 2, 2, 3, 4, 5, 6, 7]  # three contempt images
    result = evaluate_backend(_Oracle(RAFDB, ck), _Faces(labels, ck))
    assert result.label_names == tuple(n for n in ck if n != "contempt")
    assert len(result.targets) == 7 and result.accuracy == 1.0
    assert result.left_out == {"contempt": 3}
    assert result.left_out_lines() == ["contempt: 0 predictions possible, 3 images left out"]
    cal = result.calibration
    assert cal is not None and cal["renormalised"] is False  # the model's classes are all in the data set
    p_top = np.exp(2) / (np.exp(2) + 6)
    assert cal["nll"] == pytest.approx(-np.log(p_top)) and cal["ece"] == pytest.approx(1 - p_top)
    paths = write_report(result, tmp_path / "report")
    report = paths["report"].read_text()
    assert "contempt: 0 predictions possible, 3 images left out" in report and "## Calibration" in report
    assert paths["reliability"].is_file() and paths["reliability"].stat().st_size > 1000
    metrics = json.loads(paths["metrics"].read_text())
    assert metrics["classes"]["data_only"] == {"contempt": {"images_left_out": 3}}
    assert metrics["calibration"]["ece"] == pytest.approx(1 - p_top)
    assert "15 equal-width" in metrics["calibration"]["definitions"]["ece"]


def test_model_only_classes_renormalise_the_probabilities() -> None:
    affect8 = (*RAFDB, "contempt")
    result = evaluate_backend(_Oracle(affect8, RAFDB), _Faces(list(range(7)), RAFDB))
    cal = result.calibration
    assert cal is not None and cal["renormalised"] is True
    p_shared = np.exp(2) / (np.exp(2) + 6)  # contempt's column dropped before the softmax
    assert cal["nll"] == pytest.approx(-np.log(p_shared))
    assert result.probabilities.shape == (7, 8)
    assert result.left_out_lines() == ["contempt (model only): predicted for 0 images, each counted wrong"]


def test_no_shared_class_is_one_line() -> None:
    from dan.errors import DanError

    with pytest.raises(DanError, match="share none with the data set's"):
        evaluate_backend(_Oracle(("a", "b"), ("c", "d")), _Faces([0, 1], ("c", "d")))


@pytest.fixture(scope="module")
def rafdb_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("rafdb")
    fd.make_rafdb(root, train_per_class=4, test_per_class=1)
    return root


def test_calibrate_checkpoint_writes_a_new_file(tiny_model, rafdb_data: Path, tmp_path: Path, capsys) -> None:
    import dan
    from dan.cli.main import main

    ckpt = dan.save_model(tiny_model, tmp_path / "m.pt")
    before = ckpt.read_bytes()
    args = ["calibrate", "--checkpoint", str(ckpt), "--format", "rafdb", "--root", str(rafdb_data), "--workers", "0"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "has no validation split" in out and "train[holdout 0.1]" in out and "seed 0" in out
    assert "before: T 1" in out and "after:  T " in out
    assert ckpt.read_bytes() == before  # the input is never overwritten
    calibrated = dan.load_model(tmp_path / "m-calibrated.pt")
    assert calibrated.temperature is not None and calibrated.temperature != 1.0
    assert calibrated.calibration["split"] == "train[holdout 0.1]"
    for a, b in zip(calibrated.state_dict().values(), tiny_model.state_dict().values(), strict=True):
        assert torch.equal(a, b)

    # the held-out faces are the data module's own
    from dan.data.datamodule import FERDataModule
    from dan.data.formats import get_format
    from dan.data.options import ReadOptions
    from dan.evaluation.calibration_split import calibration_split

    dm = FERDataModule(format="rafdb", root=str(rafdb_data), image_size=32, val_fraction=0.1, seed=0)
    dm.setup("fit")
    held = [s.source for s in dm._train_and_val()[1].samples]
    chosen = calibration_split(get_format("rafdb"), rafdb_data, "val", ReadOptions(), 0.1, 0)
    assert [s.source for s in chosen.data.samples] == held and chosen.held_out
    assert calibrated.calibration["samples"] == len(held) == 7  # stratified: one per class

    # evaluate reports the temperature it applied
    report = tmp_path / "report"
    argv = ["evaluate", "--checkpoint", str(tmp_path / "m-calibrated.pt"), "--format", "rafdb"]
    assert main([*argv, "--root", str(rafdb_data), "--workers", "0", "--output", str(report)]) == 0
    metrics = json.loads((report / "metrics.json").read_text())
    assert metrics["calibration"]["temperature"] == pytest.approx(calibrated.temperature)
    assert (report / "reliability.png").is_file()
    assert main(["info", "--checkpoint", str(tmp_path / "m-calibrated.pt")]) == 0
    assert "calibrated: temperature" in capsys.readouterr().out


def test_calibrate_refuses_the_test_split(tiny_model, rafdb_data: Path, tmp_path: Path, capsys) -> None:
    import dan
    from dan.cli.main import main

    ckpt = dan.save_model(tiny_model, tmp_path / "m.pt")
    args = ["calibrate", "--checkpoint", str(ckpt), "--format", "rafdb", "--root", str(rafdb_data), "--split", "test"]
    assert main(args) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "never fits on the test split" in err
    assert not (tmp_path / "m-calibrated.pt").exists()


def test_calibrate_an_onnx_export_and_exports_carry_t(tiny_model, rafdb_data: Path, tmp_path: Path, capsys) -> None:
    from dan.cli.main import main
    from dan.export import export_onnx
    from dan.runtime.loader import load_backend

    hot = copy.deepcopy(tiny_model)
    hot.temperature = 2.5
    exported = export_onnx(hot, tmp_path / "hot.onnx")
    assert load_backend(exported, "onnx").metadata.temperature == 2.5  # export carries T

    plain = export_onnx(tiny_model, tmp_path / "m.onnx")
    argv = ["calibrate", "--checkpoint", str(plain), "--format", "rafdb", "--root", str(rafdb_data)]
    assert main([*argv, "--workers", "0", "--backend", "onnx"]) == 0
    capsys.readouterr()
    backend = load_backend(tmp_path / "m-calibrated.onnx", "onnx")
    t = backend.metadata.temperature
    assert t is not None and t != 1.0
    x = np.random.default_rng(0).normal(size=(2, 3, 32, 32)).astype(np.float32)
    np.testing.assert_allclose(backend(x), load_backend(plain, "onnx")(x), atol=1e-5)  # same graph
    from dan.runtime.backend import softmax

    np.testing.assert_allclose(backend.probabilities(backend(x)), softmax(backend(x) / t), rtol=1e-5)


def test_write_temperature_reference_pth_and_safetensors(tiny_model, tmp_path: Path) -> None:
    import dan
    from dan.errors import DanError
    from dan.export.temperature import write_temperature
    from dan.models.metadata import ModelMetadata
    from dan.models.reference import PlainDAN, randomize

    plain = randomize(PlainDAN(7, 4), 0).eval()
    ref = tmp_path / "reference.pth"
    torch.save({"iter": 1, "model_state_dict": plain.state_dict()}, ref)
    record = ModelMetadata.of_model(dan.load_model(ref, labels="rafdb"))
    with pytest.raises(DanError, match="written as .pt or .safetensors"):
        write_temperature(ref, tmp_path / "reference-calibrated.pth", 1.5, record, labels="rafdb")
    out = write_temperature(ref, tmp_path / "reference-calibrated.pt", 1.5, record, {"split": "val"}, labels="rafdb")
    model = dan.load_model(out)
    assert model.temperature == 1.5 and model.labels == RAFDB and model.calibration == {"split": "val"}
    ref_state = dan.load_model(ref, labels="rafdb").state_dict()
    for key, value in model.state_dict().items():
        assert torch.equal(value, ref_state[key])

    st = dan.save_model(tiny_model, tmp_path / "m.safetensors")
    with pytest.raises(DanError, match="is a .safetensors file"):
        write_temperature(st, tmp_path / "m-calibrated.pt", 0.5, record)
    out = write_temperature(st, tmp_path / "m-calibrated.safetensors", 0.5, ModelMetadata.of_model(tiny_model))
    assert dan.load_model(out).temperature == 0.5
    assert dan.load_model(st).temperature is None  # the input as it was


def test_write_temperature_into_a_pt2_program(tiny_model, tmp_path: Path) -> None:
    from dan.export import export_checkpoint
    from dan.export.temperature import write_temperature
    from dan.runtime.backend import softmax
    from dan.runtime.loader import load_backend

    export_checkpoint(tiny_model, tmp_path / "m.pt2", format="pt2")
    plain = load_backend(tmp_path / "m.pt2")
    assert plain.metadata.temperature is None
    out = write_temperature(tmp_path / "m.pt2", tmp_path / "m-calibrated.pt2", 1.8, plain.metadata, {"split": "val"})
    hot = load_backend(out)
    assert hot.name == "pt2" and hot.metadata.temperature == 1.8
    x = np.random.default_rng(0).normal(size=(2, 3, 32, 32)).astype(np.float32)
    np.testing.assert_array_equal(hot(x), plain(x))  # the same program
    np.testing.assert_allclose(hot.probabilities(hot(x)), softmax(hot(x) / 1.8), rtol=1e-5)


def test_evaluate_a_rafdb_model_on_ck_plus_lists_what_was_left_out(tmp_path: Path, capsys) -> None:
    import dan
    from dan.cli.main import main

    fd.make_ckplus(tmp_path / "ck", subjects=10, frames=4)
    torch.manual_seed(0)
    model = dan.DAN(7, 1, backbone="test_resnet").eval()
    model.labels, model.preprocessing = RAFDB, dan.Preprocessing(input_size=32, crop="box")
    ckpt = dan.save_model(model, tmp_path / "m.pt")
    args = ["evaluate", "--checkpoint", str(ckpt), "--format", "ckplus", "--root", str(tmp_path / "ck")]
    assert main([*args, "--workers", "0", "--split", "fold3", "--output", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "note: contempt: 0 predictions possible, 3 images left out" in out
    assert "note: neutral (model only): predicted for" in out
    assert "ckplus/fold3: 21 images (18 of the shared classes)" in out
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert metrics["samples"] == 18 and "contempt" not in metrics["labels"]
    assert metrics["calibration"]["renormalised"] is True  # neutral's column dropped
    assert "## Classes left out" in (tmp_path / "r" / "report.md").read_text()


def test_datamodule_records_the_resolved_hold_out_seed(rafdb_data: Path) -> None:
    from dan.data.datamodule import FERDataModule

    torch.manual_seed(5)  # what seed_everything(5) does
    dm = FERDataModule(format="rafdb", root=str(rafdb_data), image_size=32)
    assert dm.seed == 5 and dm.hparams["seed"] == 5  # saved in the checkpoint: dan calibrate holds out the same faces


def test_calibrate_in_place_and_output_checks(tiny_model, rafdb_data: Path, tmp_path: Path, capsys) -> None:
    import dan
    from dan.cli.main import main

    ckpt = dan.save_model(tiny_model, tmp_path / "m.pt")
    args = ["calibrate", "--checkpoint", str(ckpt), "--format", "rafdb", "--root", str(rafdb_data), "--workers", "0"]
    assert main([*args, "--output", str(ckpt)]) == 1
    assert "pass --in-place to replace it" in capsys.readouterr().err
    assert dan.load_model(ckpt).temperature is None
    assert main([*args, "--in-place"]) == 0
    assert dan.load_model(ckpt).temperature is not None and not (tmp_path / "m-calibrated.pt").exists()


def test_calibration_split_never_the_test_split(tmp_path: Path) -> None:
    from dan.data.formats import get_format
    from dan.data.options import ReadOptions
    from dan.errors import DanError
    from dan.evaluation.calibration_split import calibration_split

    fd.make_fer2013(tmp_path / "fer")
    fer = get_format("fer2013")
    chosen = calibration_split(fer, tmp_path / "fer", "val", ReadOptions())
    assert chosen.data.split == "PublicTest" and not chosen.held_out
    with pytest.raises(DanError, match="--split PrivateTest: dan calibrate never fits on the test split"):
        calibration_split(fer, tmp_path / "fer", "PrivateTest", ReadOptions())
    fd.make_affectnet_csv(tmp_path / "aff")
    with pytest.raises(DanError, match=r"validation split \(validation\) is also its test split"):
        calibration_split(get_format("affectnet"), tmp_path / "aff", "val", ReadOptions())
