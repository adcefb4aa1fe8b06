"""Unit tests of the inference building blocks: crops, tracker, detectors, backends, outputs, window."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import dan
from dan.demo.outputs import CsvStream, write_csv
from dan.demo.window import window_support
from dan.errors import DanError
from dan.inference.crops import crop_face, expand_box, prepare_batch
from dan.inference.detectors import HaarDetector, NoneDetector, create_detector
from dan.inference.predictor import Predictor
from dan.inference.tracking import IoUTracker, iou
from dan.preprocess import Preprocessing
from dan.runtime.loader import load_backend
from dan.runtime.torch import TorchBackend

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_expand_box_is_square_with_margin() -> None:
    x0, y0, x1, y1 = expand_box((100, 50, 40, 60), 0.25, (480, 640, 3))
    assert (x1 - x0, y1 - y0) == (90, 90)  # longer side 60, times 1.5
    assert abs((x0 + x1) / 2 - 120) <= 1 and abs((y0 + y1) / 2 - 80) <= 1


def test_crop_face_pads_at_the_border_with_edge_pixels() -> None:
    frame = np.zeros((50, 50, 3), np.uint8)
    frame[:, :10] = 200  # bright left edge
    crop = crop_face(frame, (-20, 0, 30, 50))  # 20 px outside on the left
    assert crop.shape == (50, 50, 3)
    assert crop[:, :25].min() == 200  # padding replicates the bright edge
    assert crop[:, -5:].max() == 0
    assert crop_face(frame, (100, 100, 120, 120)).sum() == 0  # entirely outside


def test_prepare_batch_stacks_every_face(astronaut: np.ndarray) -> None:
    pre = Preprocessing(input_size=32, crop="box", margin=0.0)
    batch, faces = prepare_batch(astronaut, [(10, 10, 50, 50), (400, 400, 200, 200)], pre)
    assert batch.shape == (2, 3, 32, 32) and [f.shape for f in faces] == [(50, 50, 3), (200, 200, 3)]
    np.testing.assert_array_equal(faces[0], astronaut[10:60, 10:60])  # RGB in, RGB face images out


def test_tracker_keeps_ids_for_a_moving_box_and_smooths() -> None:
    tracker = IoUTracker(iou_threshold=0.3, max_misses=2, smoothing=0.5)
    ids = []
    for step in range(10):
        a = (100 + 5 * step, 100, 80, 80)  # moves 5 px a frame
        b = (400, 300 - 4 * step, 60, 60)
        tracks = tracker.update([b, a] if step % 2 else [a, b])  # order of detections changes
        ids.append({t.box: t.id for t in tracks}[a])
        assert len({t.id for t in tracks}) == 2
    assert set(ids) == {ids[0]}
    tracks = tracker.update([(100 + 50, 100, 80, 80)])
    first = tracker.smooth(tracks, np.array([[1.0, 0.0]]))
    second = tracker.smooth(tracks, np.array([[0.0, 1.0]]))
    np.testing.assert_allclose(first, [[1.0, 0.0]])
    np.testing.assert_allclose(second, [[0.5, 0.5]])  # flicker damped
    new = tracker.update([(600, 20, 30, 30)])  # far away: a new track
    assert new[0].id == 2
    for _ in range(3):
        tracker.update([])
    assert tracker.tracks == []  # all expired after max_misses
    assert iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)


def test_haar_finds_the_astronaut_and_two_side_by_side(astronaut_face: tuple, astronaut: np.ndarray) -> None:
    det = HaarDetector()
    (box,) = det.detect(astronaut)
    assert iou(box, astronaut_face) > 0.6
    both = np.hstack([astronaut, astronaut[:, ::-1]])  # 1024 wide: detection runs at 640
    boxes = sorted(det.detect(both))
    assert len(boxes) == 2
    mirrored = (1024 - 177 - 95, 66, 95, 95)
    assert iou(boxes[0], astronaut_face) > 0.5 and iou(boxes[1], mirrored) > 0.5
    big = cv2.resize(astronaut, (1536, 1536))  # boxes come back in full-frame pixels
    (big_box,) = HaarDetector(detect_size=512).detect(big)
    assert iou(big_box, tuple(3 * v for v in astronaut_face)) > 0.5
    assert det.detect(np.full((200, 200, 3), 127, np.uint8)) == []


def test_none_detector_and_factory_errors(tmp_path) -> None:
    assert NoneDetector().detect(np.zeros((480, 640, 3), np.uint8))[0][:5] == (80, 0, 480, 480, 1.0)
    assert NoneDetector().detect(np.zeros((100, 100, 3), np.uint8))[0][:5] == (0, 0, 100, 100, 1.0)
    with pytest.raises(DanError, match="missing.onnx: YuNet model not found"):
        create_detector("yunet", model_path=tmp_path / "missing.onnx")
    with pytest.raises(DanError, match="unknown detector"):
        create_detector("dlib")


def test_yunet_is_shipped_and_gives_boxes_and_landmarks(astronaut_face: tuple, astronaut: np.ndarray) -> None:
    det = create_detector()  # the default: YuNet, from the package's own copy of the model
    assert det.name == "yunet"
    (face,) = det.detect(astronaut)
    assert iou(face, astronaut_face) > 0.5 and face.score > 0.8
    eyes, nose, mouth = face.landmarks[:2], face.landmarks[2], face.landmarks[3:]
    assert eyes[0, 0] < eyes[1, 0] and mouth[0, 0] < mouth[1, 0]  # image-left first
    assert eyes[:, 1].max() < nose[1] < mouth[:, 1].min()  # eyes above the nose above the mouth
    x, y, w, h = face[:4]
    assert (face.landmarks[:, 0] > x).all() and (face.landmarks[:, 0] < x + w).all()
    big = cv2.resize(astronaut, (1536, 1536))  # detection runs at 640; results in full-frame pixels
    (big_face,) = det.detect(big)
    np.testing.assert_allclose(big_face.landmarks, face.landmarks * 3, atol=0.07 * big_face.w)  # detector noise
    assert det.detect(np.full((200, 200, 3), 127, np.uint8)) == []


def test_torch_backend_interface_and_load_backend(rafdb_model: dan.DAN, tmp_path) -> None:
    backend = TorchBackend(rafdb_model)
    x = np.zeros((3, 3, 96, 96), np.float32)
    logits, maps = backend(x), backend.outputs(x, attention=True).attention
    assert logits.shape == (3, 7) and logits.dtype == np.float32
    assert maps.shape[:2] == (3, 2) and maps.ndim == 4
    assert backend.labels == dan.LABEL_SETS["rafdb"] and backend.preprocessing.input_size == 96
    path = dan.save_model(rafdb_model, tmp_path / "m.pt")
    loaded = load_backend(path)
    np.testing.assert_allclose(loaded(x), logits, atol=1e-5)
    with pytest.raises(DanError, match="not found"):
        load_backend(tmp_path / "nope.pt")
    with pytest.raises(DanError, match="unknown runtime"):
        load_backend(path, backend="tensorrt")
    (tmp_path / "m.onnx").write_bytes(b"x")
    with pytest.raises(DanError, match="--backend onnx"):
        load_backend(tmp_path / "m.onnx", backend="torch")


def test_predictor_api_on_a_real_photo(
    astronaut_face: tuple, rafdb_checkpoint, astronaut: np.ndarray, tmp_path
) -> None:
    path = tmp_path / "astronaut.jpg"
    cv2.imwrite(str(path), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    p = Predictor(rafdb_checkpoint)
    (face,) = p.predict(path, attention=True)
    assert iou(face.box, astronaut_face) > 0.6
    assert face.label in dan.LABEL_SETS["rafdb"] and face.label == max(face.probs, key=face.probs.get)
    assert face.probabilities.sum() == pytest.approx(1.0, abs=1e-5)
    assert face.attention is not None and face.attention.shape[0] == 2
    assert set(face.to_dict()) == {"face", "box", "label", "confidence", "probabilities"}
    same = p.predict(astronaut)  # an RGB array gives the same answer as the file (a JPEG of it)
    np.testing.assert_allclose(same[0].probabilities, face.probabilities, atol=0.05)


def test_atomic_outputs_leave_nothing_half_written(tmp_path) -> None:
    target = tmp_path / "out.csv"

    def rows():
        yield [1, 2]
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        write_csv(target, ["a", "b"], rows())
    assert not target.exists() and list(tmp_path.iterdir()) == []
    stream = CsvStream(target, ["a"])
    stream.write([1])
    assert not target.exists()  # published only when closed
    stream.close()
    assert target.read_text().splitlines() == ["a", "1"]
    with pytest.raises(DanError, match="does not exist"):
        write_csv(tmp_path / "no" / "x.csv", ["a"], [])


def test_window_support_says_why_not(monkeypatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    ok, message = window_support()
    assert not ok and message.startswith("cannot open a window:") and "--output/--csv" in message
    monkeypatch.setenv("DISPLAY", ":99")

    def no_gui(*args, **kwargs):
        raise cv2.error("The function is not implemented")

    monkeypatch.setattr(cv2, "namedWindow", no_gui)
    ok, message = window_support()
    assert not ok and "opencv-python-headless" in message and "opencv-python<5" in message


def test_onnx_backend_missing_gives_a_clear_error(rafdb_model: dan.DAN, tmp_path, monkeypatch) -> None:
    path = tmp_path / "m.onnx"
    path.write_bytes(b"not really onnx")
    monkeypatch.setitem(__import__("sys").modules, "dan.runtime.onnx", None)  # import fails
    with pytest.raises(DanError, match="onnx backend is not available.*--backend torch"):
        load_backend(path)  # auto picks onnx for a .onnx file


def test_predictor_honours_labels_for_a_ready_backend(rafdb_model: dan.DAN, astronaut: np.ndarray) -> None:
    backend = TorchBackend(rafdb_model)
    p = Predictor(backend, detector="none", labels="fer2013")
    assert p.labels == dan.LABEL_SETS["fer2013"] and backend.labels == dan.LABEL_SETS["rafdb"]  # not changed
    (face,) = p.predict(astronaut)
    assert face.label in dan.LABEL_SETS["fer2013"] and set(face.probs) == set(dan.LABEL_SETS["fer2013"])
    with pytest.raises(DanError, match="5 names but the model has 7"):
        Predictor(backend, detector="none", labels=["a", "b", "c", "d", "e"])


def test_an_export_without_attention_says_so(rafdb_model: dan.DAN, tmp_path) -> None:
    import onnx

    from dan.export import export_onnx
    from dan.runtime.onnx import OnnxBackend

    path = export_onnx(rafdb_model, tmp_path / "m.onnx")
    assert OnnxBackend(path).has_attention
    proto = onnx.load(str(path))
    kept = [o for o in proto.graph.output if o.name == "logits"]
    del proto.graph.output[:]
    proto.graph.output.extend(kept)  # a logits-only graph, as other exporters write
    onnx.save(proto, str(tmp_path / "logits.onnx"))
    p = Predictor(OnnxBackend(tmp_path / "logits.onnx"), detector="none")
    assert not p.has_attention
    (face,) = p.predict(np.zeros((96, 96, 3), np.uint8), attention=True)
    assert face.attention is None
