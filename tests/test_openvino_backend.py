"""``--backend openvino``: an exported ONNX file run by OpenVINO gives ONNX Runtime's answers."""

from __future__ import annotations

import builtins
from pathlib import Path

import numpy as np
import pytest

import dan
from dan import DanError
from dan.export import export_checkpoint
from dan.runtime.loader import load_backend
from dan.runtime.torch import TorchBackend


@pytest.fixture(scope="module")
def exported(tiny_checkpoint, tmp_path_factory) -> tuple[Path, Path]:
    onnx_file = tmp_path_factory.mktemp("ov") / "m.onnx"
    export_checkpoint(dan.load_model(tiny_checkpoint), onnx_file)
    return tiny_checkpoint, onnx_file


def test_openvino_matches_onnx_runtime_and_torch(exported) -> None:
    ckpt, onnx_file = exported
    ov = load_backend(onnx_file, "openvino", threads=2)
    ort = load_backend(onnx_file, "onnx")
    assert ov.name == "openvino" and ov.labels == ort.labels and ov.preprocessing == ort.preprocessing
    x = np.random.default_rng(0).standard_normal((3, 3, 32, 32)).astype(np.float32)
    np.testing.assert_allclose(ov(x), ort(x), atol=1e-4)
    np.testing.assert_allclose(ov(x), TorchBackend(ckpt, reparameterize=False)(x), atol=1e-4)
    logits, maps, _ = ov.outputs(x, attention=True)
    assert logits.shape == (3, 7) and maps.shape == (3, 2, 1, 1)  # test_resnet at 32 px: a 1 x 1 map
    np.testing.assert_allclose(maps, ort.outputs(x, attention=True).attention, atol=1e-4)
    assert ov(np.zeros((0, 3, 32, 32), np.float32)).shape == (0, 7)


def test_openvino_errors_are_one_line(exported, tmp_path: Path, monkeypatch) -> None:
    ckpt, onnx_file = exported
    with pytest.raises(DanError, match=r"--backend openvino runs \.onnx files"):
        load_backend(ckpt, "openvino")
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(onnx_file.read_bytes()[:5000])
    with pytest.raises(DanError, match="broken.onnx"):
        load_backend(broken, "openvino")
    real_import = builtins.__import__

    def no_openvino(name, *args, **kwargs):
        if name == "openvino" or name.startswith("openvino."):
            raise ImportError("No module named 'openvino'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_openvino)
    with pytest.raises(DanError, match="pip install openvino"):
        load_backend(onnx_file, "openvino")
