"""One face, one answer: every path that runs a model prepares the face the same way.

``dan evaluate``, ``dan predict --detector none``, the attention figure and an ONNX export of the same
model give the same probabilities for the same aligned face images (within 1e-5).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data
import torch

import dan
from dan.cli.main import main
from dan.inference.attention import face_attention
from dan.runtime.onnx import OnnxBackend

SIZE = 64
RAFDB = dan.LABEL_SETS["rafdb"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[Path]]:
    """A small trained-looking model (.pt and .onnx) and a RAF-DB-layout test split of real face crops."""
    root = tmp_path_factory.mktemp("contract")
    torch.manual_seed(0)
    model = dan.DAN(7, 2)
    with torch.no_grad():  # data-dependent BatchNorm statistics, so the classes differ
        model.train()
        model(torch.randn(16, 3, SIZE, SIZE))
    model.labels = RAFDB
    model.preprocessing = dan.Preprocessing(input_size=SIZE, mean=(0.5, 0.45, 0.4), std=(0.25, 0.2, 0.3))
    ckpt = dan.save_model(model.eval(), root / "model.pt")
    onnx_path = root / "model.onnx"
    assert main(["export", "--checkpoint", str(ckpt), "--output", str(onnx_path)]) == 0
    photo = skimage.data.astronaut()  # RGB; faces of several sizes, as aligned crops would come
    data = root / "data"
    (data / "Image" / "aligned").mkdir(parents=True)
    (data / "EmoLabel").mkdir()
    faces, lines = [], []
    for i, (size, y, x) in enumerate([(48, 60, 170), (100, 40, 150), (224, 20, 130), (400, 0, 100)]):
        crop = cv2.resize(photo[y : y + 180, x : x + 180], (size, size), interpolation=cv2.INTER_AREA)
        path = data / "Image" / "aligned" / f"test_{i + 1:04d}_aligned.png"  # lossless: the same pixels everywhere
        cv2.imwrite(str(path), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
        faces.append(path)
        lines.append(f"test_{i + 1:04d}.jpg {i % 7 + 1}")
    lines.append("train_00001.jpg 1")  # the layout wants a training split; evaluate reads only test
    cv2.imwrite(str(data / "Image" / "aligned" / "train_00001_aligned.png"), np.zeros((8, 8, 3), np.uint8))
    (data / "EmoLabel" / "list_patition_label.txt").write_text("\n".join(lines) + "\n")
    return ckpt, onnx_path, faces


def _rafdb_png(tmp: Path, faces: list[Path]) -> Path:
    """The RAF-DB reader names files ``*_aligned.jpg``: link the PNGs under those names (same pixels)."""
    for face in faces:
        jpg = face.with_suffix(".jpg")
        if not jpg.exists():
            jpg.symlink_to(face.name)
    return faces[0].parents[2]


def test_evaluate_predict_attention_and_onnx_agree(setup, tmp_path: Path, capsys) -> None:
    ckpt, onnx_path, faces = setup
    data = _rafdb_png(tmp_path, faces)
    out = tmp_path / "eval"
    assert (
        main(
            [
                "evaluate",
                "--checkpoint",
                str(ckpt),
                "--format",
                "rafdb",
                "--root",
                str(data),
                "--output",
                str(out),
                "--workers",
                "0",
            ]
        )
        == 0
    )
    with open(out / "predictions.csv") as f:
        evaluated = {
            Path(r["path"]).stem.replace("_aligned", ""): [float(r[n]) for n in RAFDB] for r in csv.DictReader(f)
        }
    result = tmp_path / "predict.json"
    paths = [str(f) for f in faces]
    assert main(["predict", *paths, "--checkpoint", str(ckpt), "--detector", "none", "--output", str(result)]) == 0
    predicted = {
        Path(r["path"]).stem.replace("_aligned", ""): r["faces"][0]["probabilities"]
        for r in json.loads(result.read_text())["images"]
    }
    onnx_json = tmp_path / "onnx.json"
    assert (
        main(["predict", *paths, "--checkpoint", str(onnx_path), "--detector", "none", "--output", str(onnx_json)]) == 0
    )
    exported = {
        Path(r["path"]).stem.replace("_aligned", ""): r["faces"][0]["probabilities"]
        for r in json.loads(onnx_json.read_text())["images"]
    }
    backend = dan.runtime.TorchBackend(dan.load_model(ckpt))
    onnx_backend = OnnxBackend(onnx_path)
    for face in faces:
        key = face.stem.replace("_aligned", "")
        p_eval = np.array(evaluated[key])
        p_pred = np.array([predicted[key][n] for n in RAFDB])
        p_onnx = np.array([exported[key][n] for n in RAFDB])
        _, p_fig, maps = face_attention(backend, face)
        _, p_fig_onnx, _ = face_attention(onnx_backend, face)
        assert maps.shape == (2, 2, 2)
        for other in (p_pred, p_fig, p_onnx, p_fig_onnx):
            np.testing.assert_allclose(other, p_eval, atol=1e-5, err_msg=key)
        assert p_eval.max() - p_eval.min() > 1e-3  # the check is not trivially equal uniform outputs


def test_predict_the_figure_and_the_predictor_cut_the_same_rgb_face(setup, tmp_path: Path) -> None:
    """One colour order (RGB) and one face crop: ``dan predict``, the attention figure and the Predictor
    (given the file or its RGB pixels) take the same central square of a photo and give the same answer."""
    from dan.imaging import read_image
    from dan.inference.attention import save_attention_figure
    from dan.inference.predictor import Predictor

    ckpt, _, _ = setup
    rgb = np.ascontiguousarray(skimage.data.astronaut()[:300, 60:460])  # (300, 400, 3): not square
    square = rgb[:, 50:350]  # the central square, what --detector none takes as the face
    path = tmp_path / "photo.png"  # lossless: the same pixels everywhere
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    predictor = Predictor(ckpt, detector="none")
    (from_file,) = predictor.predict(path)
    (from_pixels,) = predictor.predict(rgb)
    _, faces = predictor.faces(rgb, predictor.detect(rgb))
    np.testing.assert_array_equal(faces[0], square)
    face, p_figure, _ = face_attention(ckpt, path)
    np.testing.assert_array_equal(face, square)
    result = tmp_path / "predict.json"
    assert main(["predict", str(path), "--checkpoint", str(ckpt), "--detector", "none", "--output", str(result)]) == 0
    (record,) = json.loads(result.read_text())["images"]
    p_cli = np.array([record["faces"][0]["probabilities"][n] for n in RAFDB])
    for other in (from_pixels.probabilities, p_figure, p_cli):
        np.testing.assert_allclose(other, from_file.probabilities, atol=1e-5)
    (swapped,) = predictor.predict(np.ascontiguousarray(rgb[..., ::-1]))  # BGR pixels: another answer
    assert np.abs(swapped.probabilities - from_file.probabilities).max() > 1e-4
    figure = read_image(save_attention_figure(ckpt, path, tmp_path / "figure.png", tile=SIZE))
    panel = cv2.resize(square, (SIZE, SIZE), interpolation=cv2.INTER_AREA).astype(int)
    top = slice(0, SIZE * 3 // 4)  # above the caption
    assert np.abs(figure[top, :SIZE] - panel[top]).mean() < 2  # the face panel in its own colours
    assert np.abs(figure[top, :SIZE] - panel[top, :, ::-1]).mean() > 10
