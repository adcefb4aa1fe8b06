"""Run an exported DAN ONNX model (float32 or int8) with ONNX Runtime, on the CPU or a CUDA GPU.

The model file carries its class names and preprocessing in its metadata (written by
:func:`dan.export.onnx.export_onnx`), so one file is all a deployment needs: no PyTorch. What this
module reads it checks: the metadata (:class:`dan.models.metadata.ModelMetadata`) and the checksum of
the weights written at export (:func:`onnx_weights_checksum`, when the ``onnx`` package is there to
read them). It runs float32 and int8 files alike; :func:`is_int8` tells them apart.

On a GPU (``device="cuda"`` or ``"auto"`` where PyTorch sees one) the session runs on ONNX Runtime's
CUDA provider, which only the ``onnxruntime-gpu`` package has (``pip install 'dan-fer[gpu]'``; it and
``onnxruntime`` must not be installed together). Without it, or when the provider cannot start (its
CUDA libraries missing), the session runs on the CPU and ``device_reason`` says why in one line
(:func:`onnx_providers`).
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dan.errors import DanError, one_line
from dan.models.metadata import ModelMetadata
from dan.runtime.backend import CPU, Backend, Outputs
from dan.system import DeviceChoice

__all__ = [
    "CUDA_PROVIDER",
    "EXPORT_HINT",
    "GPU_HINT",
    "OnnxBackend",
    "import_onnxruntime",
    "is_int8",
    "onnx_providers",
    "onnx_weights_checksum",
]

EXPORT_HINT = "pip install 'dan-fer[export]'"
CUDA_PROVIDER = "CUDAExecutionProvider"
CPU_PROVIDER = "CPUExecutionProvider"
GPU_HINT = (
    "pip uninstall onnxruntime, then pip install 'dan-fer[gpu]' (onnxruntime-gpu; the two cannot be installed together)"
)


def import_onnxruntime():
    """Import onnxruntime, or raise a :class:`DanError` saying how to install it."""
    try:
        import onnxruntime
    except ImportError:
        raise DanError(f"the ONNX backend needs onnxruntime, which is not installed: {EXPORT_HINT}") from None
    return onnxruntime


def onnx_providers(ort, choice: DeviceChoice, tf32: bool = True) -> tuple[list, str]:
    """ONNX Runtime's execution providers for a resolved device, and one line on the choice.

    Args:
        ort: The ``onnxruntime`` module.
        choice: Where the model should run (:func:`dan.system.pick_device`).
        tf32: Let the CUDA provider run float32 in TF32 (its default; False: full float32).

    Returns:
        ``(providers, reason)``: the CUDA provider (on GPU N) then the CPU one where a GPU is picked
        and this onnxruntime has the CUDA provider; else the CPU provider, the reason saying why.
    """
    if not choice.is_cuda:
        return [CPU_PROVIDER], choice.reason
    if CUDA_PROVIDER not in ort.get_available_providers():
        return [CPU_PROVIDER], (
            f"cpu: {choice.device} was picked, but this onnxruntime has no CUDA provider (the CPU-only "
            f"onnxruntime package): ONNX Runtime runs on the CPU; for the GPU: {GPU_HINT}"
        )
    options = {"device_id": str(choice.index), "use_tf32": "1" if tf32 else "0"}
    return [(CUDA_PROVIDER, options), CPU_PROVIDER], f"{choice.reason}, ONNX Runtime's CUDA provider"


def onnx_weights_checksum(proto) -> str:
    """SHA-256 over an ONNX graph's initializers (names, types, dims and bytes), sorted by name.

    Export writes it as the ``dan_weights`` metadata entry; :class:`OnnxBackend` checks it on load.
    """
    import hashlib

    from onnx import numpy_helper

    h = hashlib.sha256()
    for init in sorted(proto.graph.initializer, key=lambda t: t.name):
        array = numpy_helper.to_array(init)
        h.update(f"{init.name}|{array.dtype}|{array.shape}|".encode())
        h.update(array.tobytes())
    return "sha256:" + h.hexdigest()


def is_int8(path: Path) -> bool:
    """Whether the ONNX file at ``path`` is int8-quantised (False when it cannot be read or onnx is missing)."""
    try:
        import onnx

        proto = onnx.load(str(path), load_external_data=False)
    except Exception:
        return False
    return any(
        n.op_type in ("QuantizeLinear", "DequantizeLinear", "QLinearConv", "MatMulInteger") for n in proto.graph.node
    )


class OnnxBackend(Backend):
    """An exported DAN ONNX model behind the same interface as the PyTorch backend.

    Args:
        path: The ``.onnx`` file (from ``dan export --format onnx``, float32 or ``--int8``).
        labels: Label set name or class names; overrides the names in the file's metadata.
        threads: ONNX Runtime intra-op threads (None: ONNX Runtime's default, one per core).
        spinning: Let idle worker threads spin-wait for the next run (ONNX Runtime's default: lowest
            latency). Turn it off when other work shares the cores (a video pipeline, a benchmark).
        device: Where to run, resolved (:func:`dan.system.pick_device`; None: the CPU): the CUDA provider on
            a GPU (:func:`onnx_providers`); ``device_reason`` says where it runs and why.
        tf32: On the CUDA provider, let float32 run in TF32 (its default; False: full float32).

    Attributes:
        num_classes: Number of logits.
        output_names: Outputs of the model (``logits`` first; ``attention`` when exported; ``va`` for a
            model with the valence/arousal output).
        path: The model file.
        providers: The execution providers the session runs on (``CUDAExecutionProvider`` first on a GPU).
        device_reason: One line: where the model runs and why.

    Raises:
        DanError: onnxruntime is missing, or the file is missing or not a loadable ONNX model, or
            it has no label names and ``labels`` is not given (for a non-8-class model).
    """

    name = "onnx"

    def __init__(
        self,
        path: str | os.PathLike,
        labels: str | Sequence[str] | None = None,
        threads: int | None = None,
        spinning: bool = True,
        device: DeviceChoice | None = None,
        tf32: bool = True,
    ) -> None:
        ort = import_onnxruntime()
        self.path = Path(path)
        if not self.path.is_file():
            raise DanError(f"{self.path}: no such file")
        choice = device or CPU
        providers, reason = onnx_providers(ort, choice, tf32)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = int(threads)
        options.log_severity_level = 3  # errors only
        if not spinning:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            # onnxruntime prints an "EP Error ... Falling back" banner to stdout on a bad file (and on a CUDA
            # provider that cannot start, with a warning and log lines): the one line below says it instead
            with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                if len(providers) > 1:
                    ort.set_default_logger_severity(3)  # errors only (the session's own level comes later)
                self.session = ort.InferenceSession(str(self.path), options, providers=providers)
        except Exception as err:
            msg = one_line(err)
            raise DanError(f"{self.path}: not a loadable ONNX model: {msg}") from None
        self.providers: tuple[str, ...] = tuple(self.session.get_providers())
        if len(providers) > 1 and CUDA_PROVIDER not in self.providers:  # asked for, and it did not start
            reason = (
                "cpu: ONNX Runtime's CUDA provider did not start (its CUDA or cuDNN libraries are missing, or "
                "they do not match this onnxruntime-gpu): ONNX Runtime runs on the CPU"
            )
        if CUDA_PROVIDER not in self.providers:
            choice = DeviceChoice("cpu", reason)
        where = f"{self.path}: "
        try:
            raw = self.session.get_modelmeta().custom_metadata_map.get("dan")
        except UnicodeDecodeError:
            raise DanError(f"{where}damaged ONNX file: its metadata is not UTF-8 text") from None
        record = ModelMetadata.read(raw, where)  # every stored value checked
        self._verify_weights()
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = tuple(o.name for o in self.session.get_outputs())
        if record is None:  # another exporter's file: the class count from the output's shape
            shape = self.session.get_outputs()[0].shape
            if not (shape and isinstance(shape[-1], int)):
                raise DanError(f"{where}cannot tell the number of classes (no DAN metadata, dynamic output)")
            record = ModelMetadata({"num_classes": int(shape[-1])})
        super().__init__(record.with_labels(labels, where), choice)
        self.device_reason = reason
        self.num_classes = len(self.labels)
        self.has_va = "va" in self.output_names
        self.has_attention = "attention" in self.output_names  # exports without it give logits only

    def _verify_weights(self) -> None:
        """Check the initializers against the checksum written at export (when onnx is there to read them)."""
        stored = self.session.get_modelmeta().custom_metadata_map.get("dan_weights")
        if not stored:
            return
        try:
            import onnx
        except ImportError:  # a deployment with onnxruntime only: nothing to check with
            return
        try:
            proto = onnx.load(str(self.path), load_external_data=False)
        except Exception as err:
            raise DanError(f"{self.path}: not a readable ONNX file: {one_line(err)}") from None
        if onnx_weights_checksum(proto) != stored:
            raise DanError(
                f"{self.path}: damaged file: its weights do not match the checksum written at export "
                "(changed or corrupted after it was saved)"
            )

    def _infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Run the checked input through the runtime: every output by name."""
        outs = self.session.run(None, {self.input_name: x})
        return dict(zip(self.output_names, outs))

    def outputs(self, x: np.ndarray, attention: bool = False) -> Outputs:
        """Logits (N, C), attention maps (N, K, h, w) when asked for (and exported), and valence/arousal
        (N, 2) when the file has the ``va`` output, from one run (:class:`dan.runtime.backend.Outputs`).

        Args:
            x: Preprocessed images, float32, shape (N, 3, S, S) with S = ``preprocessing.input_size``.
            attention: Also return the attention maps (files exported with them).

        Raises:
            DanError: ``x`` is not of that shape.
        """
        x = np.asarray(x)
        s = self.preprocessing.input_size
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[2:] != (s, s):
            raise DanError(f"{self.path}: expected input of shape (N, 3, {s}, {s}), got {tuple(x.shape)}")
        if len(x) == 0:
            return self.empty(attention)
        outs = self._infer(np.ascontiguousarray(x, dtype=np.float32))
        maps = outs.get("attention") if attention else None
        return Outputs(outs[self.output_names[0]], maps, outs.get("va") if self.has_va else None)

    def __repr__(self) -> str:
        size = self.preprocessing.input_size
        return f"OnnxBackend({str(self.path)!r}, classes={self.num_classes}, input_size={size})"
