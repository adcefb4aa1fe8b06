"""Model files check themselves: a checksum of the weights, stored settings checked before a model is
built, and a clear line for a file from a newer dan."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import dan
from dan.cli.main import main
from dan.common import DanError
from dan.inference.export import export_onnx
from dan.inference.onnx_backend import OnnxBackend
from dan.inference.pt2 import Pt2Backend
from dan.models.checkpoint import load_model
from dan.models.metadata import FORMAT_VERSION


@pytest.fixture(scope="module")
def model() -> dan.DAN:
    torch.manual_seed(0)
    m = dan.DAN(7, 2, backbone="test_resnet").eval()
    m.labels, m.preprocessing = dan.LABEL_SETS["rafdb"], dan.Preprocessing(input_size=32)
    return m


def _flip_middle(path: Path, size: int = 4096) -> None:
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid : mid + size] = bytes(b ^ 0x5A for b in data[mid : mid + size])
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_a_file_damaged_after_saving_is_refused(model, tmp_path: Path, suffix: str) -> None:
    path = dan.save_model(model, tmp_path / f"m{suffix}")
    assert load_model(path).labels == model.labels  # the checksum of a good file passes
    _flip_middle(path)
    with pytest.raises(DanError, match=rf"m\{suffix}: (damaged file|not a readable)"):
        load_model(path)


def test_damaged_exports_are_refused(model, tmp_path: Path) -> None:
    onnx_path = export_onnx(model, tmp_path / "m.onnx")
    OnnxBackend(onnx_path)
    _flip_middle(onnx_path, 2048)
    with pytest.raises(DanError, match=r"m.onnx: (damaged file|not a (loadable|readable) ONNX)"):
        OnnxBackend(onnx_path)
    from dan.inference.export import export_checkpoint

    pt2 = tmp_path / "m.pt2"
    export_checkpoint(model, pt2, "pt2")
    Pt2Backend(pt2)
    _flip_middle(pt2, 1024)
    with pytest.raises(DanError, match=r"m.pt2: "):
        Pt2Backend(pt2)


def test_stored_settings_are_checked_before_a_model_is_built(model, tmp_path: Path, capsys) -> None:
    good = dan.save_model(model, tmp_path / "good.pt")
    stored = torch.load(good, weights_only=True)
    cases = {
        "classes.pt": ("model_config", {"num_classes": -1}, r"model_config.num_classes=-1"),
        "size.pt": ("preprocessing", {"input_size": "abc"}, r"preprocessing.input_size='abc'"),
        "head.pt": ("model_config", {"head": "xyz"}, r"model_config.head='xyz'"),
        "labels.pt": ("labels", 7, r"labels=7: expected a list"),
    }
    for name, (key, value, message) in cases.items():
        entry = dict(stored["dan"])
        entry[key] = {**entry[key], **value} if isinstance(value, dict) else value
        torch.save({"dan": entry, "state_dict": stored["state_dict"]}, tmp_path / name)
        assert main(["info", "--checkpoint", str(tmp_path / name)]) == 1
        err = capsys.readouterr().err
        assert name in err and message.replace("\\", "") in err and len(err.strip().splitlines()) == 1, err
    newer = dict(stored["dan"], format_version=FORMAT_VERSION + 1)
    torch.save({"dan": newer, "state_dict": stored["state_dict"]}, tmp_path / "newer.pt")
    with pytest.raises(DanError, match="written by a newer dan"):
        load_model(tmp_path / "newer.pt")
    older = {k: v for k, v in stored["dan"].items() if k not in ("checksum", "trained_on")}
    torch.save({"dan": dict(older, format_version=1), "state_dict": stored["state_dict"]}, tmp_path / "v1.pt")
    assert load_model(tmp_path / "v1.pt").labels == model.labels  # files of format 1 still load
