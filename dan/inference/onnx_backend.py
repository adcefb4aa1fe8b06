"""Run an exported DAN ONNX model (float32 or int8) with ONNX Runtime on CPU.

The model file carries its class names and preprocessing in its metadata (written by
:func:`dan.inference.export.export_onnx`), so one file is all a deployment needs: no PyTorch.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dan.common import DanError, Preprocessing, one_line, resolve_labels
from dan.models.metadata import ModelMetadata

__all__ = ["EXPORT_HINT", "OnnxBackend", "import_onnxruntime", "read_onnx_metadata"]

EXPORT_HINT = "pip install 'dan[export]'"


def import_onnxruntime():
    """Import onnxruntime, or raise a :class:`DanError` saying how to install it."""
    try:
        import onnxruntime
    except ImportError:
        raise DanError(f"the ONNX backend needs onnxruntime, which is not installed: {EXPORT_HINT}") from None
    return onnxruntime


def read_onnx_metadata(session_or_props) -> dict | None:
    """The ``"dan"`` metadata entry (model settings, labels, preprocessing) of an exported model.

    Args:
        session_or_props: An ``onnxruntime.InferenceSession`` or a ``{key: value}`` dict of
            metadata properties.

    Returns:
        The decoded dict, or None when the model has none (not exported by this project).
    """
    if isinstance(session_or_props, dict):
        props = session_or_props
    else:
        props = session_or_props.get_modelmeta().custom_metadata_map
    raw = props.get("dan")
    if raw is None:
        return None
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError:
        return None
    return meta if isinstance(meta, dict) else None


class OnnxBackend:
    """An exported DAN ONNX model behind the same interface as the PyTorch backend.

    Args:
        path: The ``.onnx`` file (from ``dan export --format onnx``, float32 or ``--int8``).
        labels: Label set name or class names; overrides the names in the file's metadata.
        threads: ONNX Runtime intra-op threads (None: ONNX Runtime's default, one per core).
        spinning: Let idle worker threads spin-wait for the next run (ONNX Runtime's default: lowest
            latency). Turn it off when other work shares the cores (a video pipeline, a benchmark).

    Attributes:
        labels: Class names, index i naming logit i.
        preprocessing: Input size, mean and std the model expects (from the metadata).
        num_classes: Number of logits.
        output_names: Outputs of the model (``logits`` first; ``attention`` when exported).
        path: The model file.

    Raises:
        DanError: onnxruntime is missing, or the file is missing or not a loadable ONNX model, or
            it has no label names and ``labels`` is not given (for a non-8-class model).
    """

    auto_reason: str  # set by dan.inference.auto.auto_backend: what --backend auto picked and why
    warning: str | None  # set by dan.inference.backends.load_backend: int8 on a CPU without VNNI

    def __init__(
        self,
        path: str | os.PathLike,
        labels: str | Sequence[str] | None = None,
        threads: int | None = None,
        spinning: bool = True,
    ) -> None:
        ort = import_onnxruntime()
        self.path = Path(path)
        if not self.path.is_file():
            raise DanError(f"{self.path}: no such file")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = int(threads)
        options.log_severity_level = 3  # errors only
        if not spinning:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            # onnxruntime prints an "EP Error ... Falling back" banner to stdout on a bad file: the
            # one-line error below says it instead
            with contextlib.redirect_stdout(io.StringIO()):
                self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as err:
            msg = one_line(err)
            raise DanError(f"{self.path}: not a loadable ONNX model: {msg}") from None
        try:
            meta = read_onnx_metadata(self.session) or {}
        except UnicodeDecodeError:
            raise DanError(f"{self.path}: damaged ONNX file: its metadata is not UTF-8 text") from None
        if meta:
            ModelMetadata.from_dict(meta, f"{self.path}: ")  # every stored value checked
        self._verify_weights()
        self.metadata = meta
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = tuple(o.name for o in self.session.get_outputs())
        num_classes = (meta.get("model_config") or {}).get("num_classes")
        if num_classes is None:
            shape = self.session.get_outputs()[0].shape
            num_classes = shape[-1] if shape and isinstance(shape[-1], int) else None
        if num_classes is None:
            raise DanError(f"{self.path}: cannot tell the number of classes (no DAN metadata, dynamic output)")
        self.num_classes = int(num_classes)
        try:
            self.labels: tuple[str, ...] = resolve_labels(
                labels if labels is not None else meta.get("labels"), self.num_classes
            )
        except DanError as err:
            raise type(err)(f"{self.path}: {err}") from None
        self.preprocessing = Preprocessing.from_dict(meta.get("preprocessing"), f"{self.path}: ")
        self.trained_on = meta.get("trained_on") if isinstance(meta.get("trained_on"), dict) else None
        self.name = "onnx"

    def _verify_weights(self) -> None:
        """Check the initializers against the checksum written at export (when onnx is there to read them)."""
        stored = self.session.get_modelmeta().custom_metadata_map.get("dan_weights")
        if not stored:
            return
        try:
            import onnx

            from dan.inference.export.onnx import onnx_weights_checksum
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

    @property
    def supports_attention(self) -> bool:
        """Whether the file has the ``attention`` output (exports without it give logits only)."""
        return "attention" in self.output_names

    def run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Every output of the model (``logits`` and, when exported, ``attention`` (N, K, H, W)).

        Args:
            x: Preprocessed images, float32, shape (N, 3, S, S) with S = ``preprocessing.input_size``.
        """
        x = np.asarray(x)
        s = self.preprocessing.input_size
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[2:] != (s, s):
            raise DanError(f"{self.path}: expected input of shape (N, 3, {s}, {s}), got {tuple(x.shape)}")
        if x.shape[0] == 0:
            return {self.output_names[0]: np.zeros((0, self.num_classes), np.float32)}
        return self._infer(np.ascontiguousarray(x, dtype=np.float32))

    def _infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Run the checked input through the runtime: every output by name."""
        outs = self.session.run(None, {self.input_name: x})
        return dict(zip(self.output_names, outs))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Logits, float32 (N, C), for preprocessed images float32 (N, 3, S, S)."""
        return self.run(x)[self.output_names[0]]

    def predict_with_attention(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Logits (N, C) and the heads' attention maps (N, K, h, w) from one run.

        Raises:
            DanError: The file has no ``attention`` output (not exported by ``dan export``).
        """
        if "attention" not in self.output_names:
            raise DanError(f"{self.path}: this ONNX model has no 'attention' output (re-export it with dan export)")
        outs = self.run(x)
        if "attention" not in outs:  # an empty batch
            return outs[self.output_names[0]], np.zeros((0, 0, 0, 0), np.float32)
        return outs[self.output_names[0]], outs["attention"]

    def attention(self, x: np.ndarray) -> np.ndarray:
        """The heads' spatial attention maps, float32 (N, K, h, w)."""
        return self.predict_with_attention(x)[1]

    def __repr__(self) -> str:
        size = self.preprocessing.input_size
        return f"OnnxBackend({str(self.path)!r}, classes={self.num_classes}, input_size={size})"
