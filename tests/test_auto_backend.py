"""``--backend auto`` for long runs: the faster of PyTorch and ONNX Runtime, decided once per machine and
model; int8 on a CPU without VNNI is flagged; backends never change the caller's model."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

import dan
from dan.inference import auto
from dan.inference.backends import TorchBackend, load_backend
from dan.inference.export import export_checkpoint


@pytest.fixture
def ckpt(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setenv("DAN_HOME", str(tmp_path / "home"))
    torch.manual_seed(0)
    model = dan.DAN(7, 2, backbone="test_resnet").eval()
    model.labels, model.preprocessing = dan.LABEL_SETS["rafdb"], dan.Preprocessing(input_size=32)
    return dan.save_model(model, tmp_path / "m.pt")


def test_auto_picks_by_a_cached_probe_and_stays_lossless(ckpt: Path, tmp_path: Path, monkeypatch) -> None:
    picked = load_backend(ckpt, "auto", fastest=True)
    assert picked.name in ("torch", "onnx", "openvino") and "ONNX Runtime float32 " in picked.auto_reason
    assert "OpenVINO float32 " in picked.auto_reason  # installed with the dev extra: it races too
    probe = json.loads((tmp_path / "home" / "probe.json").read_text())
    assert len(probe) == 1 and next(iter(probe.values()))["pick"] == picked.name
    assert len(list((tmp_path / "home" / "exports").glob("*.onnx"))) == 1
    x = np.random.default_rng(1).standard_normal((3, 3, 32, 32)).astype(np.float32)
    plain = TorchBackend(ckpt, reparameterize=False)
    np.testing.assert_allclose(picked(x), plain(x), atol=1e-4)

    def no_timing(*args, **kwargs):
        raise AssertionError("the probe ran again")

    monkeypatch.setattr(auto, "_time", no_timing)
    assert load_backend(ckpt, "auto", fastest=True).name == picked.name  # cached: no second probe
    assert load_backend(ckpt, "auto").name == "torch"  # one-shot commands: no export, no probe


def test_a_faster_runtime_that_disagrees_is_not_picked(ckpt: Path, monkeypatch) -> None:
    from dan.inference.onnx_backend import OnnxBackend

    timings = {"torch": 50.0, "onnx": 1.0, "openvino": 2.0}  # ONNX Runtime fastest, OpenVINO next
    monkeypatch.setattr(auto, "_time", lambda runner, x, **kwargs: timings[runner.name])
    real_infer = OnnxBackend._infer

    def off(self, x):  # ONNX Runtime's logits off by 1e-2; OpenVINO (a subclass) stays exact
        out = real_infer(self, x)
        return {k: v + 0.01 for k, v in out.items()} if self.name == "onnx" else out

    monkeypatch.setattr(OnnxBackend, "_infer", off)
    picked = load_backend(ckpt, "auto", fastest=True)
    assert picked.name == "openvino", picked.auto_reason
    assert "ONNX Runtime float32's logits differ by 1.0e-02, above 0.001" in picked.auto_reason


def test_int8_without_vnni_is_flagged(ckpt: Path, tmp_path: Path, monkeypatch) -> None:
    faces = tmp_path / "faces"
    faces.mkdir()
    import cv2

    for i in range(4):
        cv2.imwrite(str(faces / f"{i}.png"), np.full((40, 40, 3), 40 * i, np.uint8))
    int8 = tmp_path / "m-int8.onnx"
    export_checkpoint(dan.load_model(ckpt), int8, int8=True, calib=faces)
    monkeypatch.setattr(auto, "cpu_flags", lambda: frozenset({"avx2", "fma"}))
    assert "without VNNI" in load_backend(int8).warning
    monkeypatch.setattr(auto, "cpu_flags", lambda: frozenset({"avx2", "avx512_vnni"}))
    assert load_backend(int8).warning is None


def test_backends_do_not_change_the_callers_model(ckpt: Path) -> None:
    model = dan.load_model(ckpt).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    labels, device = model.labels, next(model.parameters()).device
    TorchBackend(model, labels=dan.LABEL_SETS["fer2013"])
    assert model.training and model.labels == labels and next(model.parameters()).device == device
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert os.environ["DAN_HOME"].endswith("home")
