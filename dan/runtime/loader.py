"""Open a model file with the right runtime: :func:`load_backend`.

The file's suffix decides (``.onnx``: ONNX Runtime or OpenVINO; ``.pt2``: its exported program; every
checkpoint: PyTorch), and a runtime name may say which of them runs it. Released model names, https://
URLs and ``hf://`` paths are fetched once into the cache (:func:`dan.hub.resolve_checkpoint`) first.
The device is resolved here, once (:func:`dan.system.pick_device`), and handed to the backend.
``--backend auto`` (the fastest runtime that agrees with PyTorch) needs an ONNX export of a
checkpoint, so it lives above this, in :func:`dan.auto.open_backend`, which calls this.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from dan.errors import DanError
from dan.hub import RELEASED, is_remote, released_model, resolve_checkpoint
from dan.runtime.backend import Backend
from dan.runtime.download_check import download_check
from dan.system import pick_device
from dan.vocab import BACKENDS

__all__ = ["RUNTIMES", "load_backend"]

RUNTIMES = tuple(name for name in BACKENDS if name != "auto")
"""The runtimes :func:`load_backend` opens a file with by name (``auto``, the race, is :mod:`dan.auto`'s)."""


def load_backend(
    path: str | os.PathLike,
    backend: str | None = None,
    labels: str | Sequence[str] | None = None,
    threads: int | None = None,
    device: object = "cpu",
) -> Backend:
    """Open a model file with the right runner.

    Args:
        path: A checkpoint (``.pt``, ``.ckpt``, ``.pth``, ``.safetensors``), an export (``.onnx``,
            ``.pt2``), or a released model name, https:// URL or ``hf://`` path (fetched once into the
            cache, see :func:`dan.hub.resolve_checkpoint`).
        backend: None (the file's own runtime: ONNX Runtime for a ``.onnx`` path, the exported program
            for ``.pt2``, else PyTorch), ``"torch"`` (a ``.pt2`` file runs as its exported program),
            ``"onnx"`` or ``"openvino"`` (an ``.onnx`` file run by OpenVINO, an optional package). For
            ``auto``, the race, see :func:`dan.auto.open_backend`.
        labels: Label set name or class names, overriding what the file stores.
        threads: CPU threads for the runtime (None: its default).
        device: Where the model runs: ``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (a CUDA GPU when PyTorch
            sees one, :func:`dan.system.pick_device`). PyTorch checkpoints and ``.pt2`` programs move
            there; ONNX files run on ONNX Runtime's CUDA provider when ``onnxruntime-gpu`` is installed
            (else on the CPU); OpenVINO runs on the CPU. Resolved here once and handed to the backend,
            whose ``device_reason`` says where it runs and why, in one line.

    Returns:
        A backend (see :mod:`dan.runtime.backend`).

    Raises:
        DanError: Unknown backend or device, missing file, the ONNX runtime module is unavailable, or a
            GPU asked for where there is none (checked before the file is read or fetched).
    """
    if backend is not None and backend not in RUNTIMES:
        names = ", ".join(RUNTIMES)
        raise DanError(f"unknown runtime {backend!r}: choose one of {names} (auto: dan.auto.open_backend)")
    choice = pick_device(device)  # once, before the file is read or fetched
    spec, released = path, released_model(path)
    if released is not None and labels is None:
        labels = released.labels
    if is_remote(path):
        path = resolve_checkpoint(path, verify=download_check(path))
    path = Path(path)
    if not path.is_file():
        names = ", ".join(RELEASED)
        raise DanError(
            f"{path}: checkpoint not found: no such file, and not a released model name ({names}), "
            "https:// URL or hf:// path"
        )
    suffix = path.suffix.lower()
    if suffix in (".ts", ".torchscript", ".jit"):
        raise DanError(
            f"{path}: TorchScript files are no longer read (TorchScript is deprecated in PyTorch); "
            "re-export with 'dan export --format pt2' (torch.export) or '--format onnx'"
        )
    if backend is None:
        backend = "onnx" if suffix == ".onnx" else "torch"
    if backend == "torch":
        if suffix == ".onnx":
            raise DanError(f"{path}: an ONNX file runs with --backend onnx, openvino or auto, not torch")
        if suffix == ".pt2":
            from dan.runtime.pt2 import Pt2Backend

            return Pt2Backend(path, labels=labels, threads=threads, device=choice)
        from dan.runtime.torch import TorchBackend

        # a released model by its name: load_model gives it the catalogue's preprocessing (from the cache)
        return TorchBackend(spec if released else path, labels=labels, threads=threads, device=choice)
    if suffix != ".onnx":
        raise DanError(f"{path}: --backend {backend} runs .onnx files; export this one with 'dan export' first")
    try:
        from dan.runtime.onnx import OnnxBackend
    except ImportError as err:
        raise DanError(
            f"the onnx backend is not available ({err}); install the export extra (pip install 'dan-fer[export]') "
            "or use --backend torch with a PyTorch checkpoint"
        ) from None
    if backend == "openvino":
        from dan.runtime.openvino import OpenVinoBackend

        return OpenVinoBackend(path, labels=labels, threads=threads, device=choice)
    return OnnxBackend(path, labels=labels, threads=threads, device=choice)
