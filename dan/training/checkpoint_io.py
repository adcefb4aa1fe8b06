"""Checkpoints written atomically on any filesystem (Lightning's ``CheckpointIO``, our writer).

Lightning's own writer goes through a temporary file of fsspec's choosing and a move, which becomes
a copy when ``TMPDIR`` is on another filesystem: a kill during the copy leaves a ``last.ckpt`` that
fails to load, and the temporary file behind. Here the checkpoint is written by
:func:`dan.fileio.atomic_path`: a temporary file in the checkpoint's own folder, fsynced, then
renamed over the old one. A kill at any moment leaves the previous checkpoint whole, and a
temporary file from a killed process is removed by the next save. A full disk is one line.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from dan.fileio import atomic_path

__all__ = ["AtomicCheckpointIO"]


class AtomicCheckpointIO(TorchCheckpointIO):
    """:class:`TorchCheckpointIO` whose saves are atomic on every filesystem (local paths)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None) -> None:
        """Write ``checkpoint`` to ``path`` atomically (remote URLs go through Lightning's writer)."""
        if "://" in str(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with atomic_path(path, "checkpoint") as tmp:
            torch.save(checkpoint, tmp)
