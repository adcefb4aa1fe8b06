"""Export a DAN model to run without its training code: ONNX (float32 or int8) or ``torch.export`` (``.pt2``).

One job per module:

- :mod:`dan.inference.export.onnx`: the re-parameterised network as ONNX, settings in its metadata;
- :mod:`dan.inference.export.quantize`: int8 quantisation with onnxruntime;
- :mod:`dan.inference.export.verify`: the export next to PyTorch on random and real inputs;
- :mod:`dan.inference.export.report`: what an export did and measured;
- :func:`export_checkpoint` (here): what ``dan export`` runs, all of the above in order.

``torch.export`` programs (:mod:`dan.inference.pt2`) replace TorchScript, which current PyTorch
deprecates. Every file is written under a temporary name in its own folder and renamed into place.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from dan.common import DanError
from dan.fileio import atomic_path, check_writable
from dan.inference.export.onnx import DEFAULT_OPSET, export_metadata, export_onnx, prepare_for_export, sample_input
from dan.inference.export.quantize import quantize_onnx
from dan.inference.export.report import ExportReport
from dan.inference.export.verify import (
    load_images,
    random_inputs,
    run_batched,
    top1_agreement,
    verify_against_torch,
)
from dan.models.dan import DAN

__all__ = [
    "DEFAULT_OPSET",
    "FORMATS",
    "ExportReport",
    "export_checkpoint",
    "export_metadata",
    "export_onnx",
    "load_images",
    "quantize_onnx",
    "top1_agreement",
]

FORMATS = ("onnx", "pt2")


def _export_int8(
    model: DAN, output: Path, work: Path, opset: int, images: np.ndarray | None, calib_images: int, report: ExportReport
):
    """Float32 ONNX in the scratch folder ``work``, int8 at ``output``; returns the float32 backend (for verify)."""
    from dan.inference.onnx_backend import OnnxBackend

    float_path = export_onnx(model, work / "float32.onnx", opset=opset)
    calib_set = None
    if images is not None:
        idx = np.linspace(0, len(images) - 1, min(calib_images, len(images))).round().astype(int)
        calib_set = images[np.unique(idx)]
    quantize_onnx(float_path, output, calib_set)
    float_backend = OnnxBackend(float_path, labels=model.labels)
    check = images if images is not None else np.concatenate(random_inputs(model.preprocessing, 1))
    reference = run_batched(float_backend, check)
    report.int8 = "static" if calib_set is not None else "dynamic"
    report.int8_agreement = top1_agreement(reference, run_batched(OnnxBackend(output, labels=model.labels), check))
    what = f"{len(check)} real images" if images is not None else f"{len(check)} random inputs"
    report.lines.append(
        f"int8 ({report.int8} quantisation): top-1 agreement with float32 {report.int8_agreement:.2%} on {what}"
    )
    return float_backend


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
        model: The DAN (``labels`` and ``preprocessing`` set, e.g. from ``load_model``); not changed.
        output: Destination file.
        format: ``onnx`` or ``pt2``.
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
        DanError: Bad arguments, a missing/empty ``calib`` folder, an unreadable image, an unwritable output.
    """
    output = Path(output)
    if format not in FORMATS:
        raise DanError(f"unknown export format {format!r}: choose one of {', '.join(FORMATS)}")
    if int8 and format != "onnx":
        raise DanError("--int8 is for ONNX exports only (use --format onnx)")
    check_writable(output, "export")  # before any work
    model = model.eval()
    report = ExportReport(output=output, format=format)
    images = load_images(calib, model.preprocessing, max_images) if calib is not None else None
    report.num_images = 0 if images is None else len(images)
    runner: Callable[[np.ndarray], np.ndarray]  # the export's backend, for verify
    if format == "pt2":
        from dan.inference.pt2 import Pt2Backend, export_pt2

        with atomic_path(output, "pt2 file") as tmp:
            export_pt2(prepare_for_export(model), sample_input(model), tmp, export_metadata(model)["dan"])
        runner = Pt2Backend(output, labels=model.labels)
        report.lines.append(f"wrote {output} (torch.export program, dynamic batch)")
    elif int8:
        with tempfile.TemporaryDirectory(prefix="dan-export-") as work:
            float_backend = _export_int8(model, output, Path(work), opset, images, calib_images, report)
            report.lines.insert(0, f"wrote {output} (ONNX int8, opset {opset})")
            if verify:  # the float32 graph the int8 model came from, checked against PyTorch
                report.lines.append("verify: float32 ONNX graph before quantisation:")
                verify_against_torch(report, model, float_backend, images, tolerance)
                assert report.int8_agreement is not None  # measured by _export_int8
                if report.int8_agreement < min_agreement:
                    report.fail(f"int8 agreement {report.int8_agreement:.2%} < {min_agreement:.0%}")
        return report
    else:
        from dan.inference.onnx_backend import OnnxBackend

        export_onnx(model, output, opset=opset)
        runner = OnnxBackend(output, labels=model.labels)
        report.lines.append(f"wrote {output} (ONNX float32, opset {opset})")
    if verify:
        verify_against_torch(report, model, runner, images, tolerance)
    return report
