"""``python -m scripts.maint.soak`` (the 50,000-frame soak of the demo loop) runs, samples memory and says OK."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_soak_script_runs_the_demo_loop_and_reports() -> None:
    args = ["--frames", "60", "--every", "20", "--max-p95-ratio", "1e6"]
    out = subprocess.run(
        [sys.executable, "-m", "scripts.maint.soak", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    # latency over 6-frame tenths on a shared CI machine is noise: the 50,000-frame run judges it
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "60 frames in" in out.stdout and "60 faces" in out.stdout  # every generated frame has its face
    assert "RSS after warm-up / middle / end" in out.stdout and out.stdout.strip().endswith("OK")
