"""One backend interface (issue 26, items 2 and 3): a backend implements ``outputs`` alone and works
everywhere; nothing probes backends with ``getattr``; the device is resolved once, by the loader;
``--backend auto`` is one race (:mod:`dan.auto`) for ``dan predict``, the Python ``Predictor`` and every
other command; the probe faces are never the calibration faces."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from dan.models.metadata import ModelMetadata
from dan.preprocess import Preprocessing
from dan.runtime.backend import Backend, Outputs, softmax
from dan.system import DeviceChoice
from dan.vocab import LABEL_SETS

ROOT = Path(__file__).resolve().parents[1]


class MeanColour(Backend):
    """A backend with the one method only: logits from each face's mean colour, maps and valence/arousal too."""

    name = "fake"

    def __init__(self, va: bool = True) -> None:
        record = ModelMetadata(
            {"num_classes": 7}, labels=LABEL_SETS["rafdb"], preprocessing=Preprocessing(input_size=32)
        )
        super().__init__(record)
        self.has_va = va
        self.calls = 0

    def outputs(self, x: np.ndarray, attention: bool = False) -> Outputs:
        self.calls += 1
        m = x.mean(axis=(2, 3))  # (N, 3)
        logits = np.concatenate([m, -m, m[:, :1] * 2], axis=1).astype(np.float32)  # (N, 7)
        maps = np.ascontiguousarray(x[:, :2, ::8, ::8]) if attention else None  # (N, 2, 4, 4)
        return Outputs(logits, maps, np.tanh(m[:, :2]).astype(np.float32) if self.has_va else None)


def _face(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (48, 48, 3), dtype=np.uint8)


def test_a_backend_with_only_outputs_works_everywhere(tmp_path: Path) -> None:
    """The Predictor (with attention and valence/arousal), folder prediction, the live step and scoring."""
    from dan.evaluation.evaluate import evaluate_backend
    from dan.inference.live import LiveStep
    from dan.inference.pipeline import predict_images
    from dan.inference.predictor import Predictor
    from dan.preprocess import prepare_faces

    backend = MeanColour()
    predictor = Predictor(backend, detector="none")
    assert predictor.has_attention and predictor.has_va and predictor.labels == LABEL_SETS["rafdb"]
    image = _face(0)
    (face,) = predictor.predict(image, attention=True)
    x = prepare_faces([image], backend.preprocessing)  # (1, 3, 32, 32)
    want = softmax(backend(x))[0]
    np.testing.assert_allclose(face.probabilities, want, rtol=1e-6)
    assert face.label == LABEL_SETS["rafdb"][int(want.argmax())] and face.attention.shape == (2, 4, 4)
    assert face.valence == pytest.approx(float(np.tanh(x.mean(axis=(2, 3)))[0, 0]), abs=1e-6)

    paths = []
    for i in range(3):
        paths.append(tmp_path / f"f{i}.png")
        cv2.imwrite(str(paths[-1]), _face(i))
    results = list(predict_images(predictor, paths, batch_size=2, workers=1))
    assert [len(r.faces) for r in results] == [1, 1, 1] and results[0].faces[0].valence is not None

    live = LiveStep(predictor)(image, attention=True)
    assert len(live) == 1 and live[0].probabilities.shape == (7,)

    class Faces(list):
        label_names = LABEL_SETS["rafdb"]  # what evaluate_backend matches the model's classes with

    data = Faces((torch.from_numpy(prepare_faces([_face(i)], backend.preprocessing)[0]), i % 7) for i in range(5))
    result = evaluate_backend(backend, data, batch_size=2)  # type: ignore[arg-type]  # any (image, label) sequence
    assert len(result.targets) == 5 and 0.0 <= result.accuracy <= 1.0


def test_the_base_class_gives_empty_batches_and_the_temperature() -> None:
    backend = MeanColour(va=True)
    out = backend.empty(attention=True)
    assert out.logits.shape == (0, 7) and out.attention.shape == (0, 0, 0, 0) and out.va.shape == (0, 2)
    assert backend.temperature == 1.0 and backend.device.device == "cpu" and backend.auto_reason is None


def test_no_backend_is_probed_with_getattr_and_no_cast() -> None:
    """One way in: no ``getattr`` on a backend, runner or predictor anywhere in the package or the scripts,
    no ``cast`` to a backend type, and none of the old optional entries left."""
    probe = re.compile(r"getattr\(\s*(\w+\.)*(backend|runner|reference|predictor|picked|opened)\b")
    old = re.compile(r"predict_with_attention|predict_with_va|backend_outputs|supports_attention|AttentionBackend")
    found = []
    for path in sorted([*(ROOT / "dan").rglob("*.py"), *(ROOT / "scripts").rglob("*.py")]):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if probe.search(line) or old.search(line) or re.search(r"\bcast\(\s*\w*Backend", line):
                found.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert found == []


def test_the_device_is_resolved_once_by_the_loader(tiny_checkpoint: Path, onnx_file: Path, monkeypatch) -> None:
    import dan.runtime.loader as loader
    import dan.system

    calls, elsewhere = [], []
    real = dan.system.pick_device

    def once(spec: object = "auto") -> DeviceChoice:
        calls.append(spec)
        return DeviceChoice("cpu", "cpu: picked by the loader")

    def other(spec: object = "auto") -> DeviceChoice:
        elsewhere.append(spec)  # load_model reads a checkpoint onto the CPU first: "cpu", never --device
        return real(spec)

    monkeypatch.setattr(loader, "pick_device", once)
    monkeypatch.setattr(dan.system, "pick_device", other)
    for path, backend in ((tiny_checkpoint, None), (onnx_file, None), (onnx_file, "openvino")):
        calls.clear()
        opened = loader.load_backend(path, backend, device="auto")
        assert calls == ["auto"] and opened.device_reason == "cpu: picked by the loader", opened.name
    assert "auto" not in elsewhere  # no backend resolved --device again


@pytest.fixture
def onnx_file(tiny_model, tmp_path: Path) -> Path:
    from dan.export import export_onnx

    return export_onnx(tiny_model, tmp_path / "m.onnx")


def test_auto_is_one_race_for_predict_and_the_predictor(tiny_checkpoint: Path, tmp_path: Path, monkeypatch, capsys):
    """``dan predict`` (default ``--backend auto``) and ``Predictor(path, backend="auto")`` both go through
    :func:`dan.auto.open.fastest_backend`, the race demo, serve and evaluate use too; a named runtime never races."""
    import dan.auto.open as auto_open
    from dan.cli.main import main
    from dan.inference.predictor import Predictor

    monkeypatch.setenv("DAN_HOME", str(tmp_path / "home"))
    raced = []
    real = auto_open.fastest_backend

    def counting(torch_backend, *args, **kwargs):
        raced.append(torch_backend.name)
        return real(torch_backend, *args, **kwargs)

    monkeypatch.setattr(auto_open, "fastest_backend", counting)
    predictor = Predictor(tiny_checkpoint, detector="none", device="cpu")  # backend="auto" by default
    assert (
        raced == ["torch"] and predictor.backend.auto_reason and "ONNX Runtime float32" in predictor.backend.auto_reason
    )
    image = tmp_path / "face.png"
    cv2.imwrite(str(image), _face(3))
    out = tmp_path / "out.csv"
    argv = ["predict", str(image), "--checkpoint", str(tiny_checkpoint), "--detector", "none", "--output", str(out)]
    assert main([*argv, "--device", "cpu"]) == 0
    assert raced == ["torch", "torch"] and "backend: auto -> " in capsys.readouterr().err
    assert Predictor(tiny_checkpoint, backend="torch", detector="none").backend.auto_reason is None
    assert raced == ["torch", "torch"]  # a runtime by name: no race


def test_probe_faces_are_not_the_calibration_faces() -> None:
    from dan.export import faces

    assert faces.PROBE_SEED != faces.CALIBRATION_SEED
    pre = Preprocessing(input_size=32)
    assert not np.allclose(faces.probe_faces(pre, 4), faces.calibration_faces(pre, 4))
