"""The demo loop with stub detector and backend: detection / classification cadence, hold, smoothing."""

from __future__ import annotations

import csv

import numpy as np

from dan.demo.loop import csv_header, run_demo
from dan.demo.sources import Frame, FrameSource
from dan.demo.writer import probe_video
from dan.inference.detectors import Detector
from dan.inference.predictor import Predictor
from dan.models.metadata import ModelMetadata
from dan.preprocess import Preprocessing
from dan.runtime.backend import Backend, Outputs

LABELS = ("a", "b", "c")


class FlickerBackend(Backend):
    """Logits that flip between class a and class b every frame; counts calls and faces."""

    def __init__(self) -> None:
        super().__init__(ModelMetadata({"num_classes": 3}, labels=LABELS, preprocessing=Preprocessing(input_size=16)))
        self.calls = self.faces = 0

    def outputs(self, x: np.ndarray, attention: bool = False) -> Outputs:
        return Outputs(self.logits(x))

    def logits(self, x: np.ndarray) -> np.ndarray:
        assert x.shape[1:] == (3, 16, 16) and x.dtype == np.float32
        self.calls += 1
        self.faces += len(x)
        flip = self.calls % 2
        return np.tile(np.array([[3.0 * flip, 2.5 * (1 - flip) + 0.5, 0.0]], np.float32), (len(x), 1))


class ScriptedDetector(Detector):
    """A face drifting right 3 px a frame; misses it on the frames listed in ``miss``."""

    def __init__(self, miss: tuple[int, ...] = ()) -> None:
        super().__init__(None)
        self.calls, self.miss, self.frame = 0, miss, 0

    def _detect(self, frame_rgb: np.ndarray):
        self.calls += 1
        i = int(frame_rgb[0, 0, 0])  # the frame number is painted into the top-left pixel
        return [] if i in self.miss else [(20 + 3 * i, 30, 40, 40, 0.9)]


class Frames(FrameSource):
    def __init__(self, n: int) -> None:
        super().__init__()
        self.n, self.fps, self.size, self.name = n, 10.0, (120, 100), "frames"

    def __iter__(self):
        for i in range(self.n):
            image = np.full((100, 120, 3), 100, np.uint8)
            image[0, 0] = i
            yield Frame(i, i / self.fps, image, self.name)


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_detect_and_classify_cadence(tmp_path) -> None:
    backend, detector = FlickerBackend(), ScriptedDetector()
    predictor = Predictor(backend, detector=detector)
    stats = run_demo(
        predictor, Frames(10), csv_path=tmp_path / "f.csv", display=False, detect_every=3, classify_every=2
    )
    assert stats.frames == 10 and stats.faces == 10 and stats.errors == []
    assert detector.calls == 4  # frames 0, 3, 6, 9
    assert backend.calls == 5  # frames 0, 2, 4, 6, 8
    rows = _rows(tmp_path / "f.csv")
    assert list(rows[0]) == csv_header(LABELS) and len(rows) == 10
    assert {r["track"] for r in rows} == {"0"}
    assert [int(r["x"]) for r in rows[:4]] == [20, 20, 20, 29]  # boxes held between detections


def test_missed_detection_is_held_and_probabilities_are_smoothed(tmp_path) -> None:
    raw = FlickerBackend()
    predictor = Predictor(raw, detector=ScriptedDetector(miss=(4,)))
    out = tmp_path / "v.avi"
    stats = run_demo(predictor, Frames(8), output=out, csv_path=tmp_path / "s.csv", display=False, smoothing=0.8)
    rows = _rows(tmp_path / "s.csv")
    assert [r["frame"] for r in rows] == [str(i) for i in range(8)]  # frame 4 still has its face
    assert rows[4]["x"] == rows[3]["x"] and {r["track"] for r in rows} == {"0"}
    assert [r["label"] for r in rows] == ["a"] * 8  # raw labels flip every frame; smoothed ones hold
    assert stats.video is not None and probe_video(out)[:3] == (8, 120, 100)
    unsmoothed = run_demo(
        Predictor(FlickerBackend(), detector=ScriptedDetector()),
        Frames(4),
        csv_path=tmp_path / "r.csv",
        display=False,
        smoothing=0.0,
    )
    assert unsmoothed.frames == 4
    assert [r["label"] for r in _rows(tmp_path / "r.csv")] == ["a", "b", "a", "b"]


class ChannelMeans(Backend):
    """Logits = 10 x each input channel's mean: any change in how a face is cut out changes them."""

    def __init__(self) -> None:
        pre = Preprocessing(input_size=32, crop="align")
        super().__init__(ModelMetadata({"num_classes": 3}, labels=LABELS, preprocessing=pre))

    def outputs(self, x: np.ndarray, attention: bool = False) -> Outputs:
        return Outputs(10 * x.mean(axis=(2, 3)))  # (N, 3)


def test_the_demo_cuts_faces_out_as_the_predictor_does(astronaut, tmp_path) -> None:
    """A photo through the demo's live step gets the Predictor's answer: aligned by YuNet's landmarks."""
    import cv2

    from dan.demo.sources import ImageSource

    photo = tmp_path / "astronaut.png"
    cv2.imwrite(str(photo), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    predictor = Predictor(ChannelMeans())  # YuNet, faces aligned as the record says
    (face,) = predictor.predict(photo)
    boxed = Predictor(ChannelMeans(), align=False).predict(photo)[0].probabilities
    assert np.abs(boxed - face.probabilities).max() > 1e-3  # a box crop would give another answer
    stats = run_demo(predictor, ImageSource([photo]), csv_path=tmp_path / "f.csv", display=False)
    assert stats.frames == 1 and stats.errors == []
    (row,) = _rows(tmp_path / "f.csv")
    assert [int(row[k]) for k in "xywh"] == list(face.box)
    np.testing.assert_allclose([float(row[n]) for n in LABELS], face.probabilities, atol=1e-4)
