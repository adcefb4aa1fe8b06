"""Batched folder inference (:mod:`dan.inference.pipeline`): the same rows as the sequential path on real photos,
in input order, bad files reported in place, memory bounded by the prefetch window, an early stop clean."""

from __future__ import annotations

import csv
import itertools
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from dan.cli import predict as predict_cli
from dan.cli.main import main
from dan.inference.detectors import YuNetDetector
from dan.inference.pipeline import DEFAULT_BATCH_SIZE, default_workers, predict_images
from dan.inference.predictor import Predictor
from scripts.common.photos import make_photo_folder

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Ten real photos (faces, two faces, none) and one file that is not an image, in one folder."""
    folder = tmp_path_factory.mktemp("photos")
    make_photo_folder(folder, 10, seed=0)  # all six originals: faces, two faces, none
    (folder / "0005-broken.jpg").write_text("not a picture")
    return folder


@pytest.fixture(scope="module")
def predictor(rafdb_checkpoint) -> Predictor:
    return Predictor(rafdb_checkpoint, device="cpu")


def _csv(path: Path) -> list[list[str]]:
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_batched_csv_rows_are_the_sequential_ones(photos, rafdb_checkpoint, tmp_path, capsys) -> None:
    argv = ["predict", str(photos), "--checkpoint", str(rafdb_checkpoint), "--device", "cpu"]
    assert main([*argv, "--workers", "0", "--output", str(tmp_path / "seq.csv")]) == 1  # the broken file
    seq_err = capsys.readouterr().err
    assert main([*argv, "--workers", "2", "--batch-size", "3", "--output", str(tmp_path / "batch.csv")]) == 1
    batch_err = capsys.readouterr().err
    seq, batched = _csv(tmp_path / "seq.csv"), _csv(tmp_path / "batch.csv")
    assert seq[0] == batched[0] and len(seq) == len(batched) > 8  # header, then a row per face
    names = [r[0] for r in seq[1:]]
    assert names == sorted(names) and any(n.endswith("-two.jpg") or n.endswith("-two.png") for n in names)
    for a, b in zip(seq[1:], batched[1:]):
        assert a[:7] == b[:7]  # path, face, box, label
        assert np.allclose(np.float64(a[7:]), np.float64(b[7:]), atol=1.01e-4)  # 4 decimals, float32 rounding
    for err in (seq_err, batch_err):  # one line per bad file
        lines = [x for x in err.splitlines() if "broken.jpg" in x]
        assert len(lines) == 1 and lines[0].startswith(f"dan predict: {photos / '0005-broken.jpg'}: not a decodable")
        assert "10 image(s), 9 face(s), 1 failed" in err.splitlines()[-1]
    per_image = [
        [x for x in err.splitlines() if x.startswith(f"dan predict: {photos}")] for err in (seq_err, batch_err)
    ]
    assert per_image[0] == per_image[1] and len(per_image[0]) == 3  # coffee, cat (no face), broken: in input order


def test_results_keep_input_order_and_images_without_faces(predictor, photos) -> None:
    paths = sorted(photos.iterdir())[::-1]  # not the folder's order
    results = list(predict_images(predictor, paths, batch_size=4, workers=2))
    assert [r.path for r in results] == paths
    broken = [r for r in results if r.error]
    assert len(broken) == 1 and broken[0].faces == [] and broken[0].width == 0
    faces = [len(r.faces) for r in results if not r.error]
    assert 0 in faces and 2 in faces and all(r.width > 0 for r in results if not r.error)
    sequential = list(predict_images(predictor, paths, workers=0))
    assert [len(r.faces) for r in sequential] == [len(r.faces) for r in results]


def test_prepared_images_are_bounded_by_the_prefetch_window(predictor, face_tile, tmp_path) -> None:
    image = tmp_path / "face.png"
    cv2.imwrite(str(image), cv2.cvtColor(np.ascontiguousarray(face_tile), cv2.COLOR_RGB2BGR))
    pulled = [0]

    def endless():  # a folder as large as you like: its paths are taken only as the window frees up
        for _ in itertools.count():
            pulled[0] += 1
            yield image

    results = predict_images(predictor, endless(), batch_size=2, workers=2, prefetch=3)
    ahead = []  # images taken but not yet given back, at each result
    for i, result in enumerate(results):
        assert len(result.faces) == 1
        ahead.append(pulled[0] - i)
        if i == 7:
            break
    results.close()  # an early stop: no thread left running
    assert max(ahead) <= 3 + 2  # the prefetch window and one batch of images waiting for the model
    assert not [t for t in threading.enumerate() if t.name.startswith("dan-prepare")]


def test_each_thread_has_its_own_detector_and_a_given_one_is_shared(rafdb_checkpoint, photos) -> None:
    named = Predictor(rafdb_checkpoint, device="cpu", detect_size=320)
    copy = named.new_detector()
    assert isinstance(copy, YuNetDetector) and copy is not named.detector and copy.detect_size == 320
    given = Predictor(rafdb_checkpoint, detector=YuNetDetector(), device="cpu")
    assert given.new_detector() is None  # an object cannot be copied: the threads take turns with it
    paths = sorted(photos.glob("*.jpg"))[:6]
    batched = [[f.box for f in r.faces] for r in predict_images(given, paths, batch_size=2, workers=3)]
    assert batched == [[f.box for f in r.faces] for r in predict_images(given, paths, workers=0)]


def test_bad_settings(predictor, photos, rafdb_checkpoint, capsys) -> None:
    assert default_workers() >= 1 and predict_cli.DEFAULT_BATCH_SIZE == DEFAULT_BATCH_SIZE  # --help's copy
    with pytest.raises(ValueError):
        predict_images(predictor, [], batch_size=0)
    assert list(predict_images(predictor, [], workers=2)) == []
    for option, value in (("--batch-size", "0"), ("--workers", "-1")):
        assert main(["predict", str(photos), "--checkpoint", str(rafdb_checkpoint), option, value]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"dan predict: error: {option} must be")


def test_whole_images_batched_as_sequentially(predictor, rafdb_checkpoint, photos) -> None:
    whole = Predictor(rafdb_checkpoint, detector="none", device="cpu")
    paths = sorted(photos.iterdir())[:6]
    batched = list(predict_images(whole, paths, batch_size=4, workers=2))
    sequential = list(predict_images(whole, paths, workers=0))
    assert [len(r.faces) for r in batched] == [len(r.faces) for r in sequential]
    assert all(len(r.faces) == 1 for r in batched if not r.error)  # one "face": the whole image
    for a, b in zip(batched, sequential):
        assert [f.box for f in a.faces] == [f.box for f in b.faces] and (a.width, a.height) == (b.width, b.height)
        for fa, fb in zip(a.faces, b.faces):
            assert np.allclose(fa.probabilities, fb.probabilities, atol=1e-5)
