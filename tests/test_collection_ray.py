"""The Ray Data run (``dan[scale]``) on a local two-worker cluster: the same rows as the single-process run, each
once, also when a worker is killed mid-job. One Ray start for the module."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import cv2
import pytest

from dan.collection.run import run_collection
from dan.inference.predictor import Predictor
from tests.test_collection import write_video

ray = pytest.importorskip("ray")
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)  # the workers inherit OMP_NUM_THREADS=1
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def videos(tmp_path_factory, face_tile, tiny_checkpoint):
    root = tmp_path_factory.mktemp("ray")
    tile = cv2.cvtColor(face_tile, cv2.COLOR_RGB2BGR)
    inputs = [write_video(root / f"v{i}.avi", tile, 30) for i in range(4)]
    (root / "damaged.mp4").write_bytes(b"not a video" * 30)
    inputs.append(root / "damaged.mp4")
    reference = root / "reference"
    predictor = Predictor(tiny_checkpoint, backend="torch", detector="none", threads=1)
    stats = run_collection(predictor, inputs, str(reference) + "/", "csv", quiet=True)
    assert stats.finished == 4 and len(stats.skipped) == 1
    return inputs, tiny_checkpoint, {p.name: p.read_bytes() for p in reference.glob("v*.csv")}


def _actor_pids() -> list[int]:
    """Pids of Ray Data's map actors (their process title names the actor class)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and b"MapWorker" in (proc / "cmdline").read_bytes():
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


def test_two_ray_workers_write_the_rows_of_the_single_process_run_once(cluster, videos, tmp_path) -> None:
    from dan.collection.distributed import run_on_ray

    inputs, ckpt, reference = videos
    out = tmp_path / "parts"
    stats = run_on_ray(ckpt, inputs, str(out) + "/", "csv", workers=2, backend="torch", detector="none")
    assert stats.finished == 4 and [Path(p).name for p, _ in stats.skipped] == ["damaged.mp4"]
    assert stats.rows == 4 * 30
    assert {p.name: p.read_bytes() for p in out.glob("v*.csv")} == reference  # same parts, same bytes


def test_a_worker_killed_mid_job_still_ends_with_every_row_once(cluster, videos, tmp_path) -> None:
    from dan.collection.distributed import run_on_ray

    inputs, ckpt, reference = videos
    out = tmp_path / "parts"
    result: dict = {}

    def job() -> None:
        result["stats"] = run_on_ray(ckpt, inputs, str(out) + "/", "csv", workers=2, backend="torch", detector="none")

    thread = threading.Thread(target=job)
    thread.start()
    deadline = time.monotonic() + 300
    while not list(out.glob("v*.csv")) and time.monotonic() < deadline:
        time.sleep(0.05)
    actors = _actor_pids()
    assert actors, "no scoring actor to kill"
    os.kill(actors[0], signal.SIGKILL)  # mid-job: other inputs are still to score
    thread.join(timeout=600)
    assert not thread.is_alive()
    assert {p.name: p.read_bytes() for p in out.glob("v*.csv")} == reference  # every row, once
    assert not list(out.glob(".*.tmp.csv"))


def test_dan_predict_on_ray_writes_one_parquet_file(cluster, videos, tmp_path, capsys) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    from dan.cli.main import main

    inputs, ckpt, reference = videos
    out = tmp_path / "rows.parquet"
    argv = ["predict", *map(str, inputs), "--checkpoint", str(ckpt), "--backend", "torch", "--detector", "none"]
    assert main([*argv, "--ray", "local", "--workers", "2", "--output", str(out)]) == 1  # the damaged file
    assert "4 input(s) scored on Ray, 0 already done, 1 skipped" in capsys.readouterr().err
    rows = pq.read_table(out).to_pylist()
    assert [(Path(r["path"]).name, r["frame"]) for r in rows] == [(f"v{i}.avi", f) for i in range(4) for f in range(30)]
    assert not (tmp_path / ".rows.parquet.parts").exists()
