"""``dan predict`` run in-process on real photographs and on bad inputs."""

from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest

import dan
from dan.cli.main import main
from dan.inference.tracking import iou

RAFDB = dan.LABEL_SETS["rafdb"]
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def files(tmp_path_factory, rafdb_checkpoint, astronaut):
    root = tmp_path_factory.mktemp("predict")
    ckpt = rafdb_checkpoint
    photos = root / "photos"
    photos.mkdir()
    bgr = cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR)
    cv2.imwrite(str(photos / "astronaut.jpg"), bgr)
    cv2.imwrite(str(photos / "two.png"), np.hstack([bgr, bgr[:, ::-1]]))
    cv2.imwrite(str(photos / "wall.png"), np.full((120, 160, 3), 128, np.uint8))  # no face
    bad = root / "bad"
    bad.mkdir()
    (bad / "notes.jpg").write_text("this is not a picture")
    (root / "empty").mkdir()
    return root, ckpt, photos, bad


def _csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_predict_csv_finds_one_and_two_faces(astronaut_face, files, capsys) -> None:
    root, ckpt, photos, _ = files
    out = root / "faces.csv"
    assert main(["predict", str(photos), "--checkpoint", str(ckpt), "--output", str(out)]) == 0
    rows = _csv(out)
    with open(out) as f:
        header = f.readline().strip().split(",")
    assert header == ["path", "face", "x", "y", "w", "h", "label", "confidence", *RAFDB]
    by_file: dict[str, list[dict]] = {}
    for r in rows:
        by_file.setdefault(r["path"].rsplit("/", 1)[-1], []).append(r)
    assert sorted(by_file) == ["astronaut.jpg", "two.png"]  # the wall has no face
    assert len(by_file["astronaut.jpg"]) == 1 and len(by_file["two.png"]) == 2
    (a,) = by_file["astronaut.jpg"]
    assert iou([int(a[k]) for k in "xywh"], astronaut_face) > 0.6
    boxes = sorted([int(r[k]) for k in "xywh"] for r in by_file["two.png"])
    x, y, w, h = astronaut_face
    assert iou(boxes[0], astronaut_face) > 0.5 and iou(boxes[1], (1024 - x - w, y, w, h)) > 0.5  # the mirrored face
    for r in rows:
        probs = [float(r[name]) for name in RAFDB]
        assert r["label"] in RAFDB and r["label"] == RAFDB[int(np.argmax(probs))]
        assert sum(probs) == pytest.approx(1.0, abs=1e-3) and float(r["confidence"]) == max(probs)
    assert "wall.png: no face found" in capsys.readouterr().err


def test_predict_json_and_table(files, capsys) -> None:
    root, ckpt, photos, _ = files
    out = root / "faces.json"
    argv = ["predict", str(photos / "two.png"), "--checkpoint", str(ckpt), "--labels", "rafdb", "--output", str(out)]
    assert main(argv) == 0
    data = json.loads(out.read_text())
    assert data["labels"] == list(RAFDB) and data["errors"] == []
    (image,) = data["images"]
    assert image["width"] == 1024 and len(image["faces"]) == 2
    face = image["faces"][0]
    assert set(face) == {"face", "box", "label", "confidence", "probabilities"}
    assert set(face["box"]) == {"x", "y", "w", "h"} and list(face["probabilities"]) == list(RAFDB)
    capsys.readouterr()
    assert main(["predict", str(photos / "astronaut.jpg"), "--checkpoint", str(ckpt), "--detector", "none"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["path", "face", "x", "y", "w", "h", "label", "confidence"]
    assert table[1].split()[1:6] == ["0", "0", "0", "512", "512"]  # the whole image is the face


def test_predict_reports_bad_inputs_and_processes_the_rest(files, capsys) -> None:
    root, ckpt, photos, bad = files
    out = root / "mixed.csv"
    argv = [
        "predict",
        str(photos / "astronaut.jpg"),
        str(bad / "notes.jpg"),
        str(root / "missing.png"),
        str(root / "empty"),
        str(root / "nothing-*.jpg"),
        "--checkpoint",
        str(ckpt),
        "--output",
        str(out),
    ]
    assert main(argv) == 1
    err = capsys.readouterr().err
    for name in ("notes.jpg: not a decodable image", "missing.png: no such file", "empty: folder has no images"):
        assert name in err
    assert "nothing-*.jpg: no files match" in err
    assert len(_csv(out)) == 1  # the good photo still went through


def test_predict_usage_errors(files, capsys) -> None:
    root, ckpt, photos, _ = files
    assert main(["predict", str(photos), "--checkpoint", str(root / "nope.pt")]) == 1
    assert "nope.pt: checkpoint not found" in capsys.readouterr().err
    assert main(["predict", str(photos), "--checkpoint", str(ckpt), "--output", str(root / "x.txt")]) == 1
    assert "must end in .csv or .json" in capsys.readouterr().err
    assert not (root / "x.txt").exists()
