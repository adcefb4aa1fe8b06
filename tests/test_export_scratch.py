"""int8 export intermediates live in a scratch folder under DAN_HOME that a killed export leaves to the next."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from dan.export import quantize_onnx, scratch
from dan.export.scratch import remove_abandoned, scratch_folder, scratch_root


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """DAN_HOME and the system temporary folder, both empty, in tmp_path; returns the scratch root."""
    monkeypatch.setenv("DAN_HOME", str(tmp_path / "home"))
    (tmp_path / "systmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "systmp"))
    return tmp_path / "home" / "tmp"


def _tiny_onnx(path: Path) -> Path:
    """Conv -> Relu, (N, 3, 8, 8) -> (N, 4, 8, 8): enough for onnxruntime's static quantisation."""
    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.normal(size=(4, 3, 3, 3)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["input", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["out"])],
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 4, 8, 8])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_quantisation_writes_its_intermediates_only_under_dan_home(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[Path] = []
    real_mkdtemp = tempfile.mkdtemp

    def recording_mkdtemp(*args, **kwargs):  # onnxruntime's TemporaryDirectory calls it too
        made.append(Path(real_mkdtemp(*args, **kwargs)))
        return str(made[-1])

    monkeypatch.setattr(tempfile, "mkdtemp", recording_mkdtemp)
    src = _tiny_onnx(tmp_path / "float32.onnx")
    calib = np.random.default_rng(1).normal(size=(4, 3, 8, 8)).astype(np.float32)
    out = quantize_onnx(src, tmp_path / "int8.onnx", calib)
    assert {n.op_type for n in onnx.load(str(out)).graph.node} >= {"QuantizeLinear", "DequantizeLinear"}
    assert made, "onnxruntime made no temporary folder: the test no longer sees its intermediates"
    assert all(home in p.parents for p in made), made  # none in the system's temporary folder
    assert list((tmp_path / "systmp").iterdir()) == [] and list(home.iterdir()) == []
    assert tempfile.tempdir == str(tmp_path / "systmp")  # put back


def test_a_killed_exports_scratch_is_removed_by_the_next(home: Path, tmp_path: Path) -> None:
    code = (  # the module alone, not the export package (which imports torch: seconds, not a tenth)
        "import importlib.util, sys, tempfile, time\n"
        "spec = importlib.util.spec_from_file_location('scratch', sys.argv[1])\n"
        "scratch = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(scratch)\n"
        "with scratch.scratch_folder() as work:\n"
        "    (work / 'float32.onnx').write_bytes(bytes(1 << 20))\n"
        "    inner = tempfile.mkdtemp(prefix='ort.quant.')\n"  # what onnxruntime makes, inside
        "    print(work, inner, flush=True)\n"
        "    time.sleep(120)\n"
    )
    env = {**os.environ, "DAN_HOME": str(tmp_path / "home")}
    argv = [sys.executable, "-c", code, scratch.__file__]
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, env=env, text=True)
    assert child.stdout is not None
    work, inner = (Path(p) for p in child.stdout.readline().split())
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert work.parent == home and inner.parent == work and (work / "float32.onnx").is_file()  # left behind
    live = home / f"export-{os.getppid()}-00ff"  # a running process's folder stays
    live.mkdir()
    with scratch_folder() as mine:
        assert not work.exists() and live.is_dir()
        assert mine.parent == scratch_root() == home and tempfile.gettempdir() == str(mine)
    assert not mine.exists() and tempfile.gettempdir() == str(tmp_path / "systmp")
    assert remove_abandoned(home) == []
