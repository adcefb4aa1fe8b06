"""``--backend auto``: the fastest lossless runtime for a PyTorch checkpoint on the CPU it runs on.

Lossless candidates (the same function to float32 rounding; each is checked against torch's logits):

- ``torch``: the re-parameterised model (BatchNorms folded, head branches merged), channels-last;
- ``onnx``: the same network exported once to ONNX (kept in ``$DAN_HOME/exports/``, named by the
  checkpoint's weights checksum) and run by ONNX Runtime, when onnxruntime is installed;
- ``openvino``: that ONNX file run by OpenVINO in float32, when the optional openvino is installed.

A short timed probe (batch 1 at the model's input size) decides, and its result is kept in
``$DAN_HOME/probe.json`` under a key of the CPU, its vector ISA, the library versions, the thread count
and the model, so it runs once per machine and model. int8 is never picked here: it needs calibration
images and an agreement check (``dan export --int8 --calib DIR --verify``), and on CPUs without VNNI
(AVX2 only) ONNX Runtime's int8 is slower than float32 (measured 141.8 ms against 37.0 ms on an AVX2
EPYC), which :func:`int8_warning` says when such a file is loaded there.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from dan.common import DanError
from dan.fileio import atomic_write
from dan.hub import dan_home
from dan.system import cpu_flags, cpu_model

if TYPE_CHECKING:
    from dan.inference.backends import TorchBackend
    from dan.inference.onnx_backend import OnnxBackend

__all__ = ["AGREEMENT", "auto_backend", "has_vnni", "int8_warning"]

_NAMES = {"torch": "torch, re-parameterised", "onnx": "ONNX Runtime float32", "openvino": "OpenVINO float32"}

AGREEMENT = 1e-3
"""Largest logit difference from torch at which ONNX Runtime may be picked (float32 differs by ~1e-6)."""


def has_vnni() -> bool:
    """True when the CPU has VNNI (AVX512-VNNI or AVX-VNNI): what makes int8 faster than float32."""
    return bool({"avx512_vnni", "avx_vnni", "amx_int8"} & cpu_flags())


def int8_warning(path: Path) -> str | None:
    """A one-line warning when ``path`` is an int8 ONNX model and this CPU has no VNNI, else None."""
    if has_vnni() or not _is_int8(path):
        return None
    return (
        f"{path}: an int8 model on a CPU without VNNI (AVX2 only) runs slower than float32 here; "
        "use the float32 export (dan export without --int8)"
    )


def _is_int8(path: Path) -> bool:
    try:
        import onnx

        proto = onnx.load(str(path), load_external_data=False)
    except Exception:
        return False
    return any(
        n.op_type in ("QuantizeLinear", "DequantizeLinear", "QLinearConv", "MatMulInteger") for n in proto.graph.node
    )


def _time(fn, x: np.ndarray, runs: int = 8) -> float:
    fn(x)  # warm-up
    fn(x)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def _probe_key(checksum: str, size: int, threads: int) -> str:
    import onnxruntime

    flags = " ".join(sorted(f for f in cpu_flags() if f.startswith(("avx", "amx", "fma"))))
    try:
        import openvino

        ov = f"|openvino {openvino.__version__}"
    except ImportError:
        ov = ""
    versions = f"torch {torch.__version__}|ort {onnxruntime.__version__}{ov}"
    return f"{cpu_model()}|{flags}|{versions}|{threads}|{size}|{checksum}"


def auto_backend(torch_backend: TorchBackend, threads: int | None = None) -> TorchBackend | OnnxBackend:
    """Pick the fastest of ``torch_backend`` (re-parameterised PyTorch), ONNX Runtime and (when installed)
    OpenVINO on the same weights, among those whose logits agree with torch's within :data:`AGREEMENT`.

    Args:
        torch_backend: A :class:`dan.inference.backends.TorchBackend` on the CPU.
        threads: Runtime threads (None: the runtimes' defaults).

    Returns:
        The faster backend; its ``auto_reason`` says what was picked and why.
    """
    if torch_backend.device.type != "cpu":
        torch_backend.auto_reason = f"torch on {torch_backend.device}"
        return torch_backend
    try:
        import onnxruntime  # noqa: F401

        from dan.inference.export.onnx import export_onnx
        from dan.inference.onnx_backend import OnnxBackend
    except ImportError:
        torch_backend.auto_reason = "torch, re-parameterised (onnxruntime is not installed)"
        return torch_backend
    from dan.inference.openvino_backend import OpenVinoBackend, openvino_available
    from dan.models.metadata import tensor_checksum

    model = torch_backend.source
    checksum = tensor_checksum(model.state_dict()).removeprefix("sha256:")[:16]
    size = torch_backend.preprocessing.input_size
    n = threads or torch.get_num_threads()
    probe_file = dan_home() / "probe.json"
    key = _probe_key(checksum, size, n)
    try:
        cache = json.loads(probe_file.read_text())
    except (OSError, ValueError):
        cache = {}
    exported = dan_home() / "exports" / f"{checksum}-{size}.onnx"
    choice = cache.get(key)
    try:
        if not exported.is_file():
            exported.parent.mkdir(parents=True, exist_ok=True)
            export_onnx(model, exported)
        onnx_backend = OnnxBackend(exported, labels=torch_backend.labels, threads=threads)
    except (DanError, OSError) as err:
        torch_backend.auto_reason = f"torch, re-parameterised (no ONNX export: {err})"
        return torch_backend
    runners: dict[str, TorchBackend | OnnxBackend] = {"torch": torch_backend, "onnx": onnx_backend}
    if openvino_available():
        try:
            runners["openvino"] = OpenVinoBackend(exported, labels=torch_backend.labels, threads=threads)
        except DanError:
            pass  # OpenVINO cannot run it here: the other two still race
    if choice is None or choice.get("pick") not in runners:
        x = np.random.default_rng(0).standard_normal((1, 3, size, size)).astype(np.float32)
        reference = torch_backend(x)
        ms = {name: _time(runner, x) for name, runner in runners.items()}
        diff = {name: float(np.abs(runner(x) - reference).max()) for name, runner in runners.items()}
        lossless = [name for name in runners if diff[name] <= AGREEMENT]  # torch always is
        pick = min(lossless, key=lambda name: ms[name])
        choice = {"pick": pick, "ms": ms, "max_logit_diff": diff}
        cache[key] = choice
        try:
            atomic_write(probe_file, json.dumps(cache, indent=1), "probe cache")
        except DanError:
            pass  # a read-only cache only costs a probe next time
    ms, diff = choice.get("ms", {}), choice.get("max_logit_diff", {})
    how = ", ".join(f"{_NAMES[name]} {ms[name]:.1f} ms" for name in runners if name in ms) + " at batch 1"
    off = [f"{_NAMES[n]}'s logits differ by {d:.1e}, above {AGREEMENT:g}" for n, d in diff.items() if d > AGREEMENT]
    if off:
        how += "; " + "; ".join(off)
    picked = runners[choice["pick"]]
    picked.auto_reason = f"{_NAMES[choice['pick']]} ({how})"
    return picked
