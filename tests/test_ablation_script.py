"""The research scripts on tiny inputs: scripts.bench.ablation (two ablations, one epoch, a Markdown table) and
gpu_check.sh (the prepared GPU throughput check) as a CPU smoke run of a few steps."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dan.cli.main import main as dan_main

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "conf" / "tiny.yaml"
FAST = "--data.num_workers 0 --data.batch_size 8 --trainer.limit_train_batches 2"


def test_ablation_configs_are_small_deltas() -> None:
    for name in ("k1", "k2", "k4", "k8", "no_affinity", "no_partition", "mha"):
        path = ROOT / "configs" / "ablation" / f"{name}.yaml"
        assert path.read_text().startswith("# Ablation"), name
        delta = yaml.safe_load(path.read_text())
        assert list(delta) == ["model"] and len(delta["model"]) == 1, name


def _run(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "scripts.bench.ablation", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)


@pytest.mark.slow
def test_ablation_script_trains_scores_times_and_writes_the_table(tmp_path: Path) -> None:
    data, out = tmp_path / "data", tmp_path / "out"
    assert dan_main(["synth", str(data), "--per-class", "12", "--size", "48", "--workers", "1"]) == 0
    common = ["--configs", "k1", "mha", "--base", str(TINY), "--data", str(data), "--out", str(out)]
    common += ["--epochs", "1", "--fit-args", FAST, "--eval-workers", "0", "--timing-runs", "3"]
    dry = _run(*common, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.count(" fit -c ") == 2 and "configs/ablation/mha.yaml" in dry.stdout
    assert "dan evaluate --checkpoint" in dry.stdout and not out.exists()

    done = _run(*common)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    table = (out / "ablation.md").read_text()
    assert table in done.stdout
    assert f"**Data: `{data}` (rafdb layout)**" in table and "test` split" in table
    assert "| config | setting | accuracy | balanced accuracy | parameters | ms/face |" in table
    rows = {r["config"]: r for r in json.loads((out / "ablation.json").read_text())}
    assert rows["k1"]["setting"] == "model.num_heads=1" and rows["mha"]["setting"] == "model.head=mha"
    for row in rows.values():
        assert 0 <= row["accuracy"] <= 1 and 0 <= row["balanced_accuracy"] <= 1 and row["ms_per_face"] > 0
        assert f"| {row['config']} | {row['setting']} | {row['accuracy']:.4f} |" in table
        assert Path(row["checkpoint"]).parent == out / row["config"] / "checkpoints"
    assert (out / "mha" / "eval" / "metrics.json").is_file()
    assert rows["k1"]["parameters"] < rows["mha"]["parameters"]  # one DAN head against two mha heads (tiny: K=2)


@pytest.mark.slow
def test_gpu_check_runs_on_the_cpu(tmp_path: Path) -> None:
    """Its one command, tiny: the input pipelines side by side (old float32, new uint8, and 100 px faces resized on
    the device), the mha head under bf16 autocast and in 32-true."""
    env = {k: v for k, v in os.environ.items() if k != "OUT"}
    env.update(STEPS="3", DEVICE="cpu", BATCH="4", WORKERS="0", PER_CLASS="2", SIZE="32", HEAD="mha")
    env.update(ROWS="old new resize100 fp32", EXTRA="--data.image_size 32", PY=sys.executable)
    env.update(WORK=str(tmp_path / "work"), RESULTS=str(tmp_path / "results.json"))
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "gpu_check.sh")], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "| row | what | precision | images/s | step ms | data wait ms (median) | compute ms |" in done.stdout
    runs = json.loads((tmp_path / "results.json").read_text())["runs"]
    rows = [(r["row"], r["precision"]) for r in runs]
    assert rows == [("old", "bf16-mixed"), ("new", "bf16-mixed"), ("resize100", "bf16-mixed"), ("fp32", "32-true")]
    for r in runs:
        assert r["head"] == "mha" and r["timed_steps"] == 2 and r["images_per_s"] > 0
        assert r["compute_ms"] > 0 and r["data_wait_ms"] > 0 and r["peak_gpu_mib"] is None
    for side in (32, 100):  # the faces, and the same drawn at 100 px for resize100
        assert (tmp_path / "work" / f"data-{side}px-2" / "EmoLabel" / "list_patition_label.txt").is_file()
    assert (tmp_path / "work" / "gpu_check.log").is_file()
