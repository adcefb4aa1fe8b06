"""Preemption: SIGTERM or Ctrl-C mid-epoch saves a resumable checkpoint; the resumed run ends with the
weights of an uninterrupted one; checkpoints are atomic however the writer dies."""

from __future__ import annotations

import csv
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from dan.cli.main import main

CONF = Path(__file__).parent / "conf" / "tiny.yaml"
COMMON = ["--trainer.max_epochs", "3", "--trainer.deterministic", "true", "--data.batch_size", "4"]


def _fit(root: Path, data: Path, *extra: str) -> int:
    return main(
        ["fit", "-c", str(CONF), "--data.root", str(data), "--trainer.default_root_dir", str(root), *COMMON, *extra]
    )


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True, map_location="cpu")["state_dict"]


def _steps(metrics: Path) -> list[int]:
    with open(metrics) as f:
        return [int(r["step"]) for r in csv.DictReader(f) if r.get("train/loss_step")]


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "data"
    assert main(["synth", str(out), "--per-class", "6", "--size", "48", "--seed", "5", "--workers", "0"]) == 0
    return out


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_mid_epoch_saves_and_the_resumed_run_ends_with_the_same_weights(
    synth: Path, tmp_path: Path, monkeypatch, capsys, signum: int
) -> None:
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    whole.mkdir()
    cut.mkdir()
    monkeypatch.chdir(whole)  # each run logs under ./runs
    assert _fit(whole, synth) == 0
    reference = _weights(whole / "runs" / "tiny" / "version_0" / "checkpoints" / "last.ckpt")
    capsys.readouterr()

    step = random.Random(int(signum)).randint(2, 16)  # somewhere inside an epoch (7 steps an epoch)
    monkeypatch.chdir(cut)
    # The signalled run is a process of its own, as a preempted `dan fit` is: a signal sent to the test
    # runner's process would meet whatever handlers earlier tests in that process left behind.
    args = ["fit", "-c", str(CONF), "--data.root", str(synth), "--trainer.default_root_dir", str(cut), *COMMON]
    args += ["--trainer.callbacks+=training_helpers.SignalAt", "--trainer.callbacks.step", str(step)]
    args += ["--trainer.callbacks.signum", str(int(signum))]
    code = "import sys; from dan.cli.main import main; sys.exit(main(sys.argv[1:]))"
    path = os.pathsep.join([str(Path(__file__).parent), str(Path(__file__).parents[1])])
    env = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": str(torch.get_num_threads())}  # same sums
    run = subprocess.run([sys.executable, "-c", code, *args], cwd=cut, env=env, capture_output=True, text=True)
    status, err = run.returncode, run.stderr
    last = cut / "runs" / "tiny" / "version_0" / "checkpoints" / "last.ckpt"
    name = "SIGTERM" if signum == signal.SIGTERM else "SIGINT"
    assert status == (143 if signum == signal.SIGTERM else 130)
    assert f"stopped by {name}; resumable checkpoint: {last}" in err and f"--ckpt_path {last}" in err
    saved = torch.load(last, weights_only=True)
    assert saved["global_step"] == step + 1  # the batch that was running when the signal came is in
    assert _fit(cut, synth, "--ckpt_path", str(last)) == 0
    resumed = _weights(cut / "runs" / "tiny" / "version_1" / "checkpoints" / "last.ckpt")
    assert resumed.keys() == reference.keys()
    for key, value in reference.items():
        torch.testing.assert_close(resumed[key], value, atol=1e-6, rtol=0, msg=key)
    steps = _steps(cut / "runs" / "tiny" / "version_0" / "metrics.csv") + _steps(
        cut / "runs" / "tiny" / "version_1" / "metrics.csv"
    )
    assert steps == _steps(whole / "runs" / "tiny" / "version_0" / "metrics.csv")  # no gap, no repeat


def test_kill_during_checkpoint_writes_never_breaks_last_ckpt(tmp_path: Path) -> None:
    """A process writing checkpoints in a loop is killed (-9) many times, TMPDIR on another folder."""
    target = tmp_path / "run" / "last.ckpt"
    target.parent.mkdir()
    elsewhere = tmp_path / "tmpdir"
    elsewhere.mkdir()
    # One process imports torch once and forks a fresh writer per round (an import per round would
    # make this test minutes long); only the forked writers are killed.
    code = (
        "import os, signal, sys, torch\n"
        "from dan.training.checkpoint_io import AtomicCheckpointIO\n"
        "signal.signal(signal.SIGCHLD, signal.SIG_IGN)\n"
        "for _ in sys.stdin:\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        io, i = AtomicCheckpointIO(), 0\n"
        "        while True:\n"
        "            io.save_checkpoint({'step': i, 'w': torch.full((1_500_000,), float(i))}, sys.argv[1])\n"
        "            i += 1\n"
        "            if i == 1: print('ready', os.getpid(), flush=True)\n"
    )
    env = {**os.environ, "TMPDIR": str(elsewhere), "OMP_NUM_THREADS": "1"}
    zygote = subprocess.Popen(
        [sys.executable, "-c", code, str(target)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
    )
    assert zygote.stdin is not None and zygote.stdout is not None
    try:
        for round_ in range(20):
            zygote.stdin.write(b"go\n")
            zygote.stdin.flush()
            line = zygote.stdout.readline().split()
            assert line and line[0] == b"ready", line
            time.sleep(0.05 + 0.01 * (round_ % 7))
            writer = int(line[1])
            os.kill(writer, signal.SIGKILL)
            while Path(f"/proc/{writer}").exists():  # reaped by the forking process (SIGCHLD ignored)
                time.sleep(0.01)
            ckpt = torch.load(target, weights_only=True)  # always a whole checkpoint
            assert torch.equal(ckpt["w"], torch.full((1_500_000,), float(ckpt["step"])))
    finally:
        zygote.kill()
        zygote.wait()
    leftovers = [p.name for p in target.parent.iterdir() if p.name != "last.ckpt"]
    assert len(leftovers) <= 1  # at most the one temporary file of the last killed writer
    # nothing of the checkpoint's ever goes through TMPDIR (torch itself may make its compile cache there)
    assert [p.name for p in elsewhere.iterdir() if not p.name.startswith("torchinductor")] == []


def test_unsafe_or_broken_ckpt_path_is_one_line(synth: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "loops": {}, "x": Evil()}, evil)
    assert _fit(tmp_path, synth, "--ckpt_path", str(evil)) == 1
    err = capsys.readouterr().err
    assert "evil.ckpt: refused to load" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    broken = tmp_path / "broken.ckpt"
    broken.write_bytes(evil.read_bytes()[:100])
    assert _fit(tmp_path, synth, "--ckpt_path", str(broken)) == 1
    assert "broken.ckpt: not a readable PyTorch checkpoint" in capsys.readouterr().err
