"""Balanced ranks on packed data: 1, 2 and 4 processes (gloo on loopback, nodes x devices) and 0, 1, 2 workers."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from dan.data.pack import pack_dataset
from tests.fakedata import make_rafdb

pytest.importorskip("litdata")

BATCH = 3  # tests/ranks_helper.py's batch size


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_ranks(world: int, devices: int, root: Path, out: Path) -> None:
    port, repo = _free_port(), Path(__file__).parents[1]
    procs = []
    for rank in range(world):
        env = {**os.environ, "PYTHONPATH": str(repo), "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1"}
        env.update(MASTER_PORT=str(port), WORLD_SIZE=str(world), RANK=str(rank))
        env.update(NODE_RANK=str(rank // devices), LOCAL_RANK=str(rank % devices))
        cmd = [sys.executable, "-m", "tests.ranks_helper", str(root), str(out)]
        procs.append(subprocess.Popen(cmd, env=env, cwd=repo, stderr=subprocess.PIPE, text=True))
    try:
        errors = [p.communicate(timeout=240)[1] for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert all(p.returncode == 0 for p in procs), "\n".join(e[-1500:] for e in errors)


@pytest.mark.slow
@pytest.mark.parametrize(("world", "devices"), [(1, 1), (2, 2), (4, 2)])  # 4: two nodes of two devices
def test_every_rank_gets_equal_batches_and_no_sample_twice(tmp_path: Path, world: int, devices: int) -> None:
    make_rafdb(tmp_path / "raf", train_per_class=5)  # 35 training faces; 10 % held out for validation
    pack_dataset("rafdb", tmp_path / "raf", tmp_path / "packed", chunk_bytes="8KB", say=lambda _: None)
    _run_ranks(world, devices, tmp_path / "packed", tmp_path / "out.json")
    report = json.loads((tmp_path / "out.json").read_text())
    n = report["size"]
    per_rank = n // world // BATCH  # batches: each rank's equal share, its last partial batch dropped
    for key, ranks in report["result"].items():
        assert len(ranks) == world, key
        assert [len(r) for r in ranks] == [per_rank * BATCH] * world, key
        union = [i for r in ranks for i in r]
        assert len(set(union)) == len(union), f"{key}: a sample seen twice in an epoch"
        assert set(union) <= set(range(n))
        dropped = n - len(union)  # the stated remainder: n % world, then each rank's partial batch
        assert dropped == n % world + world * (n // world % BATCH), key
    assert report["result"]["0/0"] == report["result"]["2/0"]  # the same shares whatever the worker count
    assert report["result"]["0/0"] != report["result"]["0/1"]  # a new order each epoch


@pytest.mark.slow
def test_two_process_fit_on_packed_data_reduces_its_epoch_metrics(tmp_path: Path) -> None:
    make_rafdb(tmp_path / "raf", train_per_class=3)
    pack_dataset("rafdb", tmp_path / "raf", tmp_path / "packed", say=lambda _: None)
    repo = Path(__file__).parents[1]
    conf = repo / "tests" / "conf" / "tiny.yaml"
    args = ["fit", "-c", str(conf), "--data.format", "packed", "--data.root", str(tmp_path / "packed")]
    args += ["--data.image_size", "32", "--data.batch_size", "2", "--trainer.max_epochs", "1"]
    args += ["--trainer.devices", "2", "--trainer.strategy", "ddp", "--trainer.default_root_dir", str(tmp_path)]
    env = {**os.environ, "PYTHONPATH": str(repo), "OMP_NUM_THREADS": "1", "MASTER_PORT": str(_free_port())}
    run = subprocess.run(
        [sys.executable, "-m", "dan", *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "sync_dist" not in run.stderr  # no epoch-level metric of rank 0 alone
    assert list(tmp_path.glob("runs/tiny/version_*/checkpoints/last.ckpt"))
