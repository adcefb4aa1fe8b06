"""Export a DAN model to run without its training code: ONNX (float32 or int8) or ``torch.export`` (``.pt2``).

One job per module:

- :mod:`dan.export.onnx`: the re-parameterised network as ONNX, settings in its metadata;
- :mod:`dan.export.pt2`: the same network as a ``torch.export`` program (the ``.pt2`` writer);
- :mod:`dan.export.quantize`: int8 quantisation with onnxruntime;
- :mod:`dan.export.verify`: the export next to PyTorch on random and real inputs;
- :mod:`dan.export.result`: what an export did and measured;
- :mod:`dan.export.scratch`: a folder for intermediate files that a killed export leaves to the next;
- :mod:`dan.export.export_cache`: the export cache (``$DAN_HOME/exports/``) the ``--backend auto`` race reads;
- :mod:`dan.export.faces`: the generated int8 calibration and ``--backend auto`` probe faces;
- :func:`export_checkpoint` (here): what ``dan export`` runs, all of the above in order.

Export may use :mod:`dan.runtime` (to run and check what it wrote); the runtime never imports export.
``torch.export`` programs replace TorchScript, which current PyTorch deprecates. Every file is written
under a temporary name in its own folder and renamed into place.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from dan.errors import DanError
from dan.export.onnx import DEFAULT_OPSET, export_metadata, export_onnx, prepare_for_export, sample_input
from dan.export.quantize import INT8_MODES, quantize_onnx
from dan.export.result import ExportReport
from dan.export.scratch import scratch_folder
from dan.export.verify import (
    load_images,
    random_inputs,
    run_batched,
    top1_agreement,
    verify_against_torch,
)
from dan.fileio import atomic_path, check_writable
from dan.models.dan import DAN
from dan.runtime.backend import Backend
from dan.system import pick_device
from dan.vocab import EXPORT_FORMATS

__all__ = [
    "DEFAULT_OPSET",
    "INT8_MODES",
    "ExportReport",
    "export_checkpoint",
    "export_metadata",
    "export_onnx",
    "load_images",
    "quantize_onnx",
    "top1_agreement",
]


def _export_int8(
    model: DAN,
    output: Path,
    work: Path,
    opset: int,
    mode: str,
    images: np.ndarray | None,
    source: str,
    calib_images: int,
    report: ExportReport,
):
    """Float32 ONNX in the scratch folder ``work``, int8 at ``output``; returns the float32 backend (for verify).

    Static int8 is calibrated on up to ``calib_images`` of ``images`` (spread over them) and its top-1
    agreement with float32 measured on the others (all of them when none is left over).
    """
    from dan.runtime.onnx import OnnxBackend

    float_path = export_onnx(model, work / "float32.onnx", opset=opset)
    calib_set, check, what = None, images, f"{0 if images is None else len(images)} {source}"
    if mode == "static" and images is not None:
        idx = np.unique(np.linspace(0, len(images) - 1, min(calib_images, len(images))).round().astype(int))
        calib_set = images[idx]
        rest = np.setdiff1d(np.arange(len(images)), idx)
        if len(rest):
            check, what = images[rest], f"{len(rest)} held-out {source}"
    quantize_onnx(float_path, output, calib_set, mode=mode, source=source)
    float_backend = OnnxBackend(float_path, labels=model.labels)
    if check is None:
        check = np.concatenate(random_inputs(model.preprocessing, 1))
        what = f"{len(check)} random inputs"
    reference = run_batched(float_backend, check)
    report.int8 = mode
    report.int8_agreement = top1_agreement(reference, run_batched(OnnxBackend(output, labels=model.labels), check))
    if calib_set is not None:
        report.lines.append(f"int8: calibrated on {len(calib_set)} {source}")
    report.lines.append(
        f"int8 ({mode} quantisation): top-1 agreement with float32 {report.int8_agreement:.2%} on {what}"
    )
    return float_backend


def export_checkpoint(
    model: DAN,
    output: str | os.PathLike,
    format: str = "onnx",
    *,
    opset: int = DEFAULT_OPSET,
    int8: bool = False,
    int8_mode: str = "static",
    calib: str | os.PathLike | np.ndarray | None = None,
    calib_source: str = "calibration faces",
    verify: bool = False,
    tolerance: float = 1e-3,
    min_agreement: float = 0.99,
    max_images: int = 256,
    calib_images: int = 128,
    device: str = "cpu",
) -> ExportReport:
    """Export ``model`` and optionally quantise and verify it (what ``dan export`` runs).

    Args:
        model: The DAN (``labels`` and ``preprocessing`` set, e.g. from ``load_model``); not changed.
        output: Destination file.
        format: ``onnx`` or ``pt2``.
        opset: ONNX opset.
        int8: Write an int8 ONNX model (see ``int8_mode``).
        int8_mode: ``static`` (QDQ, calibrated on ``calib``, which it needs) or ``dynamic`` (no
            calibration; slow on CPUs without VNNI): :data:`dan.export.quantize.INT8_MODES`.
        calib: Faces for the int8 calibration and for ``verify``: a folder of face images, or faces
            already prepared with the model's preprocessing (N, 3, S, S), float32.
        calib_source: What an array ``calib`` holds, for the report and the int8 file's record.
        verify: Run the export next to PyTorch (the unfolded model) on random and real inputs.
        tolerance: Largest logit difference ``verify`` accepts for a float32 export.
        min_agreement: Smallest int8-vs-float32 top-1 agreement ``verify`` accepts.
        max_images: At most this many images of ``calib`` are read (spread over the folder).
        calib_images: At most this many of them calibrate the int8 model.
        device: Where ``verify`` runs a float32 export (``cpu``, ``cuda``, ``cuda:N``, ``auto``), in full
            float32 (TF32 off on a GPU); the PyTorch reference runs on the CPU. int8 is checked on the CPU.

    Returns:
        An :class:`ExportReport`; ``ok`` is False when verification failed.

    Raises:
        DanError: Bad arguments, static int8 without ``calib``, a missing/empty ``calib`` folder, an
            unreadable image, an unwritable output.
    """
    output = Path(output)
    if format not in EXPORT_FORMATS:
        raise DanError(f"unknown export format {format!r}: choose one of {', '.join(EXPORT_FORMATS)}")
    if int8 and format != "onnx":
        raise DanError("--int8 is for ONNX exports only (use --format onnx)")
    if int8 and int8_mode not in INT8_MODES:
        raise DanError(f"unknown int8 mode {int8_mode!r}: choose one of {', '.join(INT8_MODES)}")
    if int8 and int8_mode == "static" and calib is None:
        raise DanError(
            "static int8 needs calibration faces: a folder of face images (dan export --int8 draws generated ones)"
        )
    check_writable(output, "export")  # before any work
    model = model.eval()
    report = ExportReport(output=output, format=format)
    images, source = None, ""  # the faces, and what they are
    if isinstance(calib, np.ndarray):
        size = model.preprocessing.input_size
        if calib.ndim != 4 or calib.shape[1:] != (3, size, size) or not len(calib):
            raise DanError(f"calibration faces: expected an array (N, 3, {size}, {size}), got {calib.shape}")
        images, source = np.ascontiguousarray(calib, dtype=np.float32), calib_source
    elif calib is not None:
        images = load_images(calib, model.preprocessing, max_images)
        source = f"images of {calib}"
    report.num_images = 0 if images is None else len(images)
    runner: Backend  # the export's backend, for verify
    where = pick_device(device if verify else "cpu")  # resolved once, for the backend that runs the export
    if format == "pt2":
        from dan.export.pt2 import export_pt2
        from dan.runtime.pt2 import Pt2Backend

        with atomic_path(output, "pt2 file") as tmp:
            export_pt2(prepare_for_export(model), sample_input(model), tmp, export_metadata(model)["dan"])
        runner = Pt2Backend(output, labels=model.labels, device=where, tf32=False)
        report.lines.append(f"wrote {output} (torch.export program, dynamic batch)")
    elif int8:
        with scratch_folder() as work:  # removed by the next export if this one is killed
            float_backend = _export_int8(model, output, work, opset, int8_mode, images, source, calib_images, report)
            report.lines.insert(0, f"wrote {output} (ONNX int8, opset {opset})")
            if verify:  # the float32 graph the int8 model came from, checked against PyTorch
                report.lines.append("verify: float32 ONNX graph before quantisation:")
                verify_against_torch(report, model, float_backend, images, tolerance, source)
                assert report.int8_agreement is not None  # measured by _export_int8
                if report.int8_agreement < min_agreement:
                    report.fail(f"int8 agreement {report.int8_agreement:.2%} < {min_agreement:.0%}")
        return report
    else:
        from dan.runtime.onnx import OnnxBackend

        export_onnx(model, output, opset=opset)
        runner = OnnxBackend(output, labels=model.labels, device=where, tf32=False)
        report.lines.append(f"wrote {output} (ONNX float32, opset {opset})")
    if verify:
        report.lines.append(f"verify: the export runs on {runner.device_reason}")
        verify_against_torch(report, model, runner, images, tolerance, source)
    return report
