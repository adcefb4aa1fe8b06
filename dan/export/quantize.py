"""int8 quantisation of a float32 ONNX export with onnxruntime, keeping its metadata.

``static`` (the default, and what ``dan export --int8`` writes): the QDQ format, per-channel int8
weights and uint8 activations whose ranges are measured on calibration faces; the convolutions are
quantised, the heads' small matrix products and the classifier stay float32 (with ``head="mha"`` the
whole attention head). It needs calibration images and refuses to run without. Two choices make its
top-1 agree with float32 on CPUs with and without VNNI alike:

- weights in 7 bits (``reduce_range``): without VNNI, ONNX Runtime multiplies uint8 activations by
  int8 weights with AVX2's ``VPMADDUBSW``, whose 16-bit pair sums saturate for 8-bit weights; a saturated
  sum flipped confident faces (top-1 margins up to 0.38). In 7 bits no sum can saturate, so the integer
  arithmetic is exact on every CPU, at the same speed (measured on an AVX2-only EPYC: 15.0-16.1 ms
  against 16.0-19.3 ms at 224 px);
- activation ranges from the 99.999th percentile of each tensor's values (``Percentile``), not its
  extremes (``MinMax``): a rare outlier no longer widens a range, and with it every step.

Measured on a 2-core AVX2 EPYC (``python -m scripts.bench.int8_variants``), top-1 agreement with float32 on
373 faces none was calibrated on: the quickstart's model (48 px) 94.9 % (8-bit weights, MinMax) ->
98.1 % (7-bit) -> 98.4 % (7-bit, Percentile), the largest flipped top-1 margin 0.58 -> 0.14; a 40 px
model 96.2 % -> 98.7 % -> 99.2 %.

The int8 file records how it was made in the metadata entry ``dan_int8`` (JSON: ``mode``, and for
static ``calibration``, what the faces were, ``images``, how many, and ``ranges``: ``percentile``, or
``minmax`` where a tensor's values barely varied over the faces and numpy could not bin them).
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np

from dan.errors import DanError
from dan.export.onnx import set_onnx_metadata
from dan.export.scratch import scratch_folder
from dan.fileio import atomic_path
from dan.models.metadata import ModelMetadata

__all__ = ["INT8_MODES", "float_nodes", "int8_record", "quantize_onnx", "quantize_static_qdq"]

INT8_MODES = ("static", "dynamic")
"""``static``: calibrated activation ranges (the default); ``dynamic``: ranges at run time (slow without VNNI)."""

_KEEP_FLOAT = {"MatMul", "Einsum", "Gemm", "Mul", "Div", "Sigmoid", "ReduceSum", "ReduceMean", "LogSoftmax", "Softmax"}


def float_nodes(graph, metadata: dict[str, str]) -> list[str]:
    """Names of the nodes static int8 quantisation leaves in float32.

    The heads' small matrix products, sigmoid and log-softmax; with ``head="mha"``
    (:mod:`dan.models.mha`) the whole attention head: every node the first LayerNorm feeds.
    """
    names = [n.name for n in graph.node if n.op_type in _KEEP_FLOAT]
    try:
        record = ModelMetadata.read(metadata.get("dan"))
    except DanError:  # not this project's settings: quantise it as a DAN head
        record = None
    head = record.model_config.get("head", "dan") if record is not None else "dan"
    start = next((n for n in graph.node if n.op_type == "LayerNormalization"), None)
    if head != "mha" or start is None:
        return names
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    seen, todo = {start.name}, [start]
    while todo:  # every node downstream of the token LayerNorm
        for out in todo.pop().output:
            for node in consumers.get(out, []):
                if node.name not in seen:
                    seen.add(node.name)
                    todo.append(node)
    return sorted(set(names) | seen)


class _Calibration:
    """onnxruntime CalibrationDataReader over an (N, 3, S, S) array, a few images at a time."""

    def __init__(self, images: np.ndarray, input_name: str) -> None:
        # one image a run: batches of equal size, as the percentile calibrator's merge needs
        self._batches = iter([{input_name: images[i : i + 1]} for i in range(len(images))])

    def get_next(self):
        return next(self._batches, None)

    def rewind(self) -> None:  # pragma: no cover - not used by MinMax calibration
        pass


def quantize_static_qdq(
    pre: str | os.PathLike,
    output: str | os.PathLike,
    faces: np.ndarray,
    exclude: list[str],
    *,
    reduce_range: bool = True,
    percentile: bool = True,
    uint8_weights: bool = False,
) -> None:
    """onnxruntime's static QDQ quantisation as ``dan`` runs it: per-channel weights, uint8 activations.

    Args:
        pre: The float32 model after onnxruntime's ``quant_pre_process``.
        output: Where the int8 model goes (no metadata added).
        faces: Preprocessed calibration faces (N, 3, S, S), float32, fed one at a time.
        exclude: Node names left in float32 (:func:`float_nodes`).
        reduce_range: 7-bit weights (see the module docstring); False: 8-bit.
        percentile: Activation ranges from the 99.999th percentile; False: MinMax.
        uint8_weights: uint8 weights (onnxruntime's U8U8 kernels) instead of int8.

    Raises:
        ValueError: From numpy, when percentile ranges meet a tensor whose values barely vary.
    """
    import onnx
    from onnxruntime import quantization as q

    input_name = onnx.load(str(pre)).graph.input[0].name
    q.quantize_static(
        str(pre),
        str(output),
        _Calibration(np.ascontiguousarray(faces, dtype=np.float32), input_name),
        quant_format=q.QuantFormat.QDQ,
        per_channel=True,
        activation_type=q.QuantType.QUInt8,
        weight_type=q.QuantType.QUInt8 if uint8_weights else q.QuantType.QInt8,
        reduce_range=reduce_range,
        calibrate_method=q.CalibrationMethod.Percentile if percentile else q.CalibrationMethod.MinMax,
        nodes_to_exclude=exclude,
    )


def int8_record(metadata: dict[str, str]) -> dict | None:
    """The ``dan_int8`` entry of an ONNX file's metadata (how it was quantised), or None (float32 or unknown)."""
    try:
        record = json.loads(metadata.get("dan_int8") or "null")
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def quantize_onnx(
    src: str | os.PathLike,
    output: str | os.PathLike,
    calib: np.ndarray | None = None,
    *,
    mode: str = "static",
    source: str = "calibration images",
) -> Path:
    """Quantise a float32 ONNX export to int8 (see the module docstring), written atomically.

    Args:
        src: The float32 ``.onnx`` file (from :func:`dan.export.onnx.export_onnx`).
        output: Destination file.
        calib: Preprocessed calibration faces (N, 3, S, S), float32: required for ``static``.
        mode: ``static`` or ``dynamic`` (:data:`INT8_MODES`).
        source: What the calibration faces are, for the file's ``dan_int8`` record.

    Returns:
        The path written.

    Raises:
        DanError: An unknown ``mode``, or ``static`` without calibration faces.
    """
    import onnx

    from dan.runtime.onnx import import_onnxruntime

    if mode not in INT8_MODES:
        raise DanError(f"unknown int8 mode {mode!r}: choose one of {', '.join(INT8_MODES)}")
    if mode == "static" and (calib is None or not len(calib)):
        raise DanError(
            "static int8 quantisation needs calibration faces (dan export --int8 draws them when --calib is not given)"
        )
    import_onnxruntime()
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    src, output = Path(src), Path(output)
    proto = onnx.load(str(src))
    metadata = {p.key: p.value for p in proto.metadata_props}
    # intermediates (and onnxruntime's own temporary files) in a scratch folder a killed run does not leave behind
    with scratch_folder() as work, atomic_path(output, "int8 ONNX file") as tmp:
        pre = work / "pre.onnx"
        try:
            quant_pre_process(str(src), str(pre))
        except Exception:  # symbolic shape inference can fail on some graphs
            quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if mode == "static":
                assert calib is not None  # checked above
                # the convolutions (and the residual adds/ReLUs between them) in int8; the heads' small
                # matrix products, sigmoid and log-softmax stay float32: the same speed, 3x smaller error.
                # 7-bit weights and percentile ranges: see the module docstring
                exclude = float_nodes(onnx.load(str(pre)).graph, metadata)
                try:
                    quantize_static_qdq(pre, tmp, calib, exclude)
                    ranges = "percentile"
                except ValueError:  # numpy cannot bin a tensor whose values barely vary: take the extremes
                    quantize_static_qdq(pre, tmp, calib, exclude, percentile=False)
                    ranges = "minmax"
                record = {"mode": "static", "calibration": source, "images": len(calib), "ranges": ranges}
            else:
                quantize_dynamic(str(pre), str(tmp), per_channel=True, weight_type=QuantType.QInt8)
                record = {"mode": "dynamic"}
        set_onnx_metadata(tmp, {**metadata, "dan_int8": json.dumps(record)})
    return output
