"""``dan predict`` over videos and collections: rows, formats, sampling, resumption, skipped inputs, progress."""

from __future__ import annotations

import csv
import io
import json
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

import dan
from dan.cli.main import main
from dan.collection.batcher import SharedBatcher
from dan.collection.frames import Sampling
from dan.collection.progress import Progress
from dan.collection.run import run_collection
from dan.errors import DanError
from dan.inference.predictor import Predictor

RAFDB = dan.LABEL_SETS["rafdb"]
FPS = 12.0
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def write_video(path: Path, tile_bgr: np.ndarray, frames: int, size: tuple[int, int] = (320, 240)) -> Path:
    """An MJPG video of ``tile_bgr`` sliding 2 px a frame over a grey frame."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, size)
    for i in range(frames):
        frame = np.full((size[1], size[0], 3), 90, np.uint8)
        x = 20 + 2 * i
        frame[40:200, x : x + 160] = tile_bgr
        writer.write(frame)
    writer.release()
    return path


@pytest.fixture(scope="module")
def collection(tmp_path_factory, face_tile, tiny_checkpoint):
    root = tmp_path_factory.mktemp("collection")
    videos = root / "videos"
    videos.mkdir()
    tile = cv2.cvtColor(face_tile, cv2.COLOR_RGB2BGR)  # written by OpenCV
    write_video(videos / "a.avi", tile, 20)
    write_video(videos / "b.avi", tile, 16)
    (videos / "damaged.mp4").write_bytes(b"not a video at all" * 20)
    cv2.imwrite(str(videos / "still.png"), tile)
    return root, videos, tiny_checkpoint


def _predict(ckpt: Path, *args: str) -> int:
    return main(["predict", *args, "--checkpoint", str(ckpt), "--backend", "torch", "--quiet"])


def _csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_a_folder_of_videos_and_an_image_gives_a_row_per_face_per_analysed_frame(collection, tmp_path, capsys) -> None:
    root, videos, ckpt = collection
    out = tmp_path / "rows.csv"
    assert _predict(ckpt, str(videos), "--every", "2", "--output", str(out)) == 1  # the damaged file
    err = capsys.readouterr().err
    assert "skipped" in err and "damaged.mp4: cannot open as a video" in err
    with open(out) as f:
        header = f.readline().strip().split(",")
    assert header == ["path", "frame", "time", "track", "x", "y", "w", "h", "label", "confidence", *RAFDB]
    rows = _csv(out)
    by_path: dict[str, list[dict]] = {}
    for r in rows:
        by_path.setdefault(Path(r["path"]).name, []).append(r)
    assert list(by_path) == ["a.avi", "b.avi", "still.png"]  # input order
    for name, n in (("a.avi", 20), ("b.avi", 16)):
        frames = [int(r["frame"]) for r in by_path[name]]
        assert frames == list(range(0, n, 2))  # every second frame, one face each
        assert {r["track"] for r in by_path[name]} == {"0"}  # one track through the video
        for r in by_path[name]:
            assert float(r["time"]) == pytest.approx(int(r["frame"]) / FPS, abs=1e-3)
            probs = [float(r[c]) for c in RAFDB]
            assert sum(probs) == pytest.approx(1.0, abs=1e-3)
            assert r["label"] == RAFDB[int(np.argmax(probs))]
            x = 20 + 2 * int(r["frame"])
            assert abs(int(r["x"]) - (x + 44)) < 20  # the face moves with the tile
    assert [(r["frame"], r["track"]) for r in by_path["still.png"]] == [("0", "0")]
    skipped = [json.loads(line) for line in open(str(out) + ".skipped.jsonl")]
    assert [Path(s["input"]).name for s in skipped] == ["damaged.mp4"]
    assert not (tmp_path / ".rows.csv.parts").exists()  # merged and removed


def test_parquet_json_lines_and_a_folder_of_parts_hold_the_same_rows(collection, tmp_path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    _, videos, ckpt = collection
    inputs = [str(videos / "a.avi"), str(videos / "b.avi")]
    assert _predict(ckpt, *inputs, "--fps", "4", "--output", str(tmp_path / "rows.csv")) == 0
    reference = _csv(tmp_path / "rows.csv")
    assert [int(r["frame"]) for r in reference] == [0, 3, 6, 9, 12, 15, 18, 0, 3, 6, 9, 12, 15]  # 4 of 12 a second
    assert _predict(ckpt, *inputs, "--fps", "4", "--output", str(tmp_path / "rows.parquet")) == 0
    assert _predict(ckpt, *inputs, "--fps", "4", "--output", str(tmp_path / "rows.jsonl")) == 0
    assert _predict(ckpt, *inputs, "--fps", "4", "--format", "parquet", "--output", str(tmp_path / "parts") + "/") == 0
    table = pq.read_table(tmp_path / "rows.parquet").to_pylist()
    lines = [json.loads(line) for line in open(tmp_path / "rows.jsonl")]
    parts = sorted((tmp_path / "parts").glob("*.parquet"))
    assert [p.name.split("-")[0] for p in parts] == ["a", "b"]
    folder = pq.read_table(parts[0]).to_pylist() + pq.read_table(parts[1]).to_pylist()
    for other in (table, lines, folder):
        assert len(other) == len(reference)
        for r, o in zip(reference, other):
            assert (r["path"], int(r["frame"]), int(r["track"]), r["label"]) == (
                o["path"],
                o["frame"],
                o["track"],
                o["label"],
            )
            assert [float(r[c]) for c in RAFDB] == pytest.approx([o[c] for c in RAFDB], abs=1e-4)
    manifest = [json.loads(line) for line in open(tmp_path / "parts" / "_manifest.jsonl")]
    assert sorted(m["rows"] for m in manifest) == [6, 7]


def test_a_rerun_skips_finished_inputs_and_redoes_a_missing_part(collection, tmp_path, capsys) -> None:
    _, videos, ckpt = collection
    out = tmp_path / "parts"
    argv = [str(videos / "a.avi"), str(videos / "b.avi"), "--every", "4", "--output", str(out) + "/"]
    assert _predict(ckpt, *argv) == 0
    parts = {p.name: p.read_bytes() for p in out.glob("*.csv")}
    assert len(parts) == 2
    capsys.readouterr()
    assert _predict(ckpt, *argv) == 0
    assert "0 input(s) scored, 2 already done" in capsys.readouterr().err
    b = next(p for p in out.glob("b-*.csv"))
    b.unlink()
    (out / f".{b.stem}.99999999.tmp.csv").write_text("a half-written part of a killed run\n")  # its process is gone
    assert _predict(ckpt, *argv) == 0
    assert "1 input(s) scored, 1 already done" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.glob("*.csv")} == parts  # the same rows, once
    assert not list(out.glob(".*.tmp.csv"))


def test_a_video_over_the_pixel_limit_is_refused_from_its_header(collection, tmp_path, monkeypatch) -> None:
    _, videos, ckpt = collection
    monkeypatch.setattr("dan.demo.sources.DEFAULT_MAX_PIXELS", 320 * 240 - 1)
    predictor = Predictor(ckpt, backend="torch")
    stats = run_collection(predictor, [videos / "a.avi", videos / "still.png"], tmp_path / "rows.jsonl", quiet=True)
    assert [Path(p).name for p, _ in stats.skipped] == ["a.avi"]
    assert "over the limit" in stats.skipped[0][1]
    assert stats.finished == 1 and stats.frames == 1  # the image went on


def test_usage_errors(collection, tmp_path, capsys) -> None:
    _, videos, ckpt = collection
    assert _predict(ckpt, str(videos / "a.avi")) == 1
    assert "name an --output" in capsys.readouterr().err
    assert _predict(ckpt, str(videos / "a.avi"), "--output", str(tmp_path / "x.json")) == 1
    assert "not .json" in capsys.readouterr().err
    assert _predict(ckpt, str(videos / "a.avi"), "--every", "0", "--output", str(tmp_path / "x.csv")) == 1
    assert "--every must be at least 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _predict(ckpt, str(videos / "a.avi"), "--every", "2", "--fps", "3", "--output", str(tmp_path / "x.csv"))
    assert not list(tmp_path.iterdir())


def test_sampling() -> None:
    assert [i for i in range(10) if Sampling(every=3).keep(i, 25.0)] == [0, 3, 6, 9]
    assert [i for i in range(12) if Sampling(fps=2.5).keep(i, 10.0)] == [0, 4, 8]
    assert all(Sampling(fps=60).keep(i, 30.0) for i in range(5))  # above the video's rate: every frame
    for bad in ({"every": 0}, {"fps": 0.0}, {"fps": float("nan")}):
        with pytest.raises(DanError):
            Sampling(**bad)  # type: ignore[arg-type]


def test_progress_on_a_terminal_in_a_log_and_quiet() -> None:
    log = io.StringIO()
    p = Progress(10, "frame", items=2, stream=log, interval=0.0, terminal=False)
    p.update(4)
    p.update(6, item_done=True)
    p.close()
    lines = log.getvalue().splitlines()
    assert lines[0].startswith("dan: 0/2 inputs, 4 of 10 frames") and "frames/s" in lines[0] and "s left" in lines[0]
    assert lines[-1].startswith("dan: 1/2 inputs, 10 of 10 frames")
    tty = io.StringIO()
    p = Progress(10, "batch", stream=tty, terminal=True)
    p.update(10)
    p.close()
    assert "10/10" in tty.getvalue() and "batch/s" in tty.getvalue()
    quiet = io.StringIO()
    p = Progress(10, stream=quiet, quiet=True, interval=0.0)
    p.update(10)
    p.close()
    assert quiet.getvalue() == ""


def test_shared_batcher_runs_the_faces_of_waiting_threads_together(tiny_checkpoint) -> None:
    predictor = Predictor(tiny_checkpoint, backend="torch", detector="none")
    rng = np.random.default_rng(0)
    batches = [rng.standard_normal((n, 3, 32, 32)).astype(np.float32) for n in (2, 3)]
    batcher = SharedBatcher(predictor, batch_size=64, wait=5.0)  # waits for both workers
    batcher.join()
    batcher.join()
    got: dict[int, np.ndarray] = {}

    def work(i: int) -> None:
        got[i] = batcher(batches[i])[0]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert batcher.runs == 1 and batcher.faces == 5
    for i in range(2):
        assert got[i] == pytest.approx(predictor.run_outputs(batches[i])[0], abs=1e-5)


def test_evaluate_shows_its_batches_unless_quiet(tmp_path, capsys) -> None:
    import torch

    from tests import fakedata as fd

    fd.make_ckplus(tmp_path / "ck", subjects=10, frames=4)
    torch.manual_seed(0)
    model = dan.DAN(7, 1, backbone="test_resnet").eval()
    model.labels, model.preprocessing = dan.LABEL_SETS["ckplus7"], dan.Preprocessing(input_size=32, crop="box")
    ckpt = dan.save_model(model, tmp_path / "m.pt")
    args = ["evaluate", "--checkpoint", str(ckpt), "--format", "ckplus", "--root", str(tmp_path / "ck")]
    args += ["--workers", "0", "--batch-size", "8"]
    assert main([*args, "--output", str(tmp_path / "r")]) == 0
    err = capsys.readouterr().err
    assert "dan evaluate: 3 of 3 batches" in err  # 21 images; stderr is no terminal here: the plain line
    assert main([*args, "--quiet", "--output", str(tmp_path / "q")]) == 0
    assert "dan evaluate:" not in capsys.readouterr().err


def test_a_model_that_fails_to_load_leaves_no_parts_folder(collection, tmp_path, capsys) -> None:
    _, videos, _ = collection
    assert _predict(tmp_path / "missing.pt", str(videos / "a.avi"), "--output", str(tmp_path / "rows.parquet")) == 1
    assert "missing.pt" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
