"""``dan demo`` run in-process, headless, on generated videos, photos, bad inputs and Ctrl-C."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

import dan
from dan.cli.main import main
from dan.demo.sources import FrameSource, VideoFileSource
from dan.demo.writer import probe_video
from dan.inference.tracking import iou

RAFDB = dan.LABEL_SETS["rafdb"]
HEADER = ["frame", "time", "track", "x", "y", "w", "h", "label", "confidence", *RAFDB]
N_FRAMES, W, H = 24, 320, 240


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _write_video(path: Path, frames: list[np.ndarray], fps: float = 12.0) -> Path:
    fourcc = cv2.VideoWriter_fourcc(*("MJPG" if path.suffix == ".avi" else "mp4v"))
    writer = cv2.VideoWriter(str(path), fourcc, fps, (frames[0].shape[1], frames[0].shape[0]))
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory, rafdb_checkpoint, face_tile, astronaut):
    root = tmp_path_factory.mktemp("demo")
    ckpt = rafdb_checkpoint
    tile = cv2.cvtColor(face_tile, cv2.COLOR_RGB2BGR)  # the video is written by OpenCV
    frames = []
    for i in range(N_FRAMES):  # the head slides right 4 px a frame over a grey background
        frame = np.full((H, W, 3), 90, np.uint8)
        frame[40:200, 20 + 4 * i : 180 + 4 * i] = tile
        frames.append(frame)
    video = _write_video(root / "moving.avi", frames)
    photos = root / "photos"
    photos.mkdir()
    bgr = cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR)
    cv2.imwrite(str(photos / "a_astronaut.jpg"), bgr)
    cv2.imwrite(str(photos / "b_bad.jpg"), np.zeros((4, 4, 3), np.uint8))
    (photos / "b_bad.jpg").write_bytes((photos / "b_bad.jpg").read_bytes()[:40])  # truncated JPEG
    cv2.imwrite(str(photos / "c_two.png"), np.hstack([bgr, bgr[:, ::-1]]))
    return root, ckpt, video, photos


def _rows(path: Path) -> tuple[list[str], list[dict]]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def _demo(ckpt: Path, source: Path | str, *extra: str) -> int:
    return main(["demo", "--checkpoint", str(ckpt), "--source", str(source), *extra])


def test_demo_on_a_video_tracks_the_moving_face(files, tmp_path, capsys) -> None:
    _, ckpt, video, _ = files
    out, table = tmp_path / "out.mp4", tmp_path / "faces.csv"
    assert _demo(ckpt, video, "--output", str(out), "--csv", str(table), "--no-display") == 0
    assert probe_video(out)[:3] == (N_FRAMES, W, H)
    header, rows = _rows(table)
    assert header == HEADER
    assert len(rows) >= N_FRAMES - 2 and len({r["frame"] for r in rows}) == len(rows)  # one face a frame
    assert {r["track"] for r in rows} == {"0"}  # one stable track
    for r in rows:
        i = int(r["frame"])
        truth = (20 + 4 * i + 44, 40 + 31, 63, 63)
        assert iou([int(r[k]) for k in "xywh"], truth) > 0.4
        assert r["label"] in RAFDB and float(r["time"]) == pytest.approx(i / 12, abs=1e-3)
    assert "cannot open a window" not in capsys.readouterr().err


def test_demo_without_a_window_says_so_and_runs_headless(files, tmp_path, monkeypatch, capsys) -> None:
    _, ckpt, _, photos = files
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    table = tmp_path / "one.csv"
    assert _demo(ckpt, photos / "a_astronaut.jpg", "--csv", str(table)) == 0
    err = capsys.readouterr().err
    assert "cannot open a window" in err and "running headless" in err and "opencv-python<5" in err
    assert len(_rows(table)[1]) == 1


def test_demo_on_a_folder_skips_a_bad_image(files, tmp_path, capsys) -> None:
    _, ckpt, _, photos = files
    out, table = tmp_path / "photos.avi", tmp_path / "photos.csv"
    assert _demo(ckpt, photos, "--output", str(out), "--csv", str(table), "--no-display", "--image-fps", "2") == 1
    assert "b_bad.jpg: truncated image" in capsys.readouterr().err
    frames, w, h, fps = probe_video(out)
    assert (frames, w, h, fps) == (2, 512, 512, 2)  # the first image sets the size; the wide one is letterboxed
    _, rows = _rows(table)
    assert [r["frame"] for r in rows] == ["0", "1", "1"]  # one face, then two


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda root: "9", "camera 9: no camera"),
        (lambda root: root / "missing.mp4", "missing.mp4: no such file"),
        (lambda root: root / "empty", "empty: folder has no images"),
        (lambda root: root / "text.mp4", "text.mp4: cannot open as a video"),
    ],
)
def test_demo_sources_that_cannot_be_opened(files, tmp_path, capsys, make, message) -> None:
    _, ckpt, _, _ = files
    (tmp_path / "empty").mkdir()
    (tmp_path / "text.mp4").write_text("not a video")
    assert _demo(ckpt, make(tmp_path), "--no-display", "--csv", str(tmp_path / "x.csv")) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()


def test_demo_video_ending_early_or_with_a_broken_frame(files, tmp_path, capsys) -> None:
    _, ckpt, video, _ = files
    data = video.read_bytes()
    (tmp_path / "short.avi").write_bytes(data[: len(data) // 2])
    starts = [i for i in range(len(data) - 1) if data[i : i + 2] == b"\xff\xd8"]  # JPEG frames of the MJPG
    broken = bytearray(data)
    broken[starts[10] : starts[10] + 300] = bytes(300)
    (tmp_path / "broken.avi").write_bytes(bytes(broken))
    for name, expected in (("short", "ended early at frame"), ("broken", "failed to decode; skipped")):
        out, table = tmp_path / f"{name}.mp4", tmp_path / f"{name}.csv"
        assert _demo(ckpt, tmp_path / f"{name}.avi", "--output", str(out), "--csv", str(table), "--no-display") == 1
        assert expected in capsys.readouterr().err
        decoded = sum(1 for _ in VideoFileSource(tmp_path / f"{name}.avi"))
        assert 0 < decoded < N_FRAMES and probe_video(out)[0] == decoded  # output complete and playable
        assert _rows(table)[0] == HEADER


class _Interrupting(FrameSource):
    """A source that raises KeyboardInterrupt after ``n`` frames, like Ctrl-C."""

    def __init__(self, frames: list[np.ndarray], n: int) -> None:
        super().__init__()
        self.frames, self.n, self.fps, self.size, self.name = frames, n, 10.0, (W, H), "fake"

    def __iter__(self):
        from dan.demo.sources import Frame

        for i, image in enumerate(self.frames):
            if i == self.n:
                raise KeyboardInterrupt
            yield Frame(i, i / self.fps, image.copy(), self.name)


def test_ctrl_c_leaves_whole_outputs(files, tmp_path, monkeypatch, capsys) -> None:
    _, ckpt, video, _ = files
    frames = [f.image for f in VideoFileSource(video)]
    monkeypatch.setattr("dan.demo.sources.open_source", lambda *a, **k: _Interrupting(frames, 5))
    out, table = tmp_path / "cut.mp4", tmp_path / "cut.csv"
    assert _demo(ckpt, "fake", "--output", str(out), "--csv", str(table), "--no-display", "--detector", "none") == 130
    assert "interrupted at frame 5" in capsys.readouterr().err
    assert probe_video(out)[:3] == (5, W, H)
    assert [r["frame"] for r in _rows(table)[1]] == ["0", "1", "2", "3", "4"]
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary files left behind


def test_attention_overlay_and_figure(files, tmp_path) -> None:
    from dan.inference.attention import save_attention_figure

    _, ckpt, video, photos = files
    plain, att = tmp_path / "plain.avi", tmp_path / "att.avi"
    for out, extra in ((plain, []), (att, ["--attention"])):
        assert _demo(ckpt, video, "--output", str(out), "--no-display", "--max-frames", "2", *extra) == 0
    a, b = (cv2.VideoCapture(str(p)).read()[1] for p in (plain, att))
    below_face = (slice(40 + 31 + 63 + 2, 240), slice(64, 200))  # thumbnails go under the face box
    assert np.abs(a[below_face].astype(int) - b[below_face]).mean() > 10
    figure = save_attention_figure(dan.load_model(ckpt), photos / "a_astronaut.jpg", tmp_path / "att.png", tile=100)
    image = cv2.imread(str(figure))
    assert image.shape == (100, 3 * 100 + 2 * 4, 3)  # the face and 2 heads


def test_make_demo_video_script_and_none_detector(files, tmp_path) -> None:
    _, ckpt, _, _ = files
    faces = tmp_path / "aligned"
    faces.mkdir()
    for i in range(3):  # drawn stand-ins for the synthetic data set's 100x100 faces
        img = np.full((100, 100, 3), 60 * i, np.uint8)
        cv2.ellipse(img, (50, 55), (32, 42), 0, 0, 360, (120, 170, 230), -1)
        cv2.circle(img, (38, 45), 5, (40, 40, 40), -1)
        cv2.circle(img, (62, 45), 5, (40, 40, 40), -1)
        cv2.ellipse(img, (50, 75), (14, 6 + 3 * i), 0, 0, 180, (60, 60, 160), -1)
        cv2.imwrite(str(faces / f"train_{i:05d}_aligned.jpg"), img)
    from scripts.demos import demo_video as script

    video = tmp_path / "demo_in.mp4"
    assert script.main([str(faces), str(video), "--seconds", "1", "--fps", "10", "--size", "160x120"]) == 0
    assert probe_video(video)[:3] == (10, 160, 120)
    table = tmp_path / "demo.csv"
    assert _demo(ckpt, video, "--csv", str(table), "--no-display", "--detector", "none") == 0
    rows = _rows(table)[1]
    assert len(rows) == 10 and {(r["x"], r["y"], r["w"], r["h"]) for r in rows} == {("20", "0", "120", "120")}
