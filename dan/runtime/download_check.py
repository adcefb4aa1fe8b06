"""The check a downloaded model file must pass before the download cache keeps it, for every file the runtimes read.

A DAN checkpoint is checked by :func:`dan.models.loading.checkpoint_verifier` (a released name: the
reference layout of its class count); an exported ``.onnx`` file must parse (with ``onnx``, when it is
installed; :mod:`dan.hub` itself already refused an empty file and a web page).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from dan.errors import DanError, one_line
from dan.models.loading import checkpoint_verifier

__all__ = ["check_onnx_file", "download_check"]


def check_onnx_file(path: Path) -> None:
    """An ONNX file must parse (its external data is not read).

    Raises:
        DanError: It does not.
    """
    try:
        import onnx
    except ImportError:
        return  # dan.hub already refused an empty file and a web page
    try:
        onnx.load(str(path), load_external_data=False)
    except Exception as err:
        raise DanError(f"{path}: not a readable ONNX file: {one_line(err, 160)}") from None


def download_check(spec: str | os.PathLike) -> Callable[[Path], None]:
    """The check for a download of ``spec``: an ``.onnx`` file must parse, any other a DAN checkpoint must read.

    Args:
        spec: What the user named: a released model name, a URL or an ``hf://`` path.

    Returns:
        A callback raising :class:`DanError` for a file that is not what was expected.
    """
    checkpoint = checkpoint_verifier(spec)

    def check(path: Path) -> None:
        (check_onnx_file if path.suffix.lower() == ".onnx" else checkpoint)(path)

    return check
