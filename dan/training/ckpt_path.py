"""``--ckpt_path`` through the project's own reader: no code ever runs from a checkpoint, whatever its path.

Lightning would open a URL itself (``http(s)://`` through ``torch.hub`` with ``weights_only=False``,
anything else through fsspec). Here every value is turned into a local file first, and Lightning is
given that file (which :class:`dan.training.checkpoint_io.AtomicCheckpointIO` reads weights-only):

- a local path or a ``file://`` URL: read weights-only and checked;
- ``http://``, ``https://`` and ``hf://``: downloaded by :func:`dan.hub.resolve_checkpoint` into
  ``<dan_home>/models`` (atomic, cached, verified before it enters the cache: read weights-only, a
  Lightning training checkpoint, its checksum right);
- Lightning's names ``last``, ``best`` and ``hpc``: this run's own files, left to Lightning;
- any other scheme (``s3://``, ``gs://``, ``memory://``, ...) and Lightning's model ``registry``: refused.

It runs when the command line is parsed, before any logger or run folder is made, so a refused
checkpoint leaves nothing behind.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

from dan.errors import DanError
from dan.training.checkpoint_io import read_training_checkpoint

__all__ = ["resolve_ckpt_path"]

_LIGHTNING_NAMES = ("last", "best", "hpc")
_DOWNLOADED = ("http", "https", "hf")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def _verify(path: Path) -> None:
    """The download's check: readable weights-only, a training checkpoint, its checksum right."""
    read_training_checkpoint(path)


def _file_url(value: str) -> Path:
    parts = urlsplit(value)
    if parts.netloc not in ("", "localhost"):
        raise DanError(f"{value}: a file:// URL on another host ({parts.netloc}); give a local path")
    return Path(unquote(parts.path))


def resolve_ckpt_path(value: str | os.PathLike) -> str:
    """The local checkpoint file Lightning should read for ``--ckpt_path value``, checked.

    Args:
        value: What the user gave: a path, a ``file://``, ``http(s)://`` or ``hf://`` URL, or one of
            Lightning's names (``last``, ``best``, ``hpc``).

    Returns:
        A local path (or Lightning's name, unchanged).

    Raises:
        DanError: A scheme other than those above, a failed download, or a file that is missing, holds
            Python objects, is no training checkpoint or does not match its checksum (one line).
    """
    text = os.fspath(value)
    if text in _LIGHTNING_NAMES:
        return text
    if text.lower() == "registry" or text.lower().startswith("registry:"):
        raise DanError(f"--ckpt_path {text}: Lightning's model registry is not supported; download the file first")
    match = _SCHEME.match(text)
    scheme = match.group(1).lower() if match else ""
    if scheme in _DOWNLOADED:
        from dan.hub import resolve_checkpoint

        path = resolve_checkpoint(text, verify=_verify)
    elif scheme == "file":
        path = _file_url(text)
    elif scheme:
        raise DanError(
            f"--ckpt_path {text}: {scheme}:// is not supported: give a local file, a file://, http(s):// or hf:// URL"
        )
    else:
        path = Path(text)
    read_training_checkpoint(path)
    return str(path)
