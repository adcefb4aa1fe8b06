"""Crafted images that declare 30000 x 30000 pixels, through every command that reads images.

Each is refused in one line naming the file, at once and in little memory (decoded, each would take
gigabytes), and leaves no output under the final name. The model is a stub (the check comes before it).
"""

from __future__ import annotations

import resource
import time
from pathlib import Path

import numpy as np
import pytest
from test_imaging_limits import BOMBS

import dan.cli.data  # noqa: F401 - imported here, so the time budgets below time the work, not the imports
import dan.data.check  # noqa: F401
from dan.cli.main import main
from dan.data.dataset import build_dataset
from dan.imaging import ImageReadError
from dan.inference.detectors import Detector
from dan.inference.predictor import Predictor
from dan.models.metadata import ModelMetadata
from dan.preprocess import Preprocessing
from dan.runtime.backend import Backend, Outputs
from dan.vocab import LABEL_SETS

import fakedata as fd

RAFDB = LABEL_SETS["rafdb"]


class StubBackend(Backend):
    """Seven-class logits, all equal; counts calls."""

    calls = 0

    def __init__(self) -> None:
        super().__init__(ModelMetadata({"num_classes": 7}, labels=RAFDB, preprocessing=Preprocessing(input_size=16)))

    def outputs(self, x: np.ndarray, attention: bool = False) -> Outputs:
        StubBackend.calls += 1
        return Outputs(np.zeros((len(x), len(RAFDB)), np.float32))


class CentreDetector(Detector):
    """One face in the middle of every frame."""

    def _detect(self, frame_rgb: np.ndarray):
        h, w = frame_rgb.shape[:2]
        return [(w // 4, h // 4, w // 2, h // 2, 0.9)]


def _predictor(*args, **kwargs) -> Predictor:
    return Predictor(StubBackend(), detector=CentreDetector(None))


@pytest.fixture(autouse=True)
def _stub_model(monkeypatch):
    monkeypatch.setattr("dan.cli.predict.predictor_from_args", _predictor)
    monkeypatch.setattr("dan.cli.demo.predictor_from_args", _predictor)
    monkeypatch.setattr("dan.runtime.loader.load_backend", lambda *a, **k: StubBackend())
    monkeypatch.setattr("dan.auto.open.load_backend", lambda *a, **k: StubBackend())  # evaluate, calibrate


@pytest.fixture(params=sorted(BOMBS))
def bomb(request, tmp_path) -> Path:
    path = tmp_path / "in" / request.param
    path.parent.mkdir()
    path.write_bytes(BOMBS[request.param]())
    return path


class Budget:
    """Asserts a block ran in under ``seconds`` (decoding took 21 s and more; this machine may be busy) and
    raised the process's peak memory by under ``mb`` (decoding took gigabytes)."""

    def __init__(self, seconds: float = 15.0, mb: int = 300) -> None:
        self.seconds, self.mb = seconds, mb

    def __enter__(self) -> Budget:
        self.start, self.peak, self.children = time.perf_counter(), _peak(resource.RUSAGE_SELF), _peak()
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is None:
            assert time.perf_counter() - self.start < self.seconds
            peak = _peak(resource.RUSAGE_SELF)
            assert peak - self.peak < self.mb, f"peak memory grew by {peak - self.peak:.0f} MB"
            # a DataLoader worker (forked: it starts as big as this process)
            assert _peak() < max(self.children, peak) + self.mb, f"a child process peaked at {_peak():.0f} MB"


def _peak(who: int = resource.RUSAGE_CHILDREN) -> float:
    """Peak resident memory in MB of this process, or of its largest finished child."""
    return resource.getrusage(who).ru_maxrss / 1024


def _refusal(bomb: Path) -> str:
    """What the one line says about ``bomb``."""
    if bomb.suffix == ".png":  # JPEG 2000 inside: a type whose size dan does not read
        return f"{bomb}: not a decodable image: its size cannot be read from its header"
    return f"{bomb}: image is 30000x30000 pixels (900 megapixels), more than the limit of 50 megapixels"


def _one_line_with(text: str, err: str) -> None:
    lines = [line for line in err.splitlines() if text in line]
    assert len(lines) == 1, err


def test_predict_refuses(bomb, tmp_path, capfd) -> None:
    out = tmp_path / "faces.csv"
    with Budget():
        assert main(["predict", str(bomb), "--checkpoint", "stub", "--output", str(out)]) == 1
    _one_line_with(_refusal(bomb), capfd.readouterr().err)
    assert not out.exists() and not list(tmp_path.glob(".*tmp*"))


def test_demo_refuses_and_writes_nothing(bomb, tmp_path, capfd) -> None:
    video, table = tmp_path / "out.avi", tmp_path / "faces.csv"
    argv = ["demo", "--checkpoint", "stub", "--source", str(bomb), "--output", str(video), "--csv", str(table)]
    with Budget():
        assert main([*argv, "--no-display"]) == 1
    err = capfd.readouterr().err
    _one_line_with(_refusal(bomb), err)
    assert not video.exists() and not table.exists() and not list(tmp_path.glob(".*tmp*"))
    assert "wrote" not in err


def test_demo_takes_an_image_by_its_content_not_its_name(tmp_path, capfd) -> None:
    """A still image named like a video goes through the image path (and its limit), not FFmpeg."""
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(BOMBS["stray.jpg"]())
    video = tmp_path / "out.avi"
    with Budget():
        assert (
            main(["demo", "--checkpoint", "stub", "--source", str(clip), "--output", str(video), "--no-display"]) == 1
        )
    captured = capfd.readouterr()
    _one_line_with(f"{clip}: image is 30000x30000 pixels", captured.err)
    for raw in ("[mjpeg", "[image2", "[mov", "[ERROR", "[ WARN", "Corrupt JPEG"):  # FFmpeg's, OpenCV's, libjpeg's
        assert raw not in captured.err + captured.out
    assert not video.exists()


def _folder_set(root: Path, bomb: Path) -> Path:
    """A class-folder data set with one good image per class and the bomb among the happy faces."""
    fd.make_folder(root, classes=("happiness", "sadness"), splits=("train", "test"), per=1)
    for split in ("train", "test"):
        (root / split / "happiness" / bomb.name).write_bytes(bomb.read_bytes())
    return root / "train" / "happiness" / bomb.name


def test_evaluate_refuses(bomb, tmp_path, capfd) -> None:
    target = _folder_set(tmp_path / "set", bomb)
    out = tmp_path / "report"
    argv = ["evaluate", "--checkpoint", "stub", "--format", "folder", "--root", str(tmp_path / "set")]
    with Budget(seconds=30):  # a DataLoader worker process starts
        assert main([*argv, "--split", "test", "--output", str(out), "--workers", "1"]) == 1
    err = capfd.readouterr().err
    _one_line_with(_refusal(bomb).replace(str(bomb), str(target).replace("train", "test")), err)
    said = [line for line in err.strip().splitlines() if not line.startswith(("device: ", "backend: "))]
    assert "Traceback" not in err and len(said) == 1  # where the model runs, then the one-line refusal
    assert not out.exists() or not any(out.iterdir())


def test_data_check_lists_it(bomb, tmp_path, capfd) -> None:
    target = _folder_set(tmp_path / "set", bomb)
    with Budget():
        assert main(["data", "check", "--format", "folder", "--root", str(tmp_path / "set"), "--workers", "1"]) == 1
    out = capfd.readouterr().out
    _one_line_with(_refusal(bomb).replace(str(bomb), str(target)), out)


def test_training_dataset_refuses(bomb, tmp_path) -> None:
    target = _folder_set(tmp_path / "set", bomb)
    dataset = build_dataset("folder", tmp_path / "set", "train", image_size=16)
    index = next(i for i, (source, _) in enumerate(dataset.samples) if source == str(target))
    with Budget(), pytest.raises(ImageReadError) as info:
        dataset[index]
    assert str(info.value).startswith(_refusal(bomb).replace(str(bomb), str(target))) and "\n" not in str(info.value)
    skipping = build_dataset("folder", tmp_path / "set", "train", image_size=16, skip_bad_files=True)
    with Budget():
        image, _ = skipping[index]  # another sample in its place, counted
    assert tuple(image.shape) == (3, 16, 16) and skipping.bad_files == 1
