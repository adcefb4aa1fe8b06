"""Outputs are proved writable before any work starts, and a run that fails leaves nothing under their names.

``/proc`` passes a permission test for root but cannot hold files (a read-only mount does the same):
the check creates the very temporary file the writer will use, so it fails there, in one line, before
the model is loaded.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

from dan.cli.main import main
from dan.demo.loop import run_demo
from dan.demo.sources import Frame, FrameSource
from dan.errors import DanError
from dan.fileio import check_writable, temp_path_for
from dan.inference.detectors import Detector
from dan.inference.predictor import Predictor
from dan.models.metadata import ModelMetadata
from dan.preprocess import Preprocessing
from dan.runtime.backend import Backend, Outputs

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc is Linux's")

PROC = Path("/proc")


class ModelLoaded(AssertionError):
    """Raised where a command would load its model: the output check must come first."""


def _never(*args, **kwargs):
    raise ModelLoaded("the model was loaded before the output was checked")


@pytest.fixture(autouse=True)
def _no_model(monkeypatch):
    monkeypatch.setattr("dan.cli.predict.predictor_from_args", _never)
    monkeypatch.setattr("dan.cli.demo.predictor_from_args", _never)
    monkeypatch.setattr("dan.models.loading.load_model", _never)
    monkeypatch.setattr("dan.runtime.loader.load_backend", _never)
    monkeypatch.setattr("dan.auto.open.load_backend", _never)  # how evaluate and calibrate open the model
    monkeypatch.setattr("dan.inference.attention._as_backend", _never)


def _one_line(capsys, *names: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for name in names:
        assert name in err
    return err


def test_check_writable_creates_the_temporary_file_it_proves(tmp_path) -> None:
    with pytest.raises(DanError) as info:
        check_writable(PROC / "p.csv")
    message = str(info.value)
    assert message.startswith("/proc/p.csv: cannot write the output") and "\n" not in message
    target = tmp_path / "faces.csv"
    assert check_writable(target) == target
    assert list(tmp_path.iterdir()) == []  # the probe is gone, and nothing was written under the name
    temp_path_for(target).write_text("a writer of this process, mid-write")
    check_writable(target)  # its own temporary file is proof enough, and is left alone
    assert temp_path_for(target).read_text() == "a writer of this process, mid-write"


@pytest.mark.parametrize(
    "argv",
    [
        ["predict", "x.jpg", "--checkpoint", "m.pt", "--output", "/proc/p.csv"],
        ["predict", "x.jpg", "--checkpoint", "m.pt", "--output", "/proc/p.json"],
        ["export", "--checkpoint", "m.pt", "--output", "/proc/x.onnx"],
        ["export", "--checkpoint", "m.pt", "--output", "/proc/x.pt2"],
        ["demo", "--checkpoint", "m.pt", "--source", "x.jpg", "--csv", "/proc/o.csv"],
        ["demo", "--checkpoint", "m.pt", "--source", "x.jpg", "--output", "/proc/o.avi"],
    ],
)
def test_commands_refuse_an_output_that_cannot_hold_files_before_loading_the_model(argv, capsys) -> None:
    assert main(argv) == 1
    _one_line(capsys, argv[-1], "cannot write")


def test_evaluate_refuses_a_report_folder_that_cannot_hold_files(tmp_path, capsys) -> None:
    (tmp_path / "test").mkdir()
    argv = ["evaluate", "--checkpoint", "m.pt", "--format", "folder", "--root", str(tmp_path), "--split", "test"]
    assert main([*argv, "--output", "/proc/self"]) == 1  # a folder that exists
    _one_line(capsys, "/proc/self/metrics.json", "cannot write the report")
    assert main([*argv, "--output", "/proc/report"]) == 1  # one that cannot be created
    _one_line(capsys, "/proc/report", "cannot create the report folder")


def test_attention_figure_refuses_before_loading(tmp_path) -> None:
    from dan.inference.attention import save_attention_figure

    with pytest.raises(DanError, match="/proc/fig.png: cannot write the figure"):
        save_attention_figure("m.pt", tmp_path / "face.jpg", PROC / "fig.png")


def test_synth_refuses_a_root_that_cannot_hold_files(capsys) -> None:
    assert main(["synth", "/proc/self", "--per-class", "1", "--workers", "0"]) == 1
    _one_line(capsys, "/proc/self")


# A demo that fails publishes nothing: not the video, not the CSV.


class _Backend(Backend):
    def __init__(self) -> None:
        super().__init__(
            ModelMetadata({"num_classes": 2}, labels=("a", "b"), preprocessing=Preprocessing(input_size=16))
        )

    def outputs(self, x: np.ndarray, attention: bool = False) -> Outputs:
        return Outputs(np.zeros((len(x), 2), np.float32))


class _FailingDetector(Detector):
    """A face in every frame, then an error at frame ``fail_at`` (a bug, a device lost...)."""

    def __init__(self, fail_at: int) -> None:
        super().__init__(None)
        self.fail_at, self.calls = fail_at, 0

    def _detect(self, frame_rgb: np.ndarray):
        self.calls += 1
        if self.calls > self.fail_at:
            raise RuntimeError("detector failed")
        return [(10, 10, 40, 40, 0.9)]


class _Frames(FrameSource):
    def __init__(self, n: int) -> None:
        super().__init__()
        self.n, self.fps, self.size, self.name = n, 10.0, (96, 80), "frames"

    def __iter__(self):
        for i in range(self.n):
            yield Frame(i, i / self.fps, np.full((80, 96, 3), 60 + i, np.uint8), self.name)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_a_demo_that_fails_midway_publishes_nothing(tmp_path) -> None:
    video, table = tmp_path / "out.avi", tmp_path / "faces.csv"
    table.write_text("a previous run's rows\n")
    predictor = Predictor(_Backend(), detector=_FailingDetector(fail_at=3))
    with pytest.raises(RuntimeError, match="detector failed"):
        run_demo(predictor, _Frames(6), output=video, csv_path=table, display=False, prefetch=False)
    assert _leftovers(tmp_path) == ["faces.csv"] and table.read_text() == "a previous run's rows\n"


def test_a_video_that_fails_its_read_back_is_not_published(tmp_path, monkeypatch) -> None:
    video, table = tmp_path / "out.avi", tmp_path / "faces.csv"
    monkeypatch.setattr("dan.demo.writer.probe_video", lambda path: (0, 0, 0, 0.0))  # an unreadable file
    predictor = Predictor(_Backend(), detector=_FailingDetector(fail_at=99))
    with pytest.raises(DanError, match="out.avi: the written video cannot be read back; not written"):
        run_demo(predictor, _Frames(3), output=video, csv_path=table, display=False, prefetch=False)
    assert _leftovers(tmp_path) == []  # neither the video nor the CSV of a run that failed


def test_a_demo_without_frames_publishes_nothing(tmp_path) -> None:
    video, table = tmp_path / "out.avi", tmp_path / "faces.csv"
    predictor = Predictor(_Backend(), detector=_FailingDetector(fail_at=99))
    stats = run_demo(predictor, _Frames(0), output=video, csv_path=table, display=False)
    assert stats.frames == 0 and not stats.csv_written and _leftovers(tmp_path) == []
    assert os.listdir(tmp_path) == []
