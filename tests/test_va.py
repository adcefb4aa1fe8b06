"""Valence and arousal: generated, read, batched, learned (CCC loss), checkpointed, scored, and the demo script.

The runtimes, exports and every output (predict, demo, serve) are tested in ``tests/test_va_outputs.py``.
"""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from dan.data.datamodule import FERDataModule
from dan.data.readers import read_split
from dan.data.synth import generate, render_item
from dan.synthface import CIRCUMPLEX, render_image

import fakedata as fd

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ----------------------------------------------------------------------------------------------- generated


def test_synth_writes_va_deterministically_from_expression_and_intensity(tmp_path: Path, va_synth: Path) -> None:
    other = tmp_path / "two_workers"
    generate(other, per_class=4, size=32, workers=2)
    va_file = "EmoLabel/valence_arousal.txt"
    assert (other / va_file).read_bytes() == (va_synth / va_file).read_bytes()  # whatever the number of workers
    lines = (va_synth / va_file).read_text().splitlines()
    listed = (va_synth / "EmoLabel/list_patition_label.txt").read_text().splitlines()
    assert [line.split()[0] for line in lines] == [line.split()[0] for line in listed]
    for line, entry in zip(lines, listed, strict=True):
        v, a = map(float, line.split()[1:])
        label = int(entry.split()[1]) - 1
        cv, ca = CIRCUMPLEX[label]
        assert -1 <= v <= 1 and -1 <= a <= 1
        # the centre times an intensity in [0.45, 1], plus noise of sd 0.05: within 0.25 of the scaled segment
        assert abs(v - cv * 0.725) <= abs(cv) * 0.275 + 0.25 and abs(a - ca * 0.725) <= abs(ca) * 0.275 + 0.25
    image, va = render_item(0, 3, 2, 32)
    assert np.array_equal(image, render_image(0, 3, 2, 32)) and va == render_item(0, 3, 2, 32)[1]  # same pixels
    manifest = (va_synth / "dan-synth.json").stat().st_mtime_ns
    assert manifest >= (va_synth / va_file).stat().st_mtime_ns  # the manifest is written last


def test_rafdb_reader_reads_the_va_file_and_flags_bad_lines(tmp_path: Path, va_synth: Path) -> None:
    train = read_split("rafdb", va_synth, "train")
    va = train.va
    assert va is not None and va.shape == (21, 2) and va.dtype == np.float32 and np.isfinite(va).all()
    first = (va_synth / "EmoLabel/valence_arousal.txt").read_text().splitlines()[0].split()
    assert train.samples[0].va == (float(first[1]), float(first[2]))
    fd.make_rafdb(tmp_path, train_per_class=1, test_per_class=1)
    plain = read_split("rafdb", tmp_path, "train")
    assert plain.va is None and not plain.has_va  # no side file: no valence/arousal
    (tmp_path / "EmoLabel/valence_arousal.txt").write_text("train_00001.jpg 0.5 -0.25\n")
    some = read_split("rafdb", tmp_path, "train").va
    assert some is not None and some[0].tolist() == [0.5, -0.25] and np.isnan(some[1:]).all()  # others unknown
    (tmp_path / "EmoLabel/valence_arousal.txt").write_text("train_00001.jpg 0.5\ntrain_00002.jpg 1.5 0\n")
    from dan.errors import DanError

    with pytest.raises(DanError, match=r"valence_arousal.txt:1: expected 'NAME VALENCE AROUSAL'.*and 1 more"):
        read_split("rafdb", tmp_path, "train")


def _affectnet_csv(root: Path, rows: list[tuple[int, str, str]]) -> None:
    lists = root / "Manually_Annotated_file_lists"
    lists.mkdir(parents=True, exist_ok=True)
    header = ["subDirectory_filePath", "face_x", "face_y", "face_width", "face_height", "facial_landmarks"]
    header += ["expression", "valence", "arousal"]
    for split in ("training", "validation"):
        with open(lists / f"{split}.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            for i, (expression, v, a) in enumerate(rows):
                rel = f"1/{split}_{i}.png"
                fd.write_image(root / "Manually_Annotated_Images" / rel, np.zeros((16, 16, 3), np.uint8))
                writer.writerow([rel, 0, 0, 16, 16, "", expression, v, a])


def test_affectnet_reader_keeps_va_and_marks_unknown_as_nan(tmp_path: Path) -> None:
    _affectnet_csv(tmp_path, [(1, "0.75", "-0.5"), (2, "-2", "0.25"), (3, "-2", "-2"), (9, "0.1", "0.1")])
    data = read_split("affectnet", tmp_path, "train")
    assert len(data) == 3  # expression 9 (uncertain) is dropped, as before
    assert data.samples[0].va == (0.75, -0.5) and data.samples[2].va is None
    va = data.va
    assert va is not None and np.isnan(va[1, 0]) and va[1, 1] == 0.25 and np.isnan(va[2]).all()
    dm = FERDataModule(format="affectnet", root=str(tmp_path), image_size=16, num_workers=0)
    assert dm.has_va
    _affectnet_csv(tmp_path, [(1, "0.75", "1.5")])
    from dan.errors import DanError

    with pytest.raises(DanError, match=r"training.csv:2: valence or arousal: 1.5 outside -1..1"):
        read_split("affectnet", tmp_path, "train")
    npy = tmp_path / "npy"
    fd.make_affectnet_npy(npy)
    assert read_split("affectnet", npy, "train").va is None  # no _val/_aro files
    np.save(npy / "train_set/annotations/0_val.npy", np.array("0.5"))
    np.save(npy / "train_set/annotations/0_aro.npy", np.array("-2"))
    read = read_split("affectnet", npy, "train")
    assert read.samples[0].va is not None and read.samples[0].va[0] == 0.5 and math.isnan(read.samples[0].va[1])
    fd.make_affectnet_folders(tmp_path / "folders")
    assert not FERDataModule(format="affectnet", root=str(tmp_path / "folders")).has_va


def test_batches_carry_va_only_for_a_data_set_that_can_have_it(tmp_path: Path, va_synth: Path) -> None:
    dm = FERDataModule(format="rafdb", root=str(va_synth), image_size=32, batch_size=8, num_workers=0, seed=0)
    assert dm.has_va
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["va"].shape == (8, 2) and batch["va"].dtype == torch.float32 and torch.isfinite(batch["va"]).all()
    val = next(iter(dm.val_dataloader()))
    assert val["va"].shape == (len(val["label"]), 2)
    assert torch.equal(val["va"], torch.from_numpy(dm.val_dataset.va[: len(val["label"])]))
    old = FERDataModule(format="rafdb", root=str(va_synth), image_size=32, batch_size=8, num_workers=0)
    old.device_transforms = False  # the all-CPU pipeline: (image, label) pairs, as before
    old.setup("fit")
    images, labels = next(iter(old.train_dataloader()))
    assert images.shape == (8, 3, 32, 32) and labels.shape == (8,)
    fd.make_rafdb(tmp_path, train_per_class=3, test_per_class=1)
    plain = FERDataModule(format="rafdb", root=str(tmp_path), image_size=32, batch_size=8, num_workers=0)
    plain.setup("fit")
    assert not plain.has_va and "va" not in next(iter(plain.train_dataloader()))


# ----------------------------------------------------------------------------------------------- loss, model


def _ccc_numpy(p: np.ndarray, t: np.ndarray) -> float:
    cov = np.mean((p - p.mean()) * (t - t.mean()))
    return float(2 * cov / (p.var() + t.var() + (p.mean() - t.mean()) ** 2))


def test_ccc_loss_matches_numpy_masks_nan_rows_and_has_a_gradient() -> None:
    from dan.models.losses import ccc_loss

    rng = np.random.default_rng(0)
    pred = rng.uniform(-1, 1, (12, 2))
    target = np.clip(pred * 0.5 + rng.normal(0, 0.3, (12, 2)), -1, 1)
    target[[1, 4], 0] = np.nan  # unknown valence
    target[7, 1] = np.nan  # unknown arousal
    want = np.mean(
        [1 - _ccc_numpy(pred[np.isfinite(target[:, d]), d], target[np.isfinite(target[:, d]), d]) for d in (0, 1)]
    )
    p = torch.tensor(pred, dtype=torch.float32, requires_grad=True)
    loss = ccc_loss(p, torch.tensor(target, dtype=torch.float32))
    assert loss.item() == pytest.approx(want, abs=1e-5)
    loss.backward()
    assert p.grad is not None and torch.isfinite(p.grad).all()
    assert (p.grad[[1, 4], 0] == 0).all() and p.grad[7, 1] == 0 and p.grad[0].abs().sum() > 0  # unknown rows: none
    perfect = torch.tensor(target[:, :1])  # (12, 1), NaN rows left out
    assert ccc_loss(perfect.nan_to_num(0.3), perfect).item() == pytest.approx(0, abs=1e-6)
    empty = torch.zeros(3, 2, requires_grad=True)
    zero = ccc_loss(empty, torch.full((3, 2), float("nan")))
    assert zero.item() == 0 and zero.requires_grad  # nothing known: a zero that keeps the graph
    zero.backward()
    assert empty.grad is not None and (empty.grad == 0).all()


def test_the_va_head_reads_the_fused_feature_and_a_model_without_it_is_unchanged() -> None:
    import dan
    from dan.models.reparam import reparameterize

    torch.manual_seed(0)
    plain = dan.DAN(num_classes=7, num_heads=2, backbone="test_resnet").eval()
    torch.manual_seed(0)
    va_model = dan.DAN(num_classes=7, num_heads=2, backbone="test_resnet", va_head=True).eval()
    assert "va_head" not in plain.model_config and va_model.model_config["va_head"] is True
    assert set(va_model.state_dict()) - set(plain.state_dict()) == {"va.weight", "va.bias"}
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        a, b = plain(x), va_model(x)
    assert a.va is None and torch.equal(a.logits, b.logits)  # the same network, one more output
    assert b.va is not None and b.va.shape == (3, 2) and b.va.abs().max() < 1
    z = b.heads.sum(1)  # (B, C): the fused feature
    zn = (z - z.mean(1, keepdim=True)) / torch.sqrt(z.var(1, unbiased=False, keepdim=True) + 1e-5)  # per face
    torch.testing.assert_close(b.va, torch.tanh(va_model.va(zn)), rtol=1e-4, atol=1e-4)
    with torch.no_grad():  # a fused feature 100x larger (the heads spread apart) does not saturate tanh
        big = va_model.forward_va(100 * z)
    assert big is not None and big.abs().max() < 0.999
    folded = reparameterize(va_model)
    with torch.no_grad():
        torch.testing.assert_close(folded(x).va, b.va, rtol=1e-4, atol=1e-5)  # re-parameterisation keeps it


def test_checkpoint_round_trip_keeps_the_head(tmp_path: Path) -> None:
    import dan
    from dan.models.metadata import ModelMetadata

    torch.manual_seed(1)
    model = dan.DAN(num_classes=7, num_heads=2, backbone="test_resnet", va_head=True).eval()
    model.labels = dan.LABEL_SETS["rafdb"]
    for name in ("m.pt", "m.safetensors"):
        loaded = dan.load_model(dan.save_model(model, tmp_path / name))
        assert loaded.has_va and torch.equal(loaded.va.weight, model.va.weight)
    record = ModelMetadata.read(torch.load(tmp_path / "m.pt", weights_only=True)["dan"])
    assert record is not None and record.has_va
    from dan.errors import DanError

    with pytest.raises(DanError, match=r"model_config.va_head='yes': expected true or false"):
        ModelMetadata.from_dict({"model_config": {"num_classes": 7, "va_head": "yes"}})


# ----------------------------------------------------------------------------------------------- training

CONF = Path(__file__).parent / "conf" / "tiny.yaml"


def _fit(root: Path, data: Path, *extra: str) -> int:
    from dan.cli.main import main

    args = ["fit", "-c", str(CONF), "--data.root", str(data), "--trainer.default_root_dir", str(root)]
    return main([*args, "--model.backbone", "test_resnet", "--data.image_size", "32", *extra])


@pytest.fixture(scope="module")
def va_run(va_synth: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1-epoch fit with the valence/arousal head on the generated set; returns its log folder."""
    import os

    root = tmp_path_factory.mktemp("va_fit")
    os.chdir(root)
    assert _fit(root, va_synth, "--model.va_head", "true", "--trainer.max_epochs", "1") == 0
    return root / "runs" / "tiny" / "version_0"


def test_a_tiny_fit_with_the_head_logs_the_va_metrics_and_checkpoints_it(va_run: Path) -> None:
    import dan

    with open(va_run / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert any(r.get("train/ccc_loss_step") for r in rows) and any(r.get("train/ccc_loss_epoch") for r in rows)
    val = [r for r in rows if r.get("val/acc")]
    assert len(val) == 1
    for key in ("val/ccc_valence", "val/ccc_arousal", "val/rmse_valence", "val/rmse_arousal"):
        assert math.isfinite(float(val[0][key])), key
    assert 0 <= float(val[0]["val/rmse_valence"]) <= 2 and -1 <= float(val[0]["val/ccc_arousal"]) <= 1
    model = dan.load_model(va_run / "checkpoints" / "last.ckpt")
    assert model.has_va and model.model_config["va_head"] is True


def test_va_head_on_a_data_set_without_va_fails_before_training(tmp_path: Path, capsys) -> None:
    fd.make_rafdb(tmp_path / "plain", train_per_class=3, test_per_class=1)
    assert _fit(tmp_path, tmp_path / "plain", "--model.va_head", "true") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("dan fit: error: model.va_head: true, but the rafdb data set at")
    assert "has no valence/arousal" in err[-1]
    assert not list(tmp_path.rglob("*.ckpt"))  # nothing trained


def test_the_va_recipe_turns_the_head_on_for_the_synthetic_recipe(capsys) -> None:
    import yaml

    from dan.cli.main import main

    configs = Path(__file__).resolve().parents[1] / "configs"
    with pytest.raises(SystemExit):
        main(["fit", "-c", str(configs / "va.yaml"), "--print_config"])
    config = yaml.safe_load(capsys.readouterr().out)
    assert config["model"]["va_head"] is True and config["model"]["va_weight"] == 1.0
    assert config["data"]["image_size"] == 48 and config["model"]["lambda_af"] == 3.0  # the synthetic recipe
    assert config["trainer"]["logger"][0]["init_args"]["name"] == "va"


# ----------------------------------------------------------------------------------------------- evaluate


def test_evaluate_reports_ccc_and_rmse(va_run: Path, va_synth: Path, dan_evaluate) -> None:
    metrics, report, out = dan_evaluate(va_run / "checkpoints" / "last.ckpt", "rafdb", va_synth, "--backend", "torch")
    assert re.search(r"^valence: CCC -?\d\.\d{3}, RMSE \d\.\d{3} \(7 images\)$", out, re.M), out
    assert re.search(r"^arousal: CCC -?\d\.\d{3}, RMSE \d\.\d{3} \(7 images\)$", out, re.M), out
    va = metrics["valence_arousal"]
    assert va["valence"]["samples"] == 7 and 0 <= va["arousal"]["rmse"] <= 2 and -1 <= va["valence"]["ccc"] <= 1
    assert "## Valence and arousal" in (report / "report.md").read_text()
    header = (report / "predictions.csv").read_text().splitlines()[0]
    assert header.endswith(",valence,arousal,true_valence,true_arousal")


def test_evaluate_without_va_reports_none(tiny_checkpoint: Path, va_synth: Path, dan_evaluate) -> None:
    metrics, report, printed = dan_evaluate(tiny_checkpoint, "rafdb", va_synth, "--backend", "torch")
    assert "valence" not in printed and "valence_arousal" not in metrics
    assert "valence" not in (report / "predictions.csv").read_text().splitlines()[0]


# ----------------------------------------------------------------------------------------------- the script


def test_the_va_demo_script_prints_model_and_baseline(tmp_path: Path, capsys) -> None:
    from scripts.demos import va

    args = ["--out", str(tmp_path), "--per-class", "3", "--epochs", "1", "--size", "32", "--workers", "0"]
    assert va.main([*args, "--backbone", "test_resnet"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^Model name: +\S", out, re.M), out
    header = "| model | CCC valence | CCC arousal | RMSE valence | RMSE arousal |"
    assert header in out and "on the test split of `dan synth --per-class 3 --seed 0` (7 faces)" in out
    number = r"-?\d\.\d{3}"
    assert re.search(rf"^\| DAN \+ valence/arousal output( \| {number}){{4}} \|$", out, re.M), out
    assert re.search(rf"^\| training mean \(a constant: CCC 0\) \| 0\.000 \| 0\.000( \| {number}){{2}} \|$", out, re.M)
    saved = json.loads((tmp_path / "va_demo.json").read_text())
    assert saved["test"] == 7 and set(saved["baseline"]) == {
        "ccc_valence",
        "ccc_arousal",
        "rmse_valence",
        "rmse_arousal",
    }
    assert (tmp_path / "va_demo.md").read_text().strip().endswith(" |")


def test_init_from_loads_starts_or_drops_the_va_layer(va_checkpoint: Path, tiny_checkpoint: Path) -> None:
    from dan.training.module import DANModule
    from dan.vocab import LABEL_SETS

    def module(va_head: bool) -> DANModule:
        labels = list(LABEL_SETS["rafdb"])
        return DANModule(7, 2, backbone="test_resnet", label_names=labels, va_head=va_head)

    fresh = module(True)
    before = fresh.model.va.weight.detach().clone()
    assert fresh.start_from(str(tiny_checkpoint)).va == "new (the source has none)"
    assert torch.equal(fresh.model.va.weight, before)  # kept its own initialisation
    same = module(True)
    report = same.start_from(str(va_checkpoint))
    saved = torch.load(va_checkpoint, weights_only=True)["state_dict"]
    assert report.va == "loaded" and torch.equal(same.model.va.weight, saved["va.weight"])
    assert "valence/arousal layer: loaded" in report.lines()
    plain = module(False)
    assert plain.start_from(str(va_checkpoint)).va == "dropped (this model has none)" and plain.model.va is None
    assert not [line for line in module(False).start_from(str(tiny_checkpoint)).lines() if "valence" in line]
