"""Atomic file writes, the one helper every writer in ``dan`` uses.

A file is written under a temporary name in its destination's own folder (so the final rename
never crosses a filesystem, whatever ``TMPDIR`` is), flushed and fsynced, then ``os.replace``-d over
the destination. A reader sees the previous file or the new one, never a half-written one; a failure
removes the temporary file, and one left by a killed process (``.<stem>.<pid>.tmp<suffix>``, its
process gone) is removed the next time the same file is written.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
from collections.abc import Iterator
from pathlib import Path

from dan.errors import DanError

__all__ = [
    "atomic_path",
    "atomic_write",
    "check_writable",
    "fsync_path",
    "publish",
    "remove_stale_temps",
    "remove_stale_temps_in",
    "temp_path_for",
]


def temp_path_for(path: str | os.PathLike) -> Path:
    """A temporary path in the target's folder with the same suffix (writers pick formats by suffix)."""
    path = Path(path)
    return path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")


_TEMP_NAME = re.compile(r"^\..+\.(\d+)\.tmp(\.[^.]*)?$")  # what temp_path_for names


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale(path: Path) -> None:
    """Remove temporary files of ``path`` left by processes that no longer run."""
    prefix, suffix = f".{path.stem}.", f".tmp{path.suffix}"
    try:
        candidates = [p for p in path.parent.iterdir() if p.name.startswith(prefix) and p.name.endswith(suffix)]
    except OSError:
        return
    for p in candidates:
        pid = p.name[len(prefix) : len(p.name) - len(suffix)]
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            with contextlib.suppress(OSError):
                p.unlink()


def remove_stale_temps_in(folder: str | os.PathLike) -> list[Path]:
    """Remove every temporary file in ``folder`` (``.<stem>.<pid>.tmp<suffix>``) whose process no longer runs.

    :func:`atomic_path` (and :func:`remove_stale_temps`) removes those of one file; this clears a whole
    folder, such as the checkpoint folder of a run killed mid-save that is resumed into a new folder.

    Returns:
        The files removed (a missing or unreadable folder: none).
    """
    removed: list[Path] = []
    try:
        candidates = [p for p in Path(folder).iterdir() if _TEMP_NAME.match(p.name) and p.is_file()]
    except OSError:
        return removed
    for p in candidates:
        match = _TEMP_NAME.match(p.name)
        assert match is not None  # filtered above
        pid = int(match.group(1))
        if pid != os.getpid() and not _pid_alive(pid):
            with contextlib.suppress(OSError):
                p.unlink()
                removed.append(p)
    return removed


def check_writable(path: str | os.PathLike, what: str = "output") -> Path:
    """Prove, before any work, that ``path`` can be written: it is no folder, its folder exists, and a
    file can be created there.

    The proof is the temporary file the writer will use (:func:`temp_path_for`), created and removed:
    a permission test alone passes where no file can be made (``/proc``, a read-only mount, a full
    quota). One this process is writing already counts as proof and is left alone.

    Raises:
        DanError: One line naming the path and the problem.
    """
    path = Path(path)
    if path.is_dir():
        raise DanError(f"{path}: is a folder; the {what} must be a file name")
    parent = path.parent
    if not parent.is_dir():
        raise DanError(f"{path}: {what} folder {parent} does not exist")
    if path.exists() and not os.access(path, os.W_OK):
        raise DanError(f"{path}: cannot write the {what}: the file is read-only")
    tmp = temp_path_for(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path
    except OSError as err:
        reason = os.strerror(err.errno) if err.errno else str(err)
        raise DanError(f"{path}: cannot write the {what}: no file can be created in {parent} ({reason})") from None
    os.close(fd)
    with contextlib.suppress(OSError):
        tmp.unlink()
    return path


def fsync_path(path: str | os.PathLike) -> None:
    """Flush a written file's data to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform can open a folder
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, what: str = "output") -> Iterator[Path]:
    """Yield a temporary path to write; on success it is fsynced and replaces ``path``; on error it is removed.

    Raises:
        DanError: The folder is missing or not writable, or the disk is full (one line naming the file).
    """
    path = check_writable(path, what)
    _remove_stale(path)
    tmp = temp_path_for(path)
    try:
        yield tmp
        fsync_path(tmp)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except OSError as err:
        if err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES):
            raise DanError(f"{path}: cannot write the {what}: {os.strerror(err.errno)}") from None
        raise
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def atomic_write(path: str | os.PathLike, data: bytes | str, what: str = "output") -> Path:
    """Write ``data`` (text as UTF-8) to ``path`` atomically (see :func:`atomic_path`); returns the path."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    with atomic_path(path, what) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def publish(tmp: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Put a finished temporary file (from :func:`temp_path_for`) in place: fsync it, rename it over ``path``.

    For writers that fill the temporary file themselves (a download checked before it may enter the
    cache) rather than inside :func:`atomic_path`. On failure the temporary file is left to the caller.

    Returns:
        ``path``.
    """
    fsync_path(tmp)
    os.replace(tmp, path)
    _fsync_dir(Path(path).parent)
    return Path(path)


def remove_stale_temps(path: str | os.PathLike) -> None:
    """Remove temporary files of ``path`` (see :func:`temp_path_for`) left by processes that no longer run."""
    _remove_stale(Path(path))
