"""``python -m scripts.bench.step`` (the quickstart's training step, old path against new) prints its table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_benchmark_step_prints_both_paths_flops_and_the_matmul_ceiling() -> None:
    args = ["--size", "32", "--batch", "2", "--threads", "1", "--rounds", "1", "--iters", "1", "--breakdown"]
    out = subprocess.run(
        [sys.executable, "-m", "scripts.bench.step", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    rows = {line.split("  ")[0].strip(): line.split() for line in out.stdout.splitlines()[3:]}
    assert set(rows) == {"old", "tap products", "new", "matmul 2048^2 fp32"}, out.stdout
    assert rows["old"][2] == "1.00x" and "CPU:" in out.stdout and "synthetic.yaml" in out.stdout
    # 32 px: 1 x 1 maps, where the products skip 8 of the 9 taps of every 3x3 convolution
    assert float(rows["new"][-2]) < float(rows["old"][-2])


def test_benchmark_step_cpu_clock_needs_one_thread() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "scripts.bench.step", "--clock", "cpu", "--threads", "2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2 and "--threads 1" in out.stderr
