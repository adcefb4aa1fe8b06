"""Valence and arousal at inference: runtimes and exports (a ``va`` output), predict, demo, serve and info.

A model without the output gives today's outputs exactly.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ----------------------------------------------------------------------------------------------- export


def test_onnx_export_has_a_va_output_that_matches_torch(va_model, tmp_path: Path) -> None:
    from dan.export import export_checkpoint
    from dan.runtime.onnx import OnnxBackend
    from dan.runtime.torch import TorchBackend

    report = export_checkpoint(va_model, tmp_path / "va.onnx", verify=True, tolerance=1e-4)
    assert report.ok, report.lines
    assert report.max_abs_diff_va is not None and report.max_abs_diff_va <= 1e-4
    onnx = OnnxBackend(tmp_path / "va.onnx")
    assert onnx.output_names == ("logits", "attention", "va") and onnx.has_va and onnx.metadata.has_va
    x = np.random.default_rng(0).standard_normal((3, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        want = va_model(torch.from_numpy(x)).va.numpy()
    va = onnx.outputs(x).va
    np.testing.assert_allclose(va, want, atol=1e-4)
    out = onnx.outputs(x, attention=True)
    assert out.attention is not None and out.attention.shape[:2] == (3, 2) and np.array_equal(out.va, va)
    torch_backend = TorchBackend(va_model)  # re-parameterised: the VA output kept
    # re-parameterised float32 rounding, amplified by the layer norm (a random model's fused feature varies little)
    np.testing.assert_allclose(torch_backend.outputs(x).va, want, atol=1e-4)
    assert onnx.outputs(x[:0]).va.shape == (0, 2)


def test_pt2_export_keeps_the_va_output(va_model, tmp_path: Path) -> None:
    from dan.export import export_checkpoint
    from dan.runtime.pt2 import Pt2Backend

    report = export_checkpoint(va_model, tmp_path / "va.pt2", format="pt2", verify=True, tolerance=1e-4)
    assert report.ok and report.max_abs_diff_va is not None and report.max_abs_diff_va <= 1e-4, report.lines
    backend = Pt2Backend(tmp_path / "va.pt2")
    x = np.random.default_rng(1).standard_normal((2, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        want = va_model(torch.from_numpy(x))
    np.testing.assert_allclose(backend.outputs(x).va, want.va.numpy(), atol=1e-4)
    np.testing.assert_allclose(backend(x), want.logits.numpy(), atol=1e-4)


def test_an_export_without_va_is_as_before(tiny_model, tmp_path: Path) -> None:
    from dan.export import export_onnx
    from dan.runtime.onnx import OnnxBackend

    backend = OnnxBackend(export_onnx(tiny_model, tmp_path / "plain.onnx"))
    assert backend.output_names == ("logits", "attention") and not backend.has_va
    meta = json.loads(backend.session.get_modelmeta().custom_metadata_map["dan"])
    assert meta["outputs"] == ["logits", "attention"] and "va_head" not in meta["model_config"]
    x = np.zeros((1, 3, 32, 32), np.float32)
    assert backend.outputs(x).va is None and np.array_equal(backend.outputs(x).logits, backend(x))


# ----------------------------------------------------------------------------------------------- outputs


@pytest.fixture(scope="module")
def faces_dir(va_synth: Path) -> Path:
    return va_synth / "Image" / "aligned"


def _predict(checkpoint: Path, faces: Path, out: Path, capsys) -> str:
    from dan.cli.main import main

    args = ["predict", str(faces), "--checkpoint", str(checkpoint), "--detector", "none", "--backend", "torch"]
    assert main([*args, "--device", "cpu", "--output", str(out)]) == 0
    return capsys.readouterr().out


def test_predictor_and_predict_give_valence_and_arousal(va_checkpoint: Path, faces_dir: Path, tmp_path, capsys):
    from dan.inference.predictor import Predictor

    predictor = Predictor(va_checkpoint, detector="none", backend="torch", device="cpu")
    image = next(iter(sorted(faces_dir.iterdir())))
    (face,) = predictor.predict(image)
    assert predictor.has_va and -1 < face.valence < 1 and -1 < face.arousal < 1
    assert face.to_dict()["valence"] == face.valence and face.to_dict()["arousal"] == face.arousal
    _predict(va_checkpoint, faces_dir, tmp_path / "f.csv", capsys)
    with open(tmp_path / "f.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0])[-2:] == ["valence", "arousal"] and len(rows) == 28
    first = next(r for r in rows if r["path"] == str(image))
    assert float(first["valence"]) == pytest.approx(face.valence, abs=1e-4)
    _predict(va_checkpoint, faces_dir, tmp_path / "f.json", capsys)
    record = json.loads((tmp_path / "f.json").read_text())
    assert all("valence" in face and "arousal" in face for image in record["images"] for face in image["faces"])


def test_a_model_without_va_gives_todays_output_exactly(tiny_checkpoint: Path, faces_dir: Path, tmp_path, capsys):
    from dan.inference.predictor import Predictor
    from dan.preprocess import prepare_faces
    from dan.runtime.torch import TorchBackend
    from dan.vocab import LABEL_SETS

    _predict(tiny_checkpoint, faces_dir, tmp_path / "f.csv", capsys)
    with open(tmp_path / "f.csv", newline="") as f:
        header, *rows = list(csv.reader(f))
    assert header == ["path", "face", "x", "y", "w", "h", "label", "confidence", *LABEL_SETS["rafdb"]]
    assert all(len(r) == len(header) for r in rows)
    _predict(tiny_checkpoint, faces_dir, tmp_path / "f.json", capsys)
    record = json.loads((tmp_path / "f.json").read_text())
    keys = {k for image in record["images"] for face in image["faces"] for k in face}
    assert keys == {"face", "box", "label", "confidence", "probabilities"}
    backend = TorchBackend(tiny_checkpoint)
    predictor = Predictor(backend, detector="none")
    from dan.imaging import read_image

    image = read_image(sorted(faces_dir.iterdir())[0])
    (face,) = predictor.predict(image)
    want = backend.probabilities(backend(prepare_faces([image], backend.preprocessing)))[0]
    assert np.array_equal(face.probabilities, want) and face.valence is None and face.arousal is None
    assert not predictor.has_va and predictor.run_outputs(np.zeros((1, 3, 32, 32), np.float32))[2] is None


def test_demo_csv_and_overlay_carry_va(va_checkpoint: Path, faces_dir: Path, tmp_path: Path) -> None:
    import cv2

    from dan.demo.loop import csv_header, run_demo
    from dan.demo.overlay import draw_va
    from dan.inference.predictor import Predictor

    predictor = Predictor(va_checkpoint, detector="none", backend="torch", device="cpu")
    out = tmp_path / "demo.csv"
    stats = run_demo(predictor, str(faces_dir), csv_path=out, display=False, max_frames=3, log=lambda _: None)
    assert stats.frames == 3
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == csv_header(predictor.labels, va=True) and list(rows[0])[-2:] == ["valence", "arousal"]
    assert all(-1 <= float(r["valence"]) <= 1 and -1 <= float(r["arousal"]) <= 1 for r in rows)
    assert csv_header(predictor.labels) == csv_header(predictor.labels, va=False)  # without: as before
    frame = np.zeros((120, 160, 3), np.uint8)
    draw_va(frame, (10, 10, 100, 100), np.array([0.5, -0.25]))
    assert frame[80:110].any() and not frame[:80].any() and not frame[111:].any()  # inside the box's bottom
    blank = np.zeros((60, 60, 3), np.uint8)
    draw_va(blank, (0, 0, 60, 60), (1.0, 1.0))
    assert cv2.countNonZero(cv2.cvtColor(blank, cv2.COLOR_BGR2GRAY)) > 0


def test_serve_returns_valence_and_arousal_only_from_a_model_with_them(va_checkpoint, tiny_checkpoint, faces_dir):
    import cv2
    from fastapi.testclient import TestClient

    from dan.inference.live import LiveStep
    from dan.inference.predictor import Predictor
    from dan.serve import create_app
    from dan.serve.websocket import _face_json

    body = (sorted(faces_dir.iterdir())[0]).read_bytes()
    for checkpoint, has in ((va_checkpoint, True), (tiny_checkpoint, False)):
        predictor = Predictor(checkpoint, detector="none", backend="torch", device="cpu")
        with TestClient(create_app(predictor)) as client:
            reply = client.post("/v1/predict", files={"file": ("f.jpg", body, "image/jpeg")})
        assert reply.status_code == 200
        (face,) = reply.json()["faces"]
        assert ("valence" in face and "arousal" in face) == has, face
        if not has:
            assert set(face) == {"face", "box", "label", "confidence", "probabilities"}
        frame = cv2.cvtColor(cv2.imread(str(sorted(faces_dir.iterdir())[0])), cv2.COLOR_BGR2RGB)
        step = LiveStep(predictor, smoothing=0.5)
        live = [_face_json(f, predictor.labels) for f in step(frame)]
        assert ("valence" in live[0]) == has
    page = (Path(__file__).resolve().parents[1] / "dan" / "serve" / "static" / "app.js").read_text()
    assert "face.valence" in page and "drawValenceArousal" in page


def test_info_shows_the_va_output(va_checkpoint: Path, capsys) -> None:
    from dan.cli.main import main

    assert main(["info", "--checkpoint", str(va_checkpoint)]) == 0
    out = capsys.readouterr().out
    assert "'va_head': True" in out and ", va (1, 2)" in out
    assert re.search(r"^valence: +[+-]\d\.\d{3}, arousal [+-]\d\.\d{3}$", out, re.M), out
