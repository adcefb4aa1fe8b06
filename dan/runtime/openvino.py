"""OpenVINO runtime for exported ONNX files (``--backend openvino``; optional: ``pip install openvino``).

OpenVINO reads the ``.onnx`` file that ``dan export`` writes directly. On the x86 CPUs measured for this
project its float32 path was the fastest lossless one at batch 1 (see the README's speed tables), and
it runs the int8 (QDQ) export too. Everything but the run itself is :class:`OnnxBackend`'s: the
metadata (labels, preprocessing) and the weights checksum are read and checked the same way.

Float32 models run in float32: OpenVINO would otherwise run them in bfloat16 on CPUs that have it
(``INFERENCE_PRECISION_HINT``), which is not lossless.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from dan.errors import DanError, one_line
from dan.runtime.onnx import OnnxBackend
from dan.system import DeviceChoice

__all__ = ["OpenVinoBackend", "openvino_available"]


def openvino_available() -> bool:
    """Whether the optional ``openvino`` package can be imported."""
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


class OpenVinoBackend(OnnxBackend):
    """An exported DAN ONNX model run by OpenVINO on the CPU, with :class:`OnnxBackend`'s interface.

    Args:
        path: The ``.onnx`` file (``dan export``, float32 or ``--int8``).
        labels: Label set name or class names; overrides the file's.
        threads: Inference threads (None: OpenVINO's default, one per core).
        device: Where the model was asked to run, resolved (None: the CPU): OpenVINO runs on the CPU, and
            ``device_reason`` says so when a GPU was picked.

    Raises:
        DanError: openvino or onnxruntime is missing, or the file is missing, damaged or not loadable.
    """

    name = "openvino"

    def __init__(
        self,
        path: str | os.PathLike,
        labels: str | Sequence[str] | None = None,
        threads: int | None = None,
        device: DeviceChoice | None = None,
    ) -> None:
        try:
            import openvino as ov
        except ImportError:
            raise DanError("the openvino backend needs the openvino package: pip install openvino") from None
        super().__init__(path, labels=labels, threads=1, spinning=False)  # metadata and checksum, then dropped
        del self.session
        config: dict[str, object] = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        try:
            self.compiled = ov.Core().compile_model(str(self.path), "CPU", config)
        except Exception as err:
            raise DanError(f"{self.path}: OpenVINO cannot load this ONNX model: {one_line(err)}") from None
        self._outputs = [(out.get_any_name(), out) for out in self.compiled.outputs]
        if device is not None:  # OpenVINO runs on the CPU, wherever the model was asked to run
            reason = device.reason
            if device.is_cuda:
                reason = f"cpu: {device.device} was picked, but the openvino backend runs on the CPU"
            self.device, self.device_reason = DeviceChoice("cpu", reason), reason

    def _infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
        result = self.compiled(x)  # (N, C) logits and, when exported, (N, K, h, w) attention
        return {name: np.asarray(result[port]) for name, port in self._outputs}
