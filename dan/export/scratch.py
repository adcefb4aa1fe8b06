"""A scratch folder for an export's intermediate files that a killed export does not leave behind.

An int8 export writes a float32 ONNX graph, a pre-processed copy and onnxruntime's calibration models
(together about the size of the model, several times over). In ``tempfile``'s folder, a ``kill -9``
leaves them there for good. Here they go to ``<dan_home>/tmp/export-<pid>-<random>/``; ``tempfile``
itself points there while the folder is open (onnxruntime makes its own temporary folders), and every
new scratch folder first removes the folders of processes that no longer run.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from dan.paths import dan_home

__all__ = ["remove_abandoned", "scratch_folder", "scratch_root"]

_NAME = re.compile(r"^[a-z0-9]+-(\d+)-[0-9a-f]+$")  # <kind>-<pid>-<random>


def scratch_root() -> Path:
    """Where scratch folders are made: ``<dan_home>/tmp``."""
    return dan_home() / "tmp"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_abandoned(root: str | os.PathLike | None = None) -> list[Path]:
    """Remove the scratch folders in ``root`` (default :func:`scratch_root`) whose process no longer runs.

    Returns:
        The folders removed.
    """
    removed: list[Path] = []
    try:
        folders = [p for p in Path(root or scratch_root()).iterdir() if p.is_dir() and _NAME.match(p.name)]
    except OSError:
        return removed
    for folder in folders:
        match = _NAME.match(folder.name)
        assert match is not None  # filtered above
        pid = int(match.group(1))
        if pid != os.getpid() and not _alive(pid):
            shutil.rmtree(folder, ignore_errors=True)
            if not folder.exists():
                removed.append(folder)
    return removed


@contextlib.contextmanager
def scratch_folder(kind: str = "export") -> Iterator[Path]:
    """Yield a new empty folder for intermediate files, removed on exit and, after a kill, by the next one.

    ``tempfile.gettempdir()`` returns this folder until the block ends (process-wide), so libraries'
    own temporary files land in it too. Where ``<dan_home>/tmp`` cannot be written, the system's
    temporary folder is used, as before.

    Args:
        kind: A lowercase word naming the folder (``export``).
    """
    root = scratch_root()
    try:
        root.mkdir(parents=True, exist_ok=True)
        remove_abandoned(root)
        folder = root / f"{kind}-{os.getpid()}-{secrets.token_hex(6)}"
        folder.mkdir(mode=0o700)
    except OSError:
        folder = Path(tempfile.mkdtemp(prefix=f"dan-{kind}-"))
    previous = tempfile.tempdir
    tempfile.tempdir = str(folder)
    try:
        yield folder
    finally:
        tempfile.tempdir = previous
        shutil.rmtree(folder, ignore_errors=True)
