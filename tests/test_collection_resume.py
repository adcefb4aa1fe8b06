"""``dan predict`` over videos as a separate process: killed half way and rerun (every row once), and memory flat
in a video's length."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from dan.cli.main import main
from tests.test_collection import write_video

ROOT = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}


def _predict_argv(ckpt: Path, inputs: list[Path]) -> list[str]:
    return [sys.executable, "-m", "dan", "predict", *map(str, inputs), "--checkpoint", str(ckpt), "--backend", "torch"]


def test_sigterm_half_way_keeps_finished_videos_and_a_rerun_writes_every_row_once(
    tmp_path, face_tile, tiny_checkpoint, one_torch_thread, capsys
) -> None:
    tile = cv2.cvtColor(face_tile, cv2.COLOR_RGB2BGR)
    videos = [write_video(tmp_path / f"v{i}.avi", tile, 40) for i in range(4)]
    base = _predict_argv(tiny_checkpoint, videos) + [
        "--detector",
        "none",
        "--workers",
        "1",
        "--threads",
        "1",
        "--quiet",
    ]
    reference = tmp_path / "reference.csv"
    assert main([*base[3:], "--output", str(reference)]) == 0  # in this process: one start less
    capsys.readouterr()

    out = tmp_path / "rows.csv"
    parts = tmp_path / ".rows.csv.parts"
    run = subprocess.Popen([*base, "--output", str(out)], env=_env(), stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not list(parts.glob("v*.csv")) and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    run.send_signal(signal.SIGTERM)  # half way: the first video's part is in place
    _, err = run.communicate(timeout=60)
    assert run.returncode == 130, err
    assert "interrupted" in err and "run the same command again" in err
    done = sorted(p.name for p in parts.glob("v*.csv"))
    assert 1 <= len(done) < len(videos)
    assert not out.exists()  # no file that could pass for the whole result
    assert not list(parts.glob(".*.tmp.csv"))  # the video being scored was dropped whole

    assert main([*base[3:], "--output", str(out)]) == 0
    assert f"{len(videos) - len(done)} input(s) scored, {len(done)} already done" in capsys.readouterr().err
    rows = out.read_text().splitlines()
    keys = [tuple(r.split(",")[:2]) for r in rows[1:]]  # (video, frame): one face a frame
    assert len(keys) == len(set(keys)) == 4 * 40
    assert out.read_bytes() == reference.read_bytes()  # the same rows as one uninterrupted run, each once


def _video_of(path: Path, seconds: float, fps: float = 10.0) -> Path:
    """A 96x96 MJPG video of one face-like drawing (quick to encode and decode)."""
    frame = np.full((96, 96, 3), 120, np.uint8)
    cv2.circle(frame, (48, 48), 30, (150, 180, 220), -1)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (96, 96))
    for i in range(int(seconds * fps)):
        frame[0, 0] = i % 256  # frames differ
        writer.write(frame)
    writer.release()
    return path


_PEAK = (
    "import resource, sys\n"
    "from dan.cli.main import main\n"
    "rc = main(sys.argv[1:])\n"
    "print('peak', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, flush=True)\n"
    "sys.exit(rc)\n"
)


def _peak_kib(ckpt: Path, video: Path, out: Path) -> int:
    argv = [sys.executable, "-c", _PEAK, "predict", str(video), "--checkpoint", str(ckpt), "--backend", "torch"]
    argv += ["--detector", "none", "--every", "20", "--workers", "1", "--threads", "1", "--quiet", "--output", str(out)]
    done = subprocess.run(argv, env=_env(), capture_output=True, text=True, timeout=600, check=True)
    return int(done.stdout.split("peak")[1])


@pytest.mark.slow
def test_memory_of_a_30_minute_video_stays_within_50_mb_of_a_1_minute_one(tmp_path, tiny_checkpoint) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    short = _peak_kib(tiny_checkpoint, _video_of(tmp_path / "short.avi", 60), tmp_path / "short.parquet")
    long = _peak_kib(tiny_checkpoint, _video_of(tmp_path / "long.avi", 30 * 60), tmp_path / "long.parquet")
    assert pq.read_metadata(tmp_path / "short.parquet").num_rows == 60 * 10 // 20
    assert pq.read_metadata(tmp_path / "long.parquet").num_rows == 30 * 60 * 10 // 20
    assert long - short < 50 * 1024, f"peak resident memory {short} KiB for 1 minute, {long} KiB for 30 minutes"
