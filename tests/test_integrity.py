"""Model files check themselves: a checksum of the weights, stored settings checked before a model is
built, and a clear line for a file from a newer dan."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

import dan
from dan.cli.main import main
from dan.errors import DanError
from dan.export import export_onnx
from dan.models.loading import load_model
from dan.models.metadata import FORMAT_VERSION
from dan.runtime.onnx import OnnxBackend
from dan.runtime.pt2 import Pt2Backend


def _flip_middle(path: Path, size: int = 4096) -> None:
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid : mid + size] = bytes(b ^ 0x5A for b in data[mid : mid + size])
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_a_file_damaged_after_saving_is_refused(tiny_model, tmp_path: Path, suffix: str) -> None:
    path = dan.save_model(tiny_model, tmp_path / f"m{suffix}")
    assert load_model(path).labels == tiny_model.labels  # the checksum of a good file passes
    _flip_middle(path)
    with pytest.raises(DanError, match=rf"m\{suffix}: (damaged file|not a readable)"):
        load_model(path)


def test_damaged_exports_are_refused(tiny_model, tmp_path: Path) -> None:
    onnx_path = export_onnx(tiny_model, tmp_path / "m.onnx")
    OnnxBackend(onnx_path)
    _flip_middle(onnx_path, 2048)
    with pytest.raises(DanError, match=r"m.onnx: (damaged file|not a (loadable|readable) ONNX)"):
        OnnxBackend(onnx_path)
    from dan.export import export_checkpoint

    pt2 = tmp_path / "m.pt2"
    export_checkpoint(tiny_model, pt2, "pt2")
    Pt2Backend(pt2)
    _flip_middle(pt2, 1024)
    with pytest.raises(DanError, match=r"m.pt2: "):
        Pt2Backend(pt2)


def test_stored_settings_are_checked_before_a_model_is_built(tiny_model, tmp_path: Path, capsys) -> None:
    good = dan.save_model(tiny_model, tmp_path / "good.pt")
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
    assert load_model(tmp_path / "v1.pt").labels == tiny_model.labels  # files of format 1 still load


def test_every_runtime_keeps_the_one_metadata_record(tiny_model, tmp_path: Path) -> None:
    """Checkpoint, ONNX, OpenVINO and .pt2 loaders read the file's entry through ModelMetadata.read and keep
    the record (labels, preprocessing, trained_on); a damaged entry is one line naming the file."""
    import onnx

    from dan.export import export_checkpoint
    from dan.models.metadata import ModelMetadata
    from dan.runtime.openvino import OpenVinoBackend
    from dan.runtime.torch import TorchBackend

    model = copy.deepcopy(tiny_model)  # the shared model is not changed
    model.trained_on = {"format": "rafdb", "synthetic": True}
    onnx_path, pt2 = export_onnx(model, tmp_path / "m.onnx"), tmp_path / "m.pt2"
    export_checkpoint(model, pt2, "pt2")
    runtimes = [TorchBackend(model), OnnxBackend(onnx_path), OpenVinoBackend(onnx_path), Pt2Backend(pt2)]
    for backend in runtimes:
        record = backend.metadata
        assert isinstance(record, ModelMetadata), type(backend)
        assert record.labels == backend.labels == model.labels and record.num_classes == 7
        assert record.preprocessing == backend.preprocessing == model.preprocessing
        assert record.trained_on == backend.trained_on == model.trained_on
        assert record.model_config["num_heads"] == 2
    assert OnnxBackend(onnx_path, labels="fer2013").metadata.labels == dan.LABEL_SETS["fer2013"]
    assert ModelMetadata.read(None) is None and ModelMetadata.read("") is None
    assert ModelMetadata.read('{"model_config": {"num_classes": 3}}').num_classes == 3
    proto = onnx.load(str(onnx_path))
    for prop in proto.metadata_props:
        if prop.key == "dan":
            prop.value = prop.value[:40]  # cut short: no longer JSON
    onnx.save(proto, str(tmp_path / "cut.onnx"))
    with pytest.raises(DanError, match=r"cut.onnx: damaged DAN settings: not JSON"):
        OnnxBackend(tmp_path / "cut.onnx")
