"""Training checkpoints written atomically with a checksum of everything in them, and read weights-only.

Writing: Lightning's own writer goes through a temporary file of fsspec's choosing and a move, which
becomes a copy when ``TMPDIR`` is on another filesystem: a kill during the copy leaves a ``last.ckpt``
that fails to load, and the temporary file behind. Here the checkpoint is written by
:func:`dan.fileio.atomic_path`: a temporary file in the checkpoint's own folder, fsynced, then
renamed over the old one. A kill at any moment leaves the previous checkpoint whole, and a temporary
file from a killed process is removed by the next save. A full disk is one line.

Every checkpoint gets ``dan_checksum``: :func:`checkpoint_checksum` over the whole dict Lightning
writes (network, optimiser and scheduler states, loop progress, callbacks' states, the ``dan`` and
``dan_resume`` entries), not only over the weights as :class:`dan.models.metadata.ModelMetadata` does;
a resume refuses a file whose contents do not match it. Files without one (older ones) load as before.

Reading: always with the weights-only unpickler (:func:`dan.models.backbone.read_state_dict`) and
from local files only, whatever Lightning asks: a checkpoint can hold tensors and plain values, never
code. Remote ``--ckpt_path`` values are downloaded by :mod:`dan.training.ckpt_path` first.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from dan.errors import DanError
from dan.fileio import atomic_path
from dan.models.backbone import read_state_dict

__all__ = ["CHECKSUM_KEY", "AtomicCheckpointIO", "checkpoint_checksum", "read_training_checkpoint"]

CHECKSUM_KEY = "dan_checksum"


def _feed(h: Any, value: object) -> None:
    """Add ``value`` to the hash ``h``: its type, its size and its contents, recursively."""
    if isinstance(value, torch.Tensor):
        t = value.detach()
        t = (t.cpu() if t.device.type != "cpu" else t).contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")  # (N,) raw bytes
    elif isinstance(value, Mapping):
        h.update(f"M{len(value)}|".encode())
        for key in sorted(value, key=lambda k: (type(k).__name__, str(k))):
            _feed(h, key)
            _feed(h, value[key])
    elif isinstance(value, (list, tuple)):  # a round trip may turn one into the other
        h.update(f"L{len(value)}|".encode())
        for item in value:
            _feed(h, item)
    elif isinstance(value, (str, bytes)):
        data = value.encode("utf-8", "surrogatepass") if isinstance(value, str) else value
        h.update(f"{type(value).__name__}{len(data)}|".encode())
        h.update(data)
    elif isinstance(value, np.ndarray):
        h.update(f"A{value.dtype.str}{value.shape}|".encode())
        h.update(np.ascontiguousarray(value).tobytes())
    else:  # None, bool, int, float, torch.dtype, torch.device, ...
        h.update(f"{type(value).__module__}.{type(value).__qualname__}:{value!r}|".encode())


def checkpoint_checksum(checkpoint: Mapping[str, Any]) -> str:
    """SHA-256 over every entry of a checkpoint except :data:`CHECKSUM_KEY` (keys sorted, tensors by their bytes)."""
    h = hashlib.sha256()
    _feed(h, {k: v for k, v in checkpoint.items() if k != CHECKSUM_KEY})
    return "sha256:" + h.hexdigest()


def read_training_checkpoint(path: str | os.PathLike, require_trainer_state: bool = True) -> dict[str, Any]:
    """Read a Lightning checkpoint weights-only and check it against its checksum.

    Args:
        path: A local ``.ckpt`` file.
        require_trainer_state: Refuse a file without the trainer's state (``state_dict`` and ``loops``).

    Returns:
        The checkpoint, its tensors on the CPU.

    Raises:
        DanError: Missing or unreadable file, Python objects in it, no trainer state, or contents that
            do not match the checksum written with them (one line naming the file).
    """
    state = read_state_dict(path)
    if not isinstance(state, dict) or (require_trainer_state and ("state_dict" not in state or "loops" not in state)):
        raise DanError(f"{path}: not a Lightning training checkpoint (no trainer state to resume from)")
    stored = state.get(CHECKSUM_KEY)
    if stored is not None and stored != checkpoint_checksum(state):
        raise DanError(
            f"{path}: damaged checkpoint: its contents (weights, optimiser or trainer state) do not match the "
            "checksum written with them (changed or corrupted after it was saved)"
        )
    return state


class AtomicCheckpointIO(TorchCheckpointIO):
    """:class:`TorchCheckpointIO` that writes atomically with a whole-file checksum and reads weights-only."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None) -> None:
        """Write ``checkpoint`` and its checksum to ``path`` atomically (remote URLs go through Lightning's writer)."""
        checkpoint = {**checkpoint, CHECKSUM_KEY: checkpoint_checksum(checkpoint)}  # the caller's dict untouched
        if "://" in str(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with atomic_path(path, "checkpoint") as tmp:
            torch.save(checkpoint, tmp)

    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: bool | None = None) -> dict[str, Any]:
        """Read a local checkpoint weights-only (whatever ``weights_only`` says), checked against its checksum.

        Raises:
            DanError: ``path`` is a URL, or see :func:`read_training_checkpoint`.
        """
        if "://" in str(path):
            raise DanError(f"{path}: checkpoints are read from local files only (download it first)")
        return read_training_checkpoint(path, require_trainer_state=False)
