"""Open a model file with the runtime ``--backend`` names; ``auto``: the fastest here that agrees with PyTorch.

:func:`open_backend` is what ``dan predict``, ``dan demo``, ``dan serve``, ``dan evaluate``, ``dan calibrate``
and the Python :class:`dan.inference.Predictor` call. A runtime by name (``torch``, ``onnx``, ``openvino``)
is :func:`dan.runtime.loader.load_backend`'s. ``auto`` on a PyTorch checkpoint on the CPU races
(:func:`fastest_backend`):

- ``torch``: the re-parameterised model (BatchNorms folded, head branches merged), channels-last;
- ``onnx``: the same network exported once to ONNX (kept in the export cache, :mod:`dan.export.export_cache`)
  and run by ONNX Runtime, when onnxruntime is installed;
- ``openvino``: that ONNX file run by OpenVINO in float32, when the optional openvino is installed;
- ``onnx-int8`` and ``openvino-int8``: an int8 export of the same checkpoint, when one is given or cached
  (``dan export --int8`` keeps a copy), checked on the probe faces (:func:`dan.export.faces.probe_faces`).

Each candidate is checked against torch by :func:`dan.auto.race.race`, which times them once per machine
and model (cached). On a GPU, ``auto`` runs PyTorch there; an export file (``.onnx``, ``.pt2``) runs with
its own runtime (there is no PyTorch model to check another one against).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from dan.auto.race import probe_key, race
from dan.errors import DanError
from dan.export.export_cache import cached_export, onnx_weights_key
from dan.export.faces import probe_faces
from dan.runtime.backend import Backend
from dan.runtime.loader import load_backend
from dan.runtime.torch import TorchBackend
from dan.vocab import BACKENDS

if TYPE_CHECKING:
    from dan.runtime.onnx import OnnxBackend

__all__ = ["fastest_backend", "open_backend"]

Int8 = str | os.PathLike | bool | None
"""``int8=`` of :func:`open_backend`: None (the cached int8 copy, if any), a file, or False (no int8)."""


def open_backend(
    path: str | os.PathLike,
    backend: str = "auto",
    labels: str | Sequence[str] | None = None,
    threads: int | None = None,
    device: object = "auto",
    int8: Int8 = None,
) -> Backend:
    """Open a model file with the runtime ``backend`` names; ``auto`` picks the fastest that agrees with torch.

    Args:
        path: A checkpoint, an export (``.onnx``, ``.pt2``), or a released model name, https:// URL or
            ``hf://`` path (:func:`dan.runtime.loader.load_backend`).
        backend: ``auto`` (the race, see the module docstring), ``torch``, ``onnx`` or ``openvino``.
        labels: Label set name or class names, overriding what the file stores.
        threads: CPU threads for the runtime (None: its default).
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``: resolved once, by the loader.
        int8: With ``auto`` and a checkpoint: an int8 ``.onnx`` export of it to race too; None: the
            copy ``dan export --int8`` keeps, if any; False: no int8 (scores and calibration that must
            be the float model's).

    Returns:
        The backend; under ``auto`` its ``auto_reason`` says what was picked and why.

    Raises:
        DanError: As :func:`load_backend`; or ``int8`` given without ``auto`` and a PyTorch checkpoint,
            or not a loadable ONNX file of this model's input size.
    """
    if backend not in BACKENDS:
        raise DanError(f"unknown backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    given_int8 = int8 is not None and int8 is not False
    if backend != "auto":
        if given_int8:
            raise DanError(f"--int8 {int8}: an int8 export races only under --backend auto; to run it alone "
                           "pass it as --checkpoint")  # fmt: skip
        return load_backend(path, backend, labels=labels, threads=threads, device=device)
    opened = load_backend(path, None, labels=labels, threads=threads, device=device)
    if not isinstance(opened, TorchBackend):
        if given_int8:
            raise DanError(f"--int8 {int8}: an int8 export races only with a PyTorch checkpoint, not {path}")
        opened.auto_reason = f"{opened.name} (an export runs with its own runtime)"
        return opened
    pre = opened.preprocessing
    return fastest_backend(opened, threads, int8=int8, faces=lambda: probe_faces(pre))


def _opener(kind: type[OnnxBackend], path: Path, **options: Any) -> Callable[[], Backend | None]:
    """A function that opens ``path`` with the ONNX runtime ``kind``, or gives None when it cannot run here."""

    def open_it() -> Backend | None:
        try:
            return kind(path, **options)
        except DanError:
            return None  # OpenVINO cannot run it here, or an unreadable cached copy: the others still race

    return open_it


def fastest_backend(
    torch_backend: TorchBackend,
    threads: int | None = None,
    *,
    int8: Int8 = None,
    faces: Callable[[], np.ndarray] | None = None,
) -> Backend:
    """The fastest of ``torch_backend`` (re-parameterised PyTorch), ONNX Runtime and (when installed) OpenVINO
    on the same weights, float32 and int8, among those that agree with torch (:func:`dan.auto.race.race`).

    Args:
        torch_backend: A :class:`dan.runtime.torch.TorchBackend` (on the CPU; on a GPU it is kept).
        threads: Runtime threads (None: the runtimes' defaults).
        int8: An int8 ``.onnx`` export of the same checkpoint to race; None: the cached one, if any; False: none.
        faces: Returns probe faces (N, 3, S, S) prepared with the model's preprocessing, for the int8
            agreement check (called only when the probe runs); without it int8 does not race.

    Returns:
        The fastest agreeing backend; its ``auto_reason`` says what was picked and why.

    Raises:
        DanError: ``int8`` is a file that is not a loadable ONNX file of this model's input size.
    """
    if torch_backend.device.is_cuda:
        torch_backend.auto_reason = f"torch on {torch_backend.device.device}"
        return torch_backend
    try:
        import onnxruntime  # noqa: F401

        from dan.export.onnx import export_onnx
        from dan.runtime.onnx import OnnxBackend
    except ImportError:
        torch_backend.auto_reason = "torch, re-parameterised (onnxruntime is not installed)"
        return torch_backend
    from dan.runtime.openvino import OpenVinoBackend, openvino_available

    model = torch_backend.source
    # where torch runs (the CPU, and why); ONNX Runtime's threads wait without spinning, as the cores are
    # shared with the threads that read and detect (folders, video)
    options: dict[str, Any] = {"labels": torch_backend.labels, "threads": threads, "device": torch_backend.device}
    exported = cached_export(model)
    try:
        if not exported.is_file():
            exported.parent.mkdir(parents=True, exist_ok=True)
            export_onnx(model, exported)
    except (DanError, OSError) as err:
        torch_backend.auto_reason = f"torch, re-parameterised (no ONNX export: {err})"
        return torch_backend
    files = {"": exported}
    if int8 is not False:
        int8_path = Path(int8) if isinstance(int8, (str, os.PathLike)) else cached_export(model, "int8")
        if int8 is not None:  # given: checked now, one line when it is not an export of this model
            given = OnnxBackend(int8_path, spinning=False, **options)
            if given.preprocessing.input_size != model.preprocessing.input_size:
                raise DanError(f"{int8_path}: not an export of this model (another input size)")
        if int8_path.is_file():
            files["-int8"] = int8_path
    candidates: dict[str, Callable[[], Backend | None]] = {}
    for suffix, path in files.items():
        candidates[f"onnx{suffix}"] = _opener(OnnxBackend, path, spinning=False, **options)
    if openvino_available():
        for suffix, path in files.items():
            candidates[f"openvino{suffix}"] = _opener(OpenVinoBackend, path, **options)
    model_key = exported.stem.rsplit("-", 1)[0]
    if "-int8" in files:
        model_key += f"+int8:{onnx_weights_key(files['-int8'])}"
    key = probe_key(model_key, model.preprocessing.input_size, threads or torch.get_num_threads())
    picked = race(torch_backend, candidates, key, faces)
    if picked is not torch_backend:  # the checkpoint's own record (trained_on, started_from) over the export's
        picked.metadata = torch_backend.metadata
        picked.trained_on = torch_backend.trained_on
    return picked
