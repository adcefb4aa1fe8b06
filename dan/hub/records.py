"""One entry of the download cache on disk: its lock, and the SHA-256 that pins its bytes.

**Lock** (``<file>.lock``): an exclusive ``flock`` on the lock file, so a second process waits for the
first and then uses its file. The holder removes the lock file before it lets go, so the cache keeps no
lock files; a process that got the lock on a file removed meanwhile sees that the path no longer names
the file it locked and locks again, so two processes never both hold the entry. Where ``flock`` is
missing (Windows, some network filesystems), ``filelock.FileLock`` does the same job.

**Pin** (``<file>.sha256``, the sidecar): the first line is in ``sha256sum``'s format (so
``sha256sum -c`` checks it), the second a comment ``# dan: {...}`` saying where the hash came from
(``catalogue``: it matched :attr:`dan.hub.ReleasedModel.sha256`; ``download``: recorded after a verified
download; ``first use``: a file found in the cache, recorded when it was first loaded) and the file's
size, mtime, ctime and inode when it last verified. An unchanged file is not hashed again (about 0.75 ms
per MB on a CPU with SHA extensions); any rewrite changes the ctime, even when the mtime is put back, so
a changed file always is. The sidecar guards against damaged and replaced files, not against someone
who can write the cache folder (they could rewrite the sidecar too); the catalogue's pin, in the
package, is what a download is checked against when it exists.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dan.errors import DanError, one_line
from dan.fileio import atomic_write

__all__ = ["EntryLock", "Record", "Verdict", "inspect", "read_record", "sha256_file", "sidecar_of", "write_record"]

SOURCES = {
    "catalogue": "catalogue pin",
    "download": "recorded at its first download",
    "first use": "recorded at its first use",
}
_HEX = re.compile(r"[0-9a-f]{64}")


def sha256_file(path: Path) -> str:
    """The SHA-256 of a file's bytes, in lowercase hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def sidecar_of(path: Path) -> Path:
    """Where a cached file's pin is kept: ``<file>.sha256``."""
    return path.with_name(f"{path.name}.sha256")


def _stat_key(path: Path) -> list[int]:
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


@dataclass(frozen=True)
class Record:
    """A sidecar's content.

    Attributes:
        sha256: The file's SHA-256 when it was recorded (lowercase hex).
        source: ``catalogue``, ``download`` or ``first use`` (see the module docstring).
        stat: ``[size, mtime_ns, ctime_ns, inode]`` of the file when it last verified, or None.
    """

    sha256: str
    source: str
    stat: list[int] | None = None


def read_record(path: Path) -> Record | None:
    """The pin recorded for the cached file ``path``, or None when it has no sidecar.

    Raises:
        DanError: The sidecar exists but is not one dan wrote (one line naming it).
    """
    sidecar = sidecar_of(path)
    try:
        text = sidecar.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as err:
        raise DanError(f"{sidecar}: cannot read this SHA-256 record: {one_line(err, 120)}") from None
    lines = text.splitlines()
    first = lines[0].split() if lines else []
    extra: Any = {}
    if len(lines) > 1 and lines[1].startswith("# dan: "):
        with contextlib.suppress(json.JSONDecodeError):
            extra = json.loads(lines[1][len("# dan: ") :])
    if len(first) != 2 or not _HEX.fullmatch(first[0]) or not isinstance(extra, dict):
        raise DanError(
            f"{sidecar}: damaged SHA-256 record (not '<sha256>  {path.name}'); delete it and {path.name}, "
            "then fetch the file again"
        )
    source = str(extra.get("source")) if extra.get("source") in SOURCES else "download"
    stat = extra.get("stat")
    valid = isinstance(stat, list) and len(stat) == 4 and all(isinstance(v, int) for v in stat)
    return Record(first[0], source, stat if valid else None)


def write_record(path: Path, sha256: str, source: str) -> None:
    """Record ``path``'s SHA-256 (and its size, times and inode) in its sidecar, atomically.

    A cache folder that cannot be written (shared, read-only) only loses the record: best effort.
    """
    extra = {"source": source, "stat": _stat_key(path)}
    text = f"{sha256}  {path.name}\n# dan: {json.dumps(extra, separators=(',', ':'))}\n"
    with contextlib.suppress(DanError, OSError):
        atomic_write(sidecar_of(path), text, "SHA-256 record")


@dataclass(frozen=True)
class Verdict:
    """What a cached file is against its pin.

    Attributes:
        state: ``verified``, ``mismatch`` or ``unpinned`` (no catalogue pin and no sidecar).
        sha256: The file's SHA-256.
        expected: The pinned SHA-256 (None when unpinned).
        source: Where the pin came from (a key of ``SOURCES``), or None.
    """

    state: str
    sha256: str
    expected: str | None = None
    source: str | None = None

    def describe(self) -> str:
        """``verified (catalogue pin)``, ``MISMATCH``, ``unpinned``."""
        if self.state == "verified":
            return f"verified ({SOURCES[self.source or 'download']})"
        return "MISMATCH" if self.state == "mismatch" else self.state


def inspect(path: Path, pinned: str | None, *, refresh: bool = False) -> Verdict:
    """Check a cached file against the catalogue's pin, or else against its sidecar.

    Args:
        path: The cached file.
        pinned: The catalogue's SHA-256, or None.
        refresh: After a successful check that had to hash the file, record its size, times and inode
            (and a catalogue pin) in the sidecar, so the next check does not hash it again.

    Returns:
        The verdict.

    Raises:
        DanError: A damaged sidecar.
    """
    pinned = pinned.lower() if pinned else None
    record = read_record(path)
    if pinned is not None:
        expected, source = pinned, "catalogue"
    elif record is not None:
        expected, source = record.sha256, record.source
    else:
        return Verdict("unpinned", sha256_file(path))
    if record is not None and record.sha256 == expected and record.stat == _stat_key(path):
        return Verdict("verified", expected, expected, source)
    digest = sha256_file(path)
    if digest != expected:
        return Verdict("mismatch", digest, expected, source)
    if refresh:
        write_record(path, digest, source)
    return Verdict("verified", digest, expected, source)


class EntryLock:
    """The exclusive lock of one cache entry (``<dest>.lock``), its file removed on release.

    Args:
        dest: The cached file the lock guards.
    """

    def __init__(self, dest: Path) -> None:
        self.path = Path(f"{dest}.lock")
        self._fd: int | None = None
        self._fallback: Any = None

    def acquire(self, on_wait: Callable[[], None] | None = None) -> None:
        """Take the lock, waiting for another holder; ``on_wait`` is called once if it has to wait.

        Raises:
            OSError: The lock file cannot be created.
        """
        try:
            import fcntl
        except ImportError:  # Windows: filelock's lock deletes its file on release
            self._acquire_fallback(on_wait)
            return
        told = False
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    if on_wait is not None and not told:
                        on_wait()
                        told = True
                    fcntl.flock(fd, fcntl.LOCK_EX)
                if os.path.samestat(os.fstat(fd), os.stat(self.path)):
                    self._fd = fd
                    return
            except FileNotFoundError:
                pass  # its holder removed the file we locked: lock the one at the path now
            except OSError as err:
                os.close(fd)
                if err.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                    raise
                self._acquire_fallback(on_wait)
                return
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)  # the path names another file now: lock that one

    def _acquire_fallback(self, on_wait: Callable[[], None] | None) -> None:
        from filelock import FileLock, Timeout

        self._fallback = FileLock(str(self.path))
        try:
            self._fallback.acquire(timeout=0)
        except Timeout:
            if on_wait is not None:
                on_wait()
            self._fallback.acquire()

    def release(self) -> None:
        """Remove the lock file (while still holding it) and let go."""
        if self._fallback is not None:
            self._fallback.release()  # removing its file here would race its next holder: kept
            self._fallback = None
            return
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        os.close(self._fd)  # closing the descriptor releases the flock
        self._fd = None
