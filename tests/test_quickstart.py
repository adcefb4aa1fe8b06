"""The README's main command, scaled down: it runs end to end, prints progress, and resumes when run again."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _quickstart(out: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "QUICKSTART_DIR": str(out), "QUICKSTART_PER_CLASS": "10"}
    args = ["--trainer.max_epochs", "2", "--data.image_size", "32", "--data.batch_size", "8", *extra]
    return subprocess.run(
        ["bash", str(ROOT / "scripts" / "quickstart.sh"), *args],
        cwd=out.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.mark.slow
def test_quickstart_runs_end_to_end_and_resumes(tmp_path: Path) -> None:
    out = tmp_path / "qs"
    first = _quickstart(out)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    text = first.stdout
    assert re.search(r"^== CPU: .+threads; load", text, re.M) and "== 1/4" in text and "== 4/4" in text
    assert re.search(r"^epoch 2/2 .*val/acc", text, re.M)  # progress, one line an epoch
    assert (out / "eval" / "metrics.json").is_file() and (out / "demo_out.mp4").stat().st_size > 0
    assert "- split: `test`" in (out / "eval" / "report.md").read_text()  # scored on the test split
    # run again: the data set is kept and training resumes from its last checkpoint
    second = _quickstart(out)
    assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-2000:]
    assert "already holds this data set" in second.stdout
    assert "resuming from" in second.stdout and not re.search(r"^epoch 1/2", second.stdout, re.M)
