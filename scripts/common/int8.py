"""The ONNX files the speed benchmark times, made as a user makes them, and their int8 top-1 agreement on faces.

- ``float32``: :func:`dan.export.export_onnx` (what ``dan export`` writes);
- ``static``: ``dan export --int8 --calib DIR``: static QDQ int8 calibrated on half of the real photo
  faces (:func:`scripts.common.faces.real_faces`, the even ones; the odd ones are held out);
- ``default``: ``dan export --int8`` without ``--calib``: :func:`dan.export.export_checkpoint` with the
  generated faces the command draws itself (:data:`dan.export.faces.CALIBRATION_FACES`, seed
  :data:`dan.export.faces.CALIBRATION_SEED`), exactly as the command calls it;
- ``dynamic``: ``dan export --int8-mode dynamic``: no calibration, activations quantised at run time.

Agreement is measured on faces none of them was calibrated on: the held-out photo faces, scikit-image's
LFW faces and 128 generated faces of another seed, each int8 model against the float32 file run by the
same runtime.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from dan.export import export_checkpoint, export_onnx, quantize_onnx, top1_agreement
from dan.export.faces import CALIBRATION_FACES, CALIBRATION_SEED
from dan.export.verify import run_batched
from dan.models.dan import DAN
from dan.synthface import prepared_faces
from scripts.common.faces import generated_faces, real_faces

__all__ = ["INT8_NAMES", "agreement_rows", "face_sets", "make_onnx_files"]

INT8_NAMES = {
    "static": "int8 static (dan export --int8 --calib DIR)",
    "default": "int8 (dan export --int8, no --calib)",
    "dynamic": "int8 dynamic (dan export --int8-mode dynamic)",
}
"""How the tables name each int8 file."""


def face_sets(model: DAN, generated: int = 128) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The ``--calib`` faces (even photo faces) and the evaluation sets (none of them calibrated on), prepared."""
    real = real_faces(model.preprocessing)
    photos = real["photos"]
    sets = {
        f"{len(photos[1::2])} held-out photo faces": photos[1::2],
        f"{len(real['lfw'])} LFW faces": real["lfw"],
        f"{generated} generated faces (seed 1)": generated_faces(generated, model.preprocessing, seed=1),
    }
    return photos[::2], sets


def make_onnx_files(model: DAN, work: Path, calib: np.ndarray) -> tuple[dict[str, Path], list[str]]:
    """The float32 file and the three int8 files (see the module docstring) under ``work``, and notes on them."""
    files = {"float32": export_onnx(model, work / "float32.onnx")}
    files["static"] = quantize_onnx(files["float32"], work / "static.onnx", calib, source="real photo faces")
    drawn = prepared_faces(CALIBRATION_FACES, model.preprocessing, CALIBRATION_SEED)
    report = export_checkpoint(
        model,
        work / "default.onnx",
        int8=True,
        calib=drawn,
        calib_source=f"generated faces (dan synth, seed {CALIBRATION_SEED})",
        calib_images=CALIBRATION_FACES // 2,
    )
    files["default"] = report.output
    files["dynamic"] = quantize_onnx(files["float32"], work / "dynamic.onnx", mode="dynamic")
    notes = [f"{INT8_NAMES['static']}: calibrated on {len(calib)} real photo faces (the even ones)"]
    notes += [f"{INT8_NAMES['default']}: {line}" for line in report.lines[1:]]
    return files, notes


def agreement_rows(
    float32: Mapping[str, Callable[[np.ndarray], np.ndarray]],
    int8: Mapping[str, tuple[str, Callable[[np.ndarray], np.ndarray]]],
    sets: Mapping[str, np.ndarray],
) -> tuple[list[list[str]], int]:
    """One table row per int8 model: its top-1 agreement with its runtime's float32 model on each face set.

    Returns:
        The rows, and how many different classes the first float32 model predicts on the faces (an
        agreement where it predicts one class for every face says little).

    Args:
        float32: The float32 model of each runtime, by runtime name (``onnx``, ``openvino``).
        int8: ``name -> (runtime name, int8 model)``.
        sets: The evaluation faces, by description.
    """
    want = {(rt, label): run_batched(run, faces) for rt, run in float32.items() for label, faces in sets.items()}
    rows = []
    for name, (runtime, run) in int8.items():
        agree = [top1_agreement(want[runtime, label], run_batched(run, faces)) for label, faces in sets.items()]
        total = sum(a * len(f) for a, f in zip(agree, sets.values())) / sum(len(f) for f in sets.values())
        rows.append([name, *(f"{a:.1%}" for a in agree), f"{total:.1%}"])
    first = next(iter(float32))
    classes = len(np.unique(np.concatenate([want[first, label].argmax(1) for label in sets])))
    return rows, classes
