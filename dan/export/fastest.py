"""``--backend auto`` for long runs: the fastest runtime of a PyTorch checkpoint on this CPU that agrees with it.

Candidates (each checked against torch's outputs by :func:`dan.runtime.auto.race`):

- ``torch``: the re-parameterised model (BatchNorms folded, head branches merged), channels-last;
- ``onnx``: the same network exported once to ONNX (kept in the export cache ``$DAN_HOME/exports/``,
  named by the checkpoint's weights checksum and input size) and run by ONNX Runtime, when
  onnxruntime is installed;
- ``openvino``: that ONNX file run by OpenVINO in float32, when the optional openvino is installed;
- ``onnx-int8`` and ``openvino-int8``: an int8 export of the same checkpoint, when one is given or
  cached (``dan export --int8`` keeps a copy in the export cache: :func:`cache_int8`). int8 races only
  with probe faces to check its top-1 agreement on.

Making the ONNX files is this package's job; the timed race among the candidates is the runtime's
(:func:`dan.runtime.auto.race`), which gets them from here and never imports export.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from dan.errors import DanError
from dan.fileio import atomic_path
from dan.models.dan import DAN
from dan.models.metadata import tensor_checksum
from dan.paths import dan_home
from dan.runtime.auto import probe_key, race
from dan.runtime.backend import Backend
from dan.runtime.torch import TorchBackend

__all__ = ["PROBE_FACES", "PROBE_SEED", "cache_int8", "cached_export", "fastest_backend"]

PROBE_FACES = 128
"""Generated faces the command line gives the race to check int8 on (99 % top-1: at most one may differ)."""

PROBE_SEED = 1
"""Their seed: other faces than ``dan export --int8`` calibrates on (seed 0)."""


def cached_export(model: DAN, kind: str = "float32") -> Path:
    """Where the export cache keeps ``model``'s ONNX file of ``kind`` (``float32`` or ``int8``).

    The name is the model's weights checksum and input size, so a changed checkpoint gets new files, and
    its temperature (the export's metadata carries it): a calibrated model gets its own files.
    """
    checksum = tensor_checksum(model.state_dict()).removeprefix("sha256:")[:16]
    size = model.preprocessing.input_size
    t = model.temperature
    suffix = ("" if t is None else f"-t{t:.9g}") + ("" if kind == "float32" else f"-{kind}")
    return dan_home() / "exports" / f"{checksum}-{size}{suffix}.onnx"


def cache_int8(model: DAN, int8_file: str | os.PathLike) -> Path:
    """Keep a copy of ``model``'s int8 export in the export cache, where ``--backend auto`` races it.

    A hard link where the cache is on the same file system, else a copy; written atomically.

    Returns:
        The cached file.
    """
    target = cached_export(model, "int8")
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target, "cached int8 export") as tmp:
        tmp.unlink(missing_ok=True)
        try:
            os.link(int8_file, tmp)
        except OSError:  # another file system (or no hard links): a copy
            shutil.copyfile(int8_file, tmp)
    return target


def _weights_key(path: Path) -> str:
    """A short identity of an ONNX file's weights (its ``dan_weights`` checksum, else its size and time)."""
    try:
        import onnx

        for prop in onnx.load(str(path), load_external_data=False).metadata_props:
            if prop.key == "dan_weights":
                return prop.value.removeprefix("sha256:")[:16]
    except Exception:
        pass
    stat = path.stat()
    return f"{stat.st_size}-{stat.st_mtime_ns}"


def fastest_backend(
    torch_backend: TorchBackend,
    threads: int | None = None,
    *,
    int8: str | os.PathLike | None = None,
    faces: Callable[[], np.ndarray] | None = None,
) -> Backend:
    """Pick the fastest of ``torch_backend`` (re-parameterised PyTorch), ONNX Runtime and (when installed)
    OpenVINO on the same weights, float32 and int8, among those that agree with torch
    (:func:`dan.runtime.auto.race` says how).

    Args:
        torch_backend: A :class:`dan.runtime.torch.TorchBackend` (on the CPU; on a GPU it is kept).
        threads: Runtime threads (None: the runtimes' defaults).
        int8: An int8 ``.onnx`` export of the same checkpoint to race (default: the cached one, if any).
        faces: Returns probe faces (N, 3, S, S) prepared with the model's preprocessing, for the int8
            agreement check (called only when the probe runs); without it int8 does not race.

    Returns:
        The fastest agreeing backend; its ``auto_reason`` says what was picked and why.

    Raises:
        DanError: ``int8`` is given and is not a loadable ONNX file of this model's classes and input size.
    """
    if torch_backend.device.type != "cpu":
        torch_backend.auto_reason = f"torch on {torch_backend.device}"
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
    exported = cached_export(model)
    try:
        if not exported.is_file():
            exported.parent.mkdir(parents=True, exist_ok=True)
            export_onnx(model, exported)
        candidates: dict[str, Backend] = {"onnx": OnnxBackend(exported, labels=torch_backend.labels, threads=threads)}
    except (DanError, OSError) as err:
        torch_backend.auto_reason = f"torch, re-parameterised (no ONNX export: {err})"
        return torch_backend
    files = {"": exported}
    int8_path = Path(int8) if int8 is not None else cached_export(model, "int8")
    if int8 is not None or int8_path.is_file():
        try:
            runner = OnnxBackend(int8_path, labels=torch_backend.labels, threads=threads)
            if runner.preprocessing.input_size != model.preprocessing.input_size:
                raise DanError(f"{int8_path}: not an export of this model (another input size)")
            candidates["onnx-int8"] = runner
            files["-int8"] = int8_path
        except DanError:
            if int8 is not None:
                raise
            # an unreadable cached copy is not raced; one of other weights fails the top-1 check
    if openvino_available():
        for suffix, path in files.items():
            try:
                candidates[f"openvino{suffix}"] = OpenVinoBackend(path, labels=torch_backend.labels, threads=threads)
            except DanError:
                pass  # OpenVINO cannot run it here: the others still race
    model_key = exported.stem.rsplit("-", 1)[0] + (f"+int8:{_weights_key(files['-int8'])}" if "-int8" in files else "")
    key = probe_key(model_key, model.preprocessing.input_size, threads or torch.get_num_threads())
    return race(torch_backend, candidates, key, faces)
