"""Checking an export against PyTorch: random inputs, real face images, int8 agreement.

Real images are read from a folder and prepared with :func:`dan.preprocess.prepare_face`, the one
preprocessing contract, so the export is checked on exactly the inputs it will see. A model with the
valence/arousal output has that output compared too, with the same tolerance.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from dan.errors import DanError
from dan.export.result import ExportReport
from dan.imaging import list_images, read_image
from dan.models.dan import DAN
from dan.preprocess import Preprocessing, prepare_face
from dan.runtime.backend import Backend

__all__ = [
    "load_images",
    "random_inputs",
    "run_batched",
    "top1_agreement",
    "torch_logits",
    "torch_va",
    "verify_against_torch",
]


def load_images(root: str | os.PathLike, preprocessing: Preprocessing, limit: int | None = None) -> np.ndarray:
    """Read and prepare up to ``limit`` face images of ``root`` (recursively), evenly spread over the sorted list.

    Returns:
        Float32 array (N, 3, S, S).

    Raises:
        DanError: ``root`` is not a folder or holds no image.
    """
    root = Path(root)
    if not root.is_dir():
        raise DanError(f"{root}: no such folder (--calib takes a folder of face images)")
    files = list_images(root, recursive=True)
    if not files:
        raise DanError(f"{root}: no images found")
    if limit is not None and len(files) > limit:
        files = [files[i] for i in np.linspace(0, len(files) - 1, limit).round().astype(int)]
    return np.stack([prepare_face(read_image(f), preprocessing) for f in files])


def top1_agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of rows whose arg-max is the same in the two logit arrays (N, C)."""
    a, b = np.asarray(a), np.asarray(b)
    return float((a.argmax(1) == b.argmax(1)).mean()) if len(a) else 1.0


def run_batched(fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray, batch: int = 16) -> np.ndarray:
    """``fn`` over ``x`` in batches, results concatenated."""
    return np.concatenate([fn(x[i : i + batch]) for i in range(0, len(x), batch)])


def torch_logits(model: DAN) -> Callable[[np.ndarray], np.ndarray]:
    """A numpy-in, numpy-out logits function of the (unexported) PyTorch model."""

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(np.ascontiguousarray(x))).logits.float().numpy()

    return run


def torch_va(model: DAN) -> Callable[[np.ndarray], np.ndarray]:
    """A numpy-in, numpy-out valence/arousal function (N, 2) of the (unexported) PyTorch model with the output."""

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            va = model(torch.from_numpy(np.ascontiguousarray(x))).va
        assert va is not None  # a model with the valence/arousal output
        return va.float().numpy()

    return run


def _verify_va(report: ExportReport, model: DAN, runner: Backend, inputs: list[np.ndarray]) -> float:
    """The largest |export - PyTorch| valence/arousal difference on ``inputs`` (recorded in ``report``); 0 when
    the model has no such output. An export that lost it fails."""
    if not model.has_va:
        return 0.0
    if not runner.has_va:
        report.fail("the model has the valence/arousal output, the export does not")
        return 0.0

    def va(x: np.ndarray) -> np.ndarray:
        out = runner.outputs(x).va
        assert out is not None  # has_va
        return out

    reference = torch_va(model)
    diff = max(float(np.abs(run_batched(va, x) - run_batched(reference, x)).max()) for x in inputs)
    report.max_abs_diff_va = diff
    report.lines.append(f"verify: max |valence/arousal diff| vs PyTorch: {diff:.3g}")
    return diff


def random_inputs(preprocessing: Preprocessing, seed: int = 0) -> list[np.ndarray]:
    """Two random normalised batches (1 and 3 images) at the model's input size."""
    rng = np.random.default_rng(seed)
    s = preprocessing.input_size
    return [rng.standard_normal((n, 3, s, s)).astype(np.float32) for n in (1, 3)]


def verify_against_torch(
    report: ExportReport,
    model: DAN,
    runner: Backend,
    images: np.ndarray | None,
    tolerance: float,
    source: str = "real images",
) -> None:
    """Compare an export's logits with the PyTorch model's on random inputs and ``images``; record in ``report``.

    Args:
        report: Where the lines and figures go.
        model: The PyTorch model the export was made from.
        runner: The export's backend (for a model with the valence/arousal output, that output is compared too).
        images: Prepared faces (N, 3, S, S), or None.
        tolerance: Largest logit difference accepted.
        source: What ``images`` are, for the report.
    """
    reference = torch_logits(model)
    diffs = [float(np.abs(runner(x) - reference(x)).max()) for x in random_inputs(model.preprocessing)]
    report.max_abs_diff_random = max(diffs)
    report.lines.append(f"verify: max |logit diff| vs PyTorch on random inputs (batch 1 and 3): {max(diffs):.3g}")
    worst = report.max_abs_diff_random
    if images is not None:
        a, b = run_batched(runner, images), run_batched(reference, images)
        report.max_abs_diff_images = float(np.abs(a - b).max())
        worst = max(worst, report.max_abs_diff_images)
        report.lines.append(
            f"verify: max |logit diff| vs PyTorch on {len(images)} {source}: {report.max_abs_diff_images:.3g}, "
            f"top-1 agreement {top1_agreement(a, b):.2%}"
        )
    else:
        report.lines.append("verify: no --calib folder given, so no face images were compared")
    inputs = random_inputs(model.preprocessing) + ([images] if images is not None else [])
    worst = max(worst, _verify_va(report, model, runner, inputs))
    if not worst <= tolerance:
        report.fail(f"difference {worst:.3g} > tolerance {tolerance:g}")
    else:
        report.lines.append(f"verify: OK (tolerance {tolerance:g})")
