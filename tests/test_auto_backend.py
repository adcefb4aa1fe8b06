"""``--backend auto`` for long runs: the fastest of PyTorch, ONNX Runtime and OpenVINO (float32, and int8
when an int8 export is given or cached), decided once per machine and model among the runtimes that agree
with PyTorch (float32: relative to the logits' scale; int8: top-1 on probe faces); backends never change
the caller's model."""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

import dan
from dan.auto import race as auto
from dan.auto.open import fastest_backend
from dan.cli.main import main as dan_main
from dan.cli.options import add_model_and_detector_options, predictor_from_args
from dan.errors import DanError
from dan.export import export_checkpoint, export_onnx
from dan.export.export_cache import cached_export
from dan.models.reference import PlainDAN
from dan.runtime.loader import load_backend
from dan.runtime.onnx import is_int8
from dan.runtime.torch import TorchBackend
from dan.synthface import prepared_faces


@pytest.fixture
def ckpt(tiny_checkpoint: Path, tmp_path: Path, monkeypatch) -> Path:
    """The tiny model's file, with a DAN_HOME of the test's own (exports and probe results start empty)."""
    monkeypatch.setenv("DAN_HOME", str(tmp_path / "home"))
    return tiny_checkpoint


def test_auto_picks_by_a_cached_probe_and_stays_lossless(ckpt: Path, tmp_path: Path, monkeypatch) -> None:
    picked = fastest_backend(load_backend(ckpt))
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
    assert fastest_backend(load_backend(ckpt)).name == picked.name  # cached: no second probe
    assert load_backend(ckpt).name == "torch"  # the loader alone never races


def test_a_faster_runtime_that_disagrees_is_not_picked(ckpt: Path, monkeypatch) -> None:
    from dan.runtime.onnx import OnnxBackend

    timings = {"torch": 50.0, "onnx": 1.0, "openvino": 2.0}  # ONNX Runtime fastest, OpenVINO next
    monkeypatch.setattr(auto, "_time", lambda runner, x, **kwargs: timings[runner.name])
    real_infer = OnnxBackend._infer

    def off(self, x):  # ONNX Runtime's logits off by 1e-2; OpenVINO (a subclass) stays exact
        out = real_infer(self, x)
        return {k: v + 0.01 for k, v in out.items()} if self.name == "onnx" else out

    monkeypatch.setattr(OnnxBackend, "_infer", off)
    picked = fastest_backend(load_backend(ckpt))
    assert picked.name == "openvino", picked.auto_reason
    assert "ONNX Runtime float32: logits differ by 1.0e-02, above 2.1e-04" in picked.auto_reason


def test_large_logits_keep_their_faithful_runtimes(tmp_path: Path, monkeypatch) -> None:
    """A randomly initialised reference-layout file has logits in the thousands: float32 rounding differs by
    more than 1e-3 there, which must not cost ONNX Runtime or OpenVINO the race."""
    monkeypatch.setenv("DAN_HOME", str(tmp_path / "home"))
    torch.manual_seed(0)
    buf = io.BytesIO()
    torch.save({"model_state_dict": PlainDAN(7, 4).state_dict()}, buf)
    (tmp_path / "ref.pth").write_bytes(buf.getvalue())
    model = dan.load_model(tmp_path / "ref.pth", labels="rafdb")
    model.preprocessing = dataclasses.replace(model.preprocessing, input_size=112)  # smaller: a quick test
    timings = {"torch": 50.0, "onnx": 2.0, "openvino": 1.0}  # OpenVINO fastest, ONNX Runtime next
    monkeypatch.setattr(auto, "_time", lambda runner, x, **kwargs: timings[runner.name])
    reference = TorchBackend(model)
    x = np.random.default_rng(0).standard_normal((2, 3, 112, 112)).astype(np.float32)
    expected = reference(x)
    from dan.runtime.onnx import OnnxBackend

    got = OnnxBackend(export_onnx(model, tmp_path / "m.onnx"))(x)
    assert np.abs(expected).max() > 500 and np.abs(got - expected).max() > 1e-3  # what the old absolute rule refused
    assert auto.float_disagreement(expected, got) is None
    picked = fastest_backend(reference, faces=lambda: prepared_faces(4, model.preprocessing))
    assert picked.name == "openvino" and "differ" not in picked.auto_reason, picked.auto_reason
    off = expected.copy()
    off[:, 0] += 1e-3 * np.abs(expected).max()  # a runtime off by 0.1 % of the logits' scale is refused
    assert "logits differ" in auto.float_disagreement(expected, off)


def test_int8_races_when_cached_and_only_when_it_agrees_on_faces(ckpt: Path, tmp_path: Path, monkeypatch) -> None:
    model = dan.load_model(ckpt)
    faces = prepared_faces(16, model.preprocessing, seed=5)
    export_checkpoint(model, tmp_path / "m-int8.onnx", int8=True, calib=faces, calib_source="generated faces")
    cached = cached_export(model, "int8")
    assert not cached.exists()
    timings = {"torch": 50.0, "onnx": 5.0, "openvino": 4.0, "onnx-int8": 1.0, "openvino-int8": 2.0}

    def fake_time(runner, x, **kwargs) -> float:
        path = getattr(runner, "path", None)
        return timings[runner.name + ("-int8" if path is not None and is_int8(path) else "")]

    monkeypatch.setattr(auto, "_time", fake_time)
    probe = lambda: prepared_faces(8, model.preprocessing, seed=6)  # noqa: E731
    # given explicitly; agreement on the probe faces decides (the threshold moved to make each outcome sure)
    monkeypatch.setattr(auto, "INT8_AGREEMENT", 0.0)
    picked = fastest_backend(load_backend(ckpt), int8=tmp_path / "m-int8.onnx", faces=probe)
    assert picked.auto_reason.startswith("ONNX Runtime int8"), picked.auto_reason
    assert "OpenVINO int8 " in picked.auto_reason
    (tmp_path / "home" / "probe.json").unlink()
    monkeypatch.setattr(auto, "INT8_AGREEMENT", 1.01)
    picked = fastest_backend(load_backend(ckpt), int8=tmp_path / "m-int8.onnx", faces=probe)
    assert picked.auto_reason.startswith("OpenVINO float32"), picked.auto_reason
    assert "ONNX Runtime int8: top-1 agrees with torch on" in picked.auto_reason
    # on the command line: every command races --int8 FILE under --backend auto; else it is refused in one line
    monkeypatch.setattr(auto, "INT8_AGREEMENT", 0.0)
    (tmp_path / "home" / "probe.json").unlink()
    parser = argparse.ArgumentParser()
    add_model_and_detector_options(parser, "image", 640)
    parser.add_argument("--threads", type=int)
    args = parser.parse_args(["--checkpoint", str(ckpt), "--detector", "haar", "--int8", str(tmp_path / "m-int8.onnx")])
    assert predictor_from_args(args).backend.auto_reason.startswith("ONNX Runtime int8 (")
    args.backend = "torch"
    with pytest.raises(DanError, match="--int8 .*m-int8.onnx: an int8 export races only under --backend auto"):
        predictor_from_args(args)
    # cached by dan export: raced without being named, but never without faces to check it on
    assert dan_main(["export", "--checkpoint", str(ckpt), "--output", str(tmp_path / "c.onnx"), "--int8"]) == 0
    assert cached.is_file()
    monkeypatch.setattr(auto, "INT8_AGREEMENT", 0.0)
    picked = fastest_backend(load_backend(ckpt))
    assert "ONNX Runtime int8: not raced: no probe faces" in picked.auto_reason, picked.auto_reason
    assert picked.name == "openvino"


def test_backends_do_not_change_the_callers_model(ckpt: Path) -> None:
    model = dan.load_model(ckpt).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    labels, device = model.labels, next(model.parameters()).device
    TorchBackend(model, labels=dan.LABEL_SETS["fer2013"])
    assert model.training and model.labels == labels and next(model.parameters()).device == device
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert os.environ["DAN_HOME"].endswith("home")
