"""Export (ONNX float32/int8, TorchScript), the ONNX Runtime backend and ``dan export``."""

from __future__ import annotations

import json
import sys

import cv2
import numpy as np
import onnx
import pytest
import torch
from torch import nn

from dan import DAN
from dan.cli.main import main as dan_main
from dan.common import DanError, Preprocessing
from dan.inference.export import (
    export_checkpoint,
    export_onnx,
    find_images,
    load_images,
    load_torchscript,
    preprocess_image,
    quantize_onnx,
    top1_agreement,
)
from dan.inference.onnx_backend import OnnxBackend
from dan.models.checkpoint import save_model

torch.set_num_threads(2)
SIZE = 64
RAFDB = ("surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral")


def _model() -> DAN:
    """A small DAN (2 heads, 64 px) whose BatchNorm statistics come from data and whose logits differ."""
    torch.manual_seed(0)
    model = DAN(num_classes=7, num_heads=2)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.momentum = None
                m.weight.copy_(0.5 + torch.rand(m.num_features, generator=g))
                m.bias.copy_(0.2 * torch.randn(m.num_features, generator=g))
        model.train()
        model(torch.randn(8, 3, SIZE, SIZE, generator=g))
    model.labels = RAFDB
    model.preprocessing = Preprocessing(input_size=SIZE, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3))
    return model.eval()


def _faces(folder, n: int = 24) -> None:
    """Face-like pictures of different sizes: a skin-coloured ellipse, eyes and a mouth on a background."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        h, w = int(rng.integers(50, 120)), int(rng.integers(50, 120))
        img = np.full((h, w, 3), rng.integers(0, 255, 3), np.uint8)
        skin = tuple(int(v) for v in rng.integers(90, 230, 3))
        cv2.ellipse(img, (w // 2, h // 2), (w // 3, h * 2 // 5), 0, 0, 360, skin, -1)
        for ex in (w // 3, 2 * w // 3):
            cv2.circle(img, (ex, h * 2 // 5), max(2, w // 16), (30, 30, 30), -1)
        mouth = (w // 8, int(rng.integers(1, h // 8)))
        cv2.ellipse(img, (w // 2, h * 2 // 3), mouth, 0, 0, 180 * (1 + i % 2), (40, 0, 90), -1)
        img = np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)
        cv2.imwrite(str(folder / f"face_{i:02d}.{'png' if i % 2 else 'jpg'}"), img)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    model = _model()
    ckpt = save_model(model, root / "model.pt")
    _faces(root / "faces")
    onnx_path = export_onnx(model, root / "model.onnx")
    return model, ckpt, root / "faces", onnx_path


def _close(got: np.ndarray, want: np.ndarray) -> bool:
    """Equal to float32 rounding: 1e-4 of the largest logit (at least 1e-4)."""
    return float(np.abs(got - want).max()) <= 1e-4 * max(1.0, float(np.abs(want).max()))


def _torch(model: DAN, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with torch.no_grad():
        out = model(torch.from_numpy(x), return_attention=True)
    return out.logits.numpy(), out.attention.numpy()


def test_onnx_matches_pytorch_with_dynamic_batch_and_metadata(setup) -> None:
    model, _, faces, path = setup
    backend = OnnxBackend(path, threads=2, spinning=False)
    assert backend.labels == RAFDB
    assert backend.preprocessing == model.preprocessing
    assert backend.output_names == ("logits", "attention")
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert json.loads(props["labels"]) == list(RAFDB)
    assert json.loads(props["preprocessing"])["input_size"] == SIZE
    assert json.loads(props["dan"])["model_config"]["num_heads"] == 2
    rng = np.random.default_rng(1)
    for n in (1, 5):
        x = rng.standard_normal((n, 3, SIZE, SIZE)).astype(np.float32)
        logits, attention = _torch(model, x)
        got = backend(x)
        assert got.shape == (n, 7) and got.dtype == np.float32
        assert _close(got, logits)
        got2, att = backend.predict_with_attention(x)
        assert np.array_equal(got2, got) and np.array_equal(backend.attention(x), att)
        assert np.abs(att - attention).max() <= 1e-5 * np.abs(attention).max() + 1e-5
    x = load_images(faces, model.preprocessing)  # real inputs
    assert _close(backend(x), _torch(model, x)[0])
    assert backend(x[:0]).shape == (0, 7)
    with pytest.raises(DanError, match="expected input of shape"):
        backend(np.zeros((1, 3, SIZE + 1, SIZE + 1), np.float32))
    assert OnnxBackend(path, labels="fer2013").labels[0] == "anger"


def test_int8_static_quantisation_agrees_with_float32(setup, tmp_path) -> None:
    model, _, faces, path = setup
    x = load_images(faces, model.preprocessing)
    out = quantize_onnx(path, tmp_path / "int8.onnx", calib=x[::2])
    proto = onnx.load(str(out))
    ops = {n.op_type for n in proto.graph.node}
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    assert json.loads({p.key: p.value for p in proto.metadata_props}["labels"]) == list(RAFDB)
    ref = _torch(model, x)[0]
    got = OnnxBackend(out)(x)
    # an untrained network has small logit margins, so top-1 agreement is only a loose check here;
    # the int8 logits must still follow the float32 ones closely
    assert np.corrcoef(got.ravel(), ref.ravel())[0, 1] > 0.9
    assert top1_agreement(got, ref) >= 0.5
    assert len(set(ref.argmax(1))) > 1  # agreement is not trivial


def test_torchscript_export_matches_and_carries_metadata(setup, tmp_path) -> None:
    model, _, faces, _ = setup
    report = export_checkpoint(model, tmp_path / "m.ts", "torchscript", calib=faces, verify=True)
    assert report.ok and report.max_abs_diff_random <= 1e-3 and report.max_abs_diff_images <= 1e-3
    module, meta = load_torchscript(tmp_path / "m.ts")
    assert meta["labels"] == list(RAFDB) and meta["preprocessing"]["input_size"] == SIZE
    x = np.random.default_rng(2).standard_normal((3, 3, SIZE, SIZE)).astype(np.float32)
    with torch.no_grad():
        logits, attention = module(torch.from_numpy(x))
    assert _close(logits.numpy(), _torch(model, x)[0])
    assert attention.shape == (3, 2, 2, 2)


def test_cli_export_verify_and_errors(setup, tmp_path, capsys) -> None:
    _, ckpt, faces, _ = setup
    out = tmp_path / "sub" / "cli.onnx"
    args = ["export", "--checkpoint", str(ckpt), "--output", str(out), "--calib", str(faces)]
    assert dan_main([*args, "--format", "onnx", "--int8", "--verify", "--min-agreement", "0.3"]) == 0
    text = capsys.readouterr().out
    assert "real images" in text and "OK" in text and "int8 (static quantisation): top-1 agreement" in text
    assert sorted(p.name for p in out.parent.iterdir()) == ["cli.onnx"]  # no temporary file left
    assert OnnxBackend(out).labels == RAFDB
    # a verification that cannot pass: exit 1, file still written
    ts = tmp_path / "cli.ts"
    assert dan_main([*args[:4], str(ts), "--format", "torchscript", "--verify", "--tolerance", "-1"]) == 1
    assert ts.is_file()
    assert "verification failed" in capsys.readouterr().err
    # bad inputs: one line naming the file, exit 2
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a checkpoint")
    assert dan_main(["export", "--checkpoint", str(bad), "--output", str(tmp_path / "x.onnx")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "broken.pt" in err
    assert dan_main([*args[:-1], str(tmp_path / "nope"), "--int8"]) == 1
    assert "nope" in capsys.readouterr().err
    assert dan_main([*args, "--format", "torchscript", "--int8"]) == 1
    assert not (tmp_path / "x.onnx").exists()


def test_preprocess_image_resizes_and_normalises() -> None:
    pre = Preprocessing(input_size=8, mean=(0.5, 0.5, 0.5), std=(0.25, 0.5, 1.0))
    rgb = np.zeros((20, 30, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 255, 0, 128
    x = preprocess_image(rgb, pre)
    assert x.shape == (3, 8, 8) and x.dtype == np.float32
    np.testing.assert_allclose(x[0], 2.0, atol=1e-6)
    np.testing.assert_allclose(x[1], -1.0, atol=1e-6)
    np.testing.assert_allclose(x[2], 128 / 255 - 0.5, atol=1e-6)


def test_missing_inputs_are_one_line_errors(tmp_path, monkeypatch) -> None:
    with pytest.raises(DanError, match="no such folder"):
        find_images(tmp_path / "missing")
    with pytest.raises(DanError, match="no images"):
        find_images(tmp_path)
    with pytest.raises(DanError, match="missing.onnx: no such file"):
        OnnxBackend(tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00junk")
    with pytest.raises(DanError, match="junk.onnx: not a loadable ONNX model"):
        OnnxBackend(junk)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if not installed
    with pytest.raises(DanError, match=r"pip install 'dan\[export\]'"):
        OnnxBackend(junk)
