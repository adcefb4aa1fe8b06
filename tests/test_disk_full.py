"""A full disk (ENOSPC, injected at the write) while writing a checkpoint, a report, a video or a CSV:
one line, the previous file intact, nothing half-written left, the run stopped cleanly."""

from __future__ import annotations

import errno
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import dan
from dan.cli.main import main
from dan.errors import DanError
from dan.fileio import atomic_write
from dan.training.checkpoint_io import AtomicCheckpointIO


def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_atomic_write_keeps_the_previous_file(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "report.md"
    target.write_text("previous")
    monkeypatch.setattr("dan.fileio.fsync_path", _enospc)  # the disk fills while the new file is flushed
    with pytest.raises(DanError, match=r"report.md: cannot write the output: No space left on device$"):
        atomic_write(target, "new content")
    assert target.read_text() == "previous" and [p.name for p in tmp_path.iterdir()] == ["report.md"]


def test_checkpoint_save_on_a_full_disk(tmp_path: Path, monkeypatch) -> None:
    last = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"step": 1, "w": torch.ones(3)}, last)

    def half_then_full(obj, path):
        Path(path).write_bytes(b"PK\x03\x04 half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("dan.training.checkpoint_io.torch.save", half_then_full)
    with pytest.raises(DanError, match="last.ckpt: cannot write the checkpoint: No space left on device"):
        io.save_checkpoint({"step": 2, "w": torch.zeros(3)}, last)
    assert torch.load(last, weights_only=True)["step"] == 1 and [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_demo_csv_and_video_on_a_full_disk(tmp_path: Path, monkeypatch, capsys) -> None:
    torch.manual_seed(0)
    model = dan.DAN(7, 1, backbone="test_resnet").eval()
    model.labels, model.preprocessing = dan.LABEL_SETS["rafdb"], dan.Preprocessing(input_size=32)
    ckpt = dan.save_model(model, tmp_path / "m.pt")
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(8):
        cv2.imwrite(str(frames / f"{i}.png"), np.full((40, 40, 3), 30 * i, np.uint8))
    csv, video = tmp_path / "faces.csv", tmp_path / "out.avi"
    csv.write_text("previous run\n")
    written = []

    def write_then_fill(self, row):
        written.append(row)
        if len(written) == 4:
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("dan.demo.outputs.CsvStream.write", write_then_fill)
    args = ["demo", "--checkpoint", str(ckpt), "--source", str(frames), "--detector", "none", "--no-display"]
    assert main([*args, "--csv", str(csv), "--output", str(video)]) == 1
    err = capsys.readouterr().err
    assert "disk full at frame 3 (No space left on device)" in err and "Traceback" not in err
    assert csv.read_text() == "previous run\n" and not video.exists()  # nothing half-written published
    assert sorted(p.name for p in tmp_path.iterdir()) == ["faces.csv", "frames", "m.pt"]


def test_cli_reports_a_full_disk_in_one_line(tmp_path: Path, monkeypatch, capsys) -> None:
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "x.json"))

    monkeypatch.setattr("dan.cli.synth.main", full)
    assert main(["synth", str(tmp_path / "d")]) == 1
    assert capsys.readouterr().err.strip() == f"dan synth: error: {tmp_path / 'x.json'}: No space left on device"
