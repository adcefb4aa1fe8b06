"""Export a DAN checkpoint to ONNX (float32 or int8) or TorchScript, and check the export.

What is exported is the re-parameterised network (:func:`dan.models.reparam.reparameterize`: every
BatchNorm folded, each head's three convolution branches merged into one; ``head="mha"`` heads are
exported as they are), with a dynamic batch axis and two outputs: ``logits`` (N, C) and
``attention`` (N, K, H, W), the heads' spatial attention maps. The class names and the
preprocessing (input size, mean, std) travel inside the file: ONNX ``metadata_props`` (key
``dan``, JSON, plus ``labels`` and ``preprocessing``) and TorchScript ``_extra_files``
(``dan.json``). Every file is written next to its destination and renamed into place. Nothing
here needs the network.

ONNX export uses PyTorch's torch.export-based exporter (``dynamo=True``), the maintained one; the
legacy TorchScript-based exporter is only a fallback when the first fails.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from dan.common import DanError, Preprocessing
from dan.imaging import IMAGE_SUFFIXES, read_image
from dan.models.checkpoint import checkpoint_metadata
from dan.models.dan import DAN
from dan.models.reparam import reparameterize

__all__ = [
    "DEFAULT_OPSET",
    "ExportReport",
    "export_checkpoint",
    "export_metadata",
    "export_onnx",
    "export_torchscript",
    "find_images",
    "load_images",
    "load_torchscript",
    "preprocess_image",
    "quantize_onnx",
    "top1_agreement",
]

DEFAULT_OPSET = 18
OUTPUT_NAMES = ("logits", "attention")


# --------------------------------------------------------------------------------------------- inputs
def preprocess_image(rgb: np.ndarray, preprocessing: Preprocessing) -> np.ndarray:
    """A face image as the model's input: :func:`dan.preprocess.prepare_face` (the one contract).

    Args:
        rgb: Array (H, W, 3), uint8, RGB (as :func:`dan.imaging.read_image` returns).
        preprocessing: The model's preprocessing record.

    Returns:
        Float32 array (3, S, S).
    """
    from dan.preprocess import prepare_face

    return prepare_face(rgb, preprocessing)


def find_images(root: str | os.PathLike) -> list[Path]:
    """Image files under ``root`` (recursively), sorted.

    Raises:
        DanError: ``root`` is not a folder or holds no image.
    """
    root = Path(root)
    if not root.is_dir():
        raise DanError(f"{root}: no such folder (--calib takes a folder of face images)")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise DanError(f"{root}: no images found (looked for {', '.join(IMAGE_SUFFIXES)})")
    return files


def load_images(root: str | os.PathLike, preprocessing: Preprocessing, limit: int | None = None) -> np.ndarray:
    """Read and preprocess up to ``limit`` images of ``root``, evenly spread over the sorted list.

    Returns:
        Float32 array (N, 3, S, S).
    """
    files = find_images(root)
    if limit is not None and len(files) > limit:
        files = [files[i] for i in np.linspace(0, len(files) - 1, limit).round().astype(int)]
    return np.stack([preprocess_image(read_image(f), preprocessing) for f in files])


# --------------------------------------------------------------------------------------------- writing
def export_metadata(model: DAN) -> dict[str, str]:
    """String metadata an exported file carries: ``dan`` (all settings, JSON), ``labels``, ``preprocessing``."""
    meta = checkpoint_metadata(model)
    meta["outputs"] = list(OUTPUT_NAMES)
    meta["reparameterized"] = True
    return {
        "dan": json.dumps(meta),
        "labels": json.dumps(meta["labels"]),
        "preprocessing": json.dumps(meta["preprocessing"]),
    }


class _Outputs(nn.Module):
    """(logits, attention) of a DAN, the tuple an exported graph returns."""

    def __init__(self, model: DAN) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.model(x, return_attention=True)
        return out.logits, out.attention


def _tmp_path(output: Path) -> Path:
    output.parent.mkdir(parents=True, exist_ok=True)
    return output.with_name(f".{output.name}.{os.getpid()}.tmp")


def _replace(tmp: Path, output: Path) -> Path:
    os.replace(tmp, output)
    return output


def _sample_input(model: DAN, batch: int = 2) -> torch.Tensor:
    s = model.preprocessing.input_size
    return torch.randn(batch, model.in_chans, s, s, generator=torch.Generator().manual_seed(0))


def _prepare(model: DAN) -> DAN:
    if not isinstance(model, DAN):
        raise TypeError(f"expected a DAN model, got {type(model).__name__}")
    return reparameterize(model.cpu().float().eval())


def _set_onnx_metadata(path: Path, metadata: dict[str, str]) -> None:
    import onnx

    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    for key, value in metadata.items():
        proto.metadata_props.add(key=key, value=value)
    proto.producer_name = "dan"
    onnx.save(proto, str(path))


def export_onnx(model: DAN, output: str | os.PathLike, opset: int = DEFAULT_OPSET) -> Path:
    """Write the re-parameterised ``model`` as an ONNX file (float32, dynamic batch axis).

    Inputs ``input`` (N, 3, S, S); outputs ``logits`` (N, C) and ``attention`` (N, K, H, W); metadata
    from :func:`export_metadata`.

    Args:
        model: The DAN (not changed; its ``labels`` and ``preprocessing`` go in the metadata).
        output: Destination ``.onnx`` file (one self-contained file).
        opset: ONNX opset version.

    Returns:
        The path written.
    """
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise DanError("ONNX export needs onnx and onnxscript: pip install 'dan[export]'") from None
    output = Path(output)
    net = _Outputs(_prepare(model)).eval()
    x = _sample_input(model)
    tmp = _tmp_path(output)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                program = torch.onnx.export(
                    net,
                    (x,),
                    None,
                    dynamo=True,
                    input_names=["input"],
                    output_names=list(OUTPUT_NAMES),
                    dynamic_shapes={"x": {0: torch.export.Dim("batch", min=1, max=65536)}},
                    opset_version=opset,
                    verbose=False,
                )
                program.save(str(tmp), external_data=False)
            except Exception as err:  # the legacy exporter as fallback
                warnings.warn(
                    f"torch.export-based ONNX export failed ({type(err).__name__}); using the legacy exporter",
                    stacklevel=2,
                )
                torch.onnx.export(
                    net,
                    (x,),
                    str(tmp),
                    dynamo=False,
                    input_names=["input"],
                    output_names=list(OUTPUT_NAMES),
                    dynamic_axes={name: {0: "batch"} for name in ("input", *OUTPUT_NAMES)},
                    opset_version=opset,
                )
        _set_onnx_metadata(tmp, export_metadata(model))
        return _replace(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)


_KEEP_FLOAT = {"MatMul", "Einsum", "Gemm", "Mul", "Div", "Sigmoid", "ReduceSum", "ReduceMean", "LogSoftmax", "Softmax"}


def _float_nodes(graph, metadata: dict[str, str]) -> list[str]:
    """Names of the nodes static int8 quantisation leaves in float32.

    The heads' small matrix products, sigmoid and log-softmax; with ``head="mha"``
    (:mod:`dan.models.mha`) the whole attention head: every node the first LayerNorm feeds.
    """
    names = [n.name for n in graph.node if n.op_type in _KEEP_FLOAT]
    try:
        head = json.loads(metadata.get("dan", "{}")).get("model_config", {}).get("head", "dan")
    except (json.JSONDecodeError, AttributeError):
        head = "dan"
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

    def __init__(self, images: np.ndarray, input_name: str, batch: int = 8) -> None:
        self._batches = iter([{input_name: images[i : i + batch]} for i in range(0, len(images), batch)])

    def get_next(self):
        return next(self._batches, None)

    def rewind(self) -> None:  # pragma: no cover - not used by MinMax calibration
        pass


def quantize_onnx(src: str | os.PathLike, output: str | os.PathLike, calib: np.ndarray | None = None) -> Path:
    """Quantise a float32 ONNX export to int8, keeping its metadata.

    With calibration images: static quantisation in the QDQ format, per-channel int8 weights and
    uint8 activations, MinMax ranges (fast on CPUs with VNNI); the convolutions are quantised, the
    heads' small matrix products and the classifier stay float32 (with ``head="mha"`` the whole
    attention head and the classifier). Without: dynamic quantisation
    (int8 weights, activations quantised at run time), less accurate and slower; pass images.

    Args:
        src: The float32 ``.onnx`` file (from :func:`export_onnx`).
        output: Destination file.
        calib: Preprocessed calibration images (N, 3, S, S), float32, or None.

    Returns:
        The path written.
    """
    import onnx

    from dan.inference.onnx_backend import import_onnxruntime

    import_onnxruntime()
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    src, output = Path(src), Path(output)
    proto = onnx.load(str(src))
    metadata = {p.key: p.value for p in proto.metadata_props}
    input_name = proto.graph.input[0].name
    tmp = _tmp_path(output)
    with tempfile.TemporaryDirectory() as work:
        pre = Path(work) / "pre.onnx"
        try:
            quant_pre_process(str(src), str(pre))
        except Exception:  # symbolic shape inference can fail on some graphs
            quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if calib is not None and len(calib):
                    # the convolutions (and the residual adds/ReLUs between them) in int8; the heads' small
                    # matrix products, sigmoid and log-softmax stay float32: the same speed, 3x smaller error
                    keep_float = _float_nodes(onnx.load(str(pre)).graph, metadata)
                    quantize_static(
                        str(pre),
                        str(tmp),
                        _Calibration(np.ascontiguousarray(calib, dtype=np.float32), input_name),
                        quant_format=QuantFormat.QDQ,
                        per_channel=True,
                        activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8,
                        nodes_to_exclude=keep_float,
                    )
                else:
                    quantize_dynamic(str(pre), str(tmp), per_channel=True, weight_type=QuantType.QInt8)
            _set_onnx_metadata(tmp, metadata)
            return _replace(tmp, output)
        finally:
            tmp.unlink(missing_ok=True)


def export_torchscript(model: DAN, output: str | os.PathLike) -> Path:
    """Write the re-parameterised ``model`` as a traced, frozen TorchScript file.

    It returns ``(logits, attention)``; load it with :func:`load_torchscript` (or ``torch.jit.load``
    with ``_extra_files={"dan.json": ""}`` for the metadata).

    Returns:
        The path written.
    """
    output = Path(output)
    net = _Outputs(_prepare(model)).eval()
    x = _sample_input(model)
    tmp = _tmp_path(output)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(net, (x,), check_inputs=[(x[:1],)])
            traced = torch.jit.freeze(traced.eval())
            torch.jit.save(traced, str(tmp), _extra_files={"dan.json": export_metadata(model)["dan"]})
        return _replace(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)


def load_torchscript(path: str | os.PathLike) -> tuple[torch.jit.ScriptModule, dict]:
    """Load an exported TorchScript file and its ``dan`` metadata.

    Raises:
        DanError: Missing or unreadable file.
    """
    path = Path(path)
    if not path.is_file():
        raise DanError(f"{path}: no such file")
    extra = {"dan.json": ""}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated in favour of torch.export
            module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except Exception as err:
        raise DanError(f"{path}: not a loadable TorchScript file: {' '.join(str(err).split())[:200]}") from None
    try:
        meta = json.loads(extra["dan.json"] or "{}")
    except json.JSONDecodeError:
        meta = {}
    return module.eval(), meta


# --------------------------------------------------------------------------------------------- checking
def top1_agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of rows whose arg-max is the same in the two logit arrays (N, C)."""
    a, b = np.asarray(a), np.asarray(b)
    return float((a.argmax(1) == b.argmax(1)).mean()) if len(a) else 1.0


def _run_batched(fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray, batch: int = 16) -> np.ndarray:
    return np.concatenate([fn(x[i : i + batch]) for i in range(0, len(x), batch)])


def _torch_logits(model: DAN) -> Callable[[np.ndarray], np.ndarray]:
    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(np.ascontiguousarray(x))).logits.float().numpy()

    return run


def _random_inputs(preprocessing: Preprocessing, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    s = preprocessing.input_size
    return [rng.standard_normal((n, 3, s, s)).astype(np.float32) for n in (1, 3)]


@dataclass
class ExportReport:
    """What :func:`export_checkpoint` did and measured.

    Attributes:
        output: The file written.
        format: ``onnx`` or ``torchscript``.
        int8: Whether the file is int8-quantised (``static`` or ``dynamic``), else None.
        max_abs_diff_random: Largest |export - PyTorch| logit difference on random inputs (verify).
        max_abs_diff_images: The same on the real images of ``calib`` (verify, when given).
        num_images: Number of real images compared.
        int8_agreement: Top-1 agreement of the int8 model with float32 on the images (or random inputs).
        lines: Human-readable report lines.
        ok: False when a check failed.
    """

    output: Path
    format: str
    int8: str | None = None
    max_abs_diff_random: float | None = None
    max_abs_diff_images: float | None = None
    num_images: int = 0
    int8_agreement: float | None = None
    lines: list[str] = field(default_factory=list)
    ok: bool = True


def export_checkpoint(
    model: DAN,
    output: str | os.PathLike,
    format: str = "onnx",
    *,
    opset: int = DEFAULT_OPSET,
    int8: bool = False,
    calib: str | os.PathLike | None = None,
    verify: bool = False,
    tolerance: float = 1e-3,
    min_agreement: float = 0.99,
    max_images: int = 256,
    calib_images: int = 128,
) -> ExportReport:
    """Export ``model`` and optionally quantise and verify it (what ``dan export`` runs).

    Args:
        model: The DAN (eval mode, ``labels`` and ``preprocessing`` set, e.g. from ``load_model``).
        output: Destination file.
        format: ``onnx`` or ``torchscript``.
        opset: ONNX opset.
        int8: Write an int8 ONNX model (static QDQ calibrated on ``calib``; dynamic without it).
        calib: Folder of face images: calibration for ``int8`` and real inputs for ``verify``.
        verify: Run the export next to PyTorch (the unfolded model) on random and real inputs.
        tolerance: Largest logit difference ``verify`` accepts for a float32 export.
        min_agreement: Smallest int8-vs-float32 top-1 agreement ``verify`` accepts.
        max_images: At most this many images of ``calib`` are read (spread over the folder).
        calib_images: At most this many of them calibrate the int8 model.

    Returns:
        An :class:`ExportReport`; ``ok`` is False when verification failed.

    Raises:
        DanError: Bad arguments, a missing/empty ``calib`` folder, an unreadable image.
    """
    output = Path(output)
    if format not in ("onnx", "torchscript"):
        raise DanError(f"unknown export format {format!r}: choose onnx or torchscript")
    if int8 and format != "onnx":
        raise DanError("--int8 is for ONNX exports only (use --format onnx)")
    if output.is_dir():
        raise DanError(f"{output}: is a folder; --output takes a file name")
    model = model.cpu().float().eval()
    report = ExportReport(output=output, format=format)
    images = load_images(calib, model.preprocessing, max_images) if calib is not None else None
    if images is not None:
        report.num_images = len(images)
    torch_logits = _torch_logits(model)

    if format == "torchscript":
        export_torchscript(model, output)
        module, _ = load_torchscript(output)

        def runner(x: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return module(torch.from_numpy(np.ascontiguousarray(x)))[0].numpy()
    else:
        from dan.inference.onnx_backend import OnnxBackend

        if int8:
            with tempfile.TemporaryDirectory() as work:
                float_path = export_onnx(model, Path(work) / "float32.onnx", opset=opset)
                calib_set = None
                if images is not None:
                    idx = np.linspace(0, len(images) - 1, min(calib_images, len(images))).round().astype(int)
                    calib_set = images[np.unique(idx)]
                quantize_onnx(float_path, output, calib_set)
                float_backend = OnnxBackend(float_path, labels=model.labels)
                check = images if images is not None else np.concatenate(_random_inputs(model.preprocessing, 1))
                ref = _run_batched(float_backend, check)
                report.int8 = "static" if calib_set is not None else "dynamic"
                backend = OnnxBackend(output, labels=model.labels)
                report.int8_agreement = top1_agreement(ref, _run_batched(backend, check))
                what = f"{len(check)} images of {calib}" if images is not None else f"{len(check)} random inputs"
                report.lines.append(
                    f"int8 ({report.int8} quantisation): top-1 agreement with float32 "
                    f"{report.int8_agreement:.2%} on {what}"
                )
                if verify:  # the float32 graph the int8 model came from, checked against PyTorch
                    report.lines.append("verify: float32 ONNX graph before quantisation:")
                    _verify(report, model, float_backend, torch_logits, images, tolerance)
                    if report.int8_agreement < min_agreement:
                        report.ok = False
                        report.lines.append(f"FAILED: int8 agreement {report.int8_agreement:.2%} < {min_agreement:.0%}")
            report.lines.insert(0, f"wrote {output} (ONNX int8, opset {opset})")
            return report
        export_onnx(model, output, opset=opset)
        runner = OnnxBackend(output, labels=model.labels)
    kind = f"ONNX float32, opset {opset}" if format == "onnx" else "TorchScript"
    report.lines.insert(0, f"wrote {output} ({kind})")
    if verify:
        _verify(report, model, runner, torch_logits, images, tolerance)
    return report


def _verify(
    report: ExportReport, model: DAN, runner, torch_logits, images: np.ndarray | None, tolerance: float
) -> None:
    diffs = [float(np.abs(runner(x) - torch_logits(x)).max()) for x in _random_inputs(model.preprocessing)]
    report.max_abs_diff_random = max(diffs)
    report.lines.append(f"verify: max |logit diff| vs PyTorch on random inputs (batch 1 and 3): {max(diffs):.3g}")
    worst = report.max_abs_diff_random
    if images is not None:
        a, b = _run_batched(runner, images), _run_batched(torch_logits, images)
        report.max_abs_diff_images = float(np.abs(a - b).max())
        worst = max(worst, report.max_abs_diff_images)
        report.lines.append(
            f"verify: max |logit diff| vs PyTorch on {len(images)} real images: {report.max_abs_diff_images:.3g}, "
            f"top-1 agreement {top1_agreement(a, b):.2%}"
        )
    else:
        report.lines.append("verify: no --calib folder given, so no real images were compared")
    if not worst <= tolerance:
        report.ok = False
        report.lines.append(f"FAILED: difference {worst:.3g} > tolerance {tolerance:g}")
    else:
        report.lines.append(f"verify: OK (tolerance {tolerance:g})")
