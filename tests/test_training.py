"""Training through the CLI on a tiny generated data set: checkpoints, metrics, resume, DDP, bad input."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import dan
from dan.cli.main import main
from dan.data.datamodule import FERDataModule
from dan.models.reference import PlainDAN, randomize

CONF = Path(__file__).parent / "conf" / "tiny.yaml"


def _n_test(data: Path) -> int:
    return sum("test_" in line for line in (data / "EmoLabel" / "list_patition_label.txt").read_text().splitlines())


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path) as f:
        return list(csv.DictReader(f))


def _fit(root: Path, data: Path, *extra: str) -> int:
    return main(["fit", "-c", str(CONF), "--data.root", str(data), "--trainer.default_root_dir", str(root), *extra])


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "data"
    assert main(["synth", str(out), "--per-class", "6", "--size", "64", "--seed", "3"]) == 0
    return out


@pytest.fixture(scope="module")
def trained(synth: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted 3-epoch run; returns its log folder."""
    root = tmp_path_factory.mktemp("fit")
    os.chdir(root)
    assert _fit(root, synth, "--trainer.max_epochs", "3") == 0
    return root / "runs" / "tiny" / "version_0"


def test_fit_writes_checkpoints_logs_and_metrics(trained: Path, synth: Path) -> None:
    ckpts = sorted(p.name for p in (trained / "checkpoints").iterdir())
    assert "last.ckpt" in ckpts and any(name.startswith("best-epoch") for name in ckpts)
    rows = _rows(trained / "metrics.csv")
    val = [r for r in rows if r.get("val/acc")]
    assert [int(r["epoch"]) for r in val] == [0, 1, 2]
    best = [float(r["val/acc_best"]) for r in val]
    assert best == sorted(best) and best[-1] == max(float(r["val/acc"]) for r in val)
    for key in ("val/bacc", "val/recall/happiness", "val/f1/anger", "val/loss"):
        assert all(r[key] != "" for r in val), key
    assert any(r.get("train/loss_step") for r in rows) and any(r.get("train/pt_epoch") for r in rows)
    confusion = _rows(trained / "confusion" / "val_epoch002.csv")
    assert sum(int(v) for r in confusion for k, v in r.items() if k != "true\\pred") == _n_test(synth)
    # the checkpoint alone rebuilds the model, with labels and preprocessing
    model = dan.load_model(trained / "checkpoints" / "last.ckpt")
    assert model.labels == dan.LABEL_SETS["rafdb"] and model.preprocessing.input_size == 48 and model.num_heads == 2
    # centres of the affinity loss are trained by the same optimiser
    state = torch.load(trained / "checkpoints" / "last.ckpt", weights_only=True)
    assert "affinity.centers" in state["state_dict"] and len(state["optimizer_states"][0]["state"]) > 0


def test_the_checkpoint_stores_the_data_modules_preprocessing(trained: Path, synth: Path) -> None:
    record = FERDataModule(format="rafdb", root=str(synth), image_size=48).preprocessing  # tiny.yaml's data
    state = torch.load(trained / "checkpoints" / "last.ckpt", weights_only=True)
    assert state["dan"]["preprocessing"] == record.to_dict() == state["hyper_parameters"]["preprocessing"]
    assert dan.load_model(trained / "checkpoints" / "last.ckpt").preprocessing == record


def test_one_preprocessing_record_is_linked_from_data_to_model(synth: Path, tmp_path: Path) -> None:
    from dan.training.cli import DANCLI
    from dan.training.module import DANModule

    os.chdir(tmp_path)
    options = ["--data.mean", "[0.5, 0.4, 0.3]", "--data.std", "[0.2, 0.2, 0.2]", "--data.resize", "bicubic"]
    args = ["-c", str(CONF), "--data.root", str(synth), "--model.backbone", "test_resnet", *options]
    cli = DANCLI(DANModule, FERDataModule, run=False, args=args)
    record = cli.datamodule.preprocessing
    assert record == dan.Preprocessing(input_size=48, mean=(0.5, 0.4, 0.3), std=(0.2,) * 3, resize="bicubic")
    assert cli.model.model.preprocessing == record  # what checkpoints and exports store
    cli.datamodule.setup("fit")
    assert cli.datamodule.train_dataset.transform.pre is record and cli.datamodule.val_dataset.transform.pre is record


def test_resume_after_a_crash_continues_the_same_run(trained: Path, synth: Path, tmp_path: Path) -> None:
    os.chdir(tmp_path)
    with pytest.raises(RuntimeError, match="simulated crash"):
        _fit(
            tmp_path,
            synth,
            "--trainer.max_epochs",
            "3",
            "--trainer.callbacks+=training_helpers.CrashAt",
            "--trainer.callbacks.epoch",
            "2",
            "--trainer.callbacks.batch",
            "2",
        )
    first = tmp_path / "runs" / "tiny" / "version_0"
    last = first / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["epoch"] == 1
    assert _fit(tmp_path, synth, "--trainer.max_epochs", "3", "--ckpt_path", str(last)) == 0
    resumed = torch.load(tmp_path / "runs" / "tiny" / "version_1" / "checkpoints" / "last.ckpt", weights_only=True)
    reference = torch.load(trained / "checkpoints" / "last.ckpt", weights_only=True)
    assert resumed["epoch"] == reference["epoch"] == 2
    assert resumed["global_step"] == reference["global_step"]
    # one continuous history: every epoch validated once across the two logs, steps carry on
    before = [r for r in _rows(first / "metrics.csv") if r.get("val/acc")]
    after = [r for r in _rows(tmp_path / "runs" / "tiny" / "version_1" / "metrics.csv") if r.get("val/acc")]
    assert [int(r["epoch"]) for r in before] + [int(r["epoch"]) for r in after] == [0, 1, 2]
    assert int(after[0]["step"]) > int(before[-1]["step"])
    assert float(after[0]["val/acc_best"]) >= float(before[-1]["val/acc_best"])


def test_nan_loss_stops_with_the_step(synth: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    os.chdir(tmp_path)
    assert _fit(tmp_path, synth, "--model.lambda_af", "1e300") == 1
    err = capsys.readouterr().err
    assert "training loss is not finite at step 0" in err and "Traceback" not in err


def test_bad_configs_fail_before_training(synth: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    os.chdir(tmp_path)
    assert _fit(tmp_path, tmp_path / "nowhere") == 1
    assert "data root not found" in capsys.readouterr().err
    assert _fit(tmp_path, synth, "--model.backbone_weights", str(tmp_path / "resnet18_msceleb.pth")) == 1
    assert "resnet18_msceleb.pth: backbone weights file not found" in capsys.readouterr().err
    typo = tmp_path / "typo.yaml"
    typo.write_text("model:\n  num_hedz: 3\n")
    with pytest.raises(SystemExit) as exit_:
        _fit(tmp_path, synth, "-c", str(typo))
    assert exit_.value.code == 2
    assert "num_hedz" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _fit(tmp_path, synth, "--model.num_heads", "four")
    assert not (tmp_path / "runs" / "tiny" / "version_0" / "checkpoints").exists()


def test_evaluate_writes_a_consistent_report(trained: Path, synth: Path, dan_evaluate) -> None:
    metrics, out, _ = dan_evaluate(trained / "checkpoints" / "last.ckpt", "rafdb", synth, "--tta")
    preds = _rows(out / "predictions.csv")
    assert len(preds) == metrics["samples"] > 0
    assert metrics["accuracy"] == pytest.approx(sum(r["true"] == r["predicted"] for r in preds) / len(preds))
    recalls = [c["recall"] for c in metrics["per_class"].values() if c["support"] > 0]
    assert metrics["balanced_accuracy"] == pytest.approx(sum(recalls) / len(recalls))
    assert list(preds[0])[:4] == ["path", "true", "predicted", "confidence"] and "neutral" in preds[0]
    assert (out / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "balanced accuracy" in (out / "report.md").read_text()


def test_evaluate_reference_checkpoint_file(synth: Path, tmp_path: Path, dan_evaluate) -> None:
    plain = randomize(PlainDAN(7, 4), 5)
    ref = tmp_path / "rafdb_epoch21_acc0.897_bacc0.8275.pth"
    torch.save({"iter": 21, "model_state_dict": plain.state_dict()}, ref)
    metrics, _, printed = dan_evaluate(ref, "rafdb", synth, "--batch-size", "4")
    assert "assuming the rafdb label order" in printed
    assert metrics["samples"] > 0


@pytest.mark.slow
def test_ddp_two_processes_reduce_metrics(synth: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent), "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "dan",
        "fit",
        "-c",
        str(CONF),
        "--data.root",
        str(synth),
        "--trainer.max_epochs",
        "1",
        "--trainer.devices",
        "2",
        "--trainer.strategy",
        "ddp",
        "--trainer.accelerator",
        "cpu",
    ]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = tmp_path / "runs" / "tiny" / "version_0"
    n_test = _n_test(synth)
    confusion = _rows(log / "confusion" / "val_epoch000.csv")
    # each rank sees half of the split; the logged matrix counts every image once (reduced over ranks)
    total = sum(int(v) for r in confusion for k, v in r.items() if k != "true\\pred")
    assert total >= n_test and total <= n_test + 1  # DistributedSampler pads an odd split by one
    assert dan.load_model(log / "checkpoints" / "last.ckpt").num_heads == 2


def test_fit_says_its_precision_and_prints_a_line_per_epoch(synth: Path, tmp_path: Path, capsys) -> None:
    os.chdir(tmp_path)
    assert _fit(tmp_path, synth, "--trainer.max_epochs", "1", "--trainer.precision", "null") == 0
    out = capsys.readouterr().out
    assert re.search(r"^precision: auto -> (32-true|bf16-mixed) \(.+\)$", out, re.M), out
    epoch = r"^epoch 1/1 .*train/loss [\d.]+ .*val/acc [\d.]+ \(best [\d.]+\) .* \d+ s \(validation \d+ s\)$"
    line = re.search(epoch, out, re.M)
    assert line, out
    assert "best checkpoint:" in out and "last checkpoint:" in out
