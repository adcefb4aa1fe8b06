"""Released models by name: a verified, atomic, locked download cache (the package's only network code).

A checkpoint *spec* is one of:

- an existing local file: used as it is, no network;
- a released model name (:data:`RELEASED`: ``rafdb``, ``affectnet7``, ``affectnet8``): the reference
  implementation's files, fetched once from Google Drive into ``<dan_home>/models/<file name>``;
- an ``https://`` or ``http://`` URL: fetched once into ``<dan_home>/models/<name>-<hash><suffix>``;
- ``hf://owner/repo/path/in/repo[@revision]``: fetched with ``huggingface_hub`` and copied into the same cache.

A download goes into a temporary file in the cache folder (``.<file>.<random>.part<suffix>``), is
flushed to disk, checked (not empty, not a web page, then the caller's ``verify`` callback) and renamed
into place, so the cache never holds a partial or unverified file. A lock file (``<file>.lock``) makes a
second process wait for the first and then use its file. Any failure removes the temporary file and is
one :class:`~dan.common.DanError` line naming the URL and the path where the file can be put by hand.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO
from urllib.parse import unquote, urlsplit

from dan.common import DanError, one_line

__all__ = [
    "RELEASED",
    "ReleasedModel",
    "dan_home",
    "is_remote",
    "list_released",
    "models_dir",
    "released_model",
    "resolve_checkpoint",
]

_DRIVE_HOSTS = ("drive.google.com", "docs.google.com", "drive.usercontent.google.com")
_TIMEOUT = (15.0, 60.0)  # seconds: connect, then between bytes
_CHUNK = 1 << 20

Verify = Callable[[Path], None]
_Transport = Callable[[str, BinaryIO, Any], None]  # (url, open temporary file, tqdm bar)


@dataclass(frozen=True)
class ReleasedModel:
    """A released checkpoint that :func:`resolve_checkpoint` fetches by name.

    Attributes:
        name: The name users type (``rafdb``).
        filename: The file's own name, kept in the cache.
        drive_id: Google Drive file id of the original release.
        num_classes: Outputs of the classifier.
        labels: Label-set name in :data:`dan.common.LABEL_SETS`.
        accuracy: Published test accuracy (fraction).
        balanced_accuracy: Published balanced accuracy (fraction), or None where none was published.
        description: One line on what it was trained on.
        url: Where it is fetched from; default the Drive download URL of ``drive_id``. A Drive URL goes
            through gdown, any other through plain HTTP.
    """

    name: str
    filename: str
    drive_id: str
    num_classes: int
    labels: str
    accuracy: float
    balanced_accuracy: float | None = None
    description: str = ""
    url: str = ""

    def __post_init__(self) -> None:
        if not self.url:
            object.__setattr__(self, "url", f"https://drive.google.com/uc?id={self.drive_id}")


_AFFECTNET = "AffectNet's face boxes, 224 px, ImageNet mean/std; the reference release"
RELEASED: dict[str, ReleasedModel] = {
    m.name: m
    for m in (
        ReleasedModel(
            name="rafdb",
            filename="rafdb_epoch21_acc0.897_bacc0.8275.pth",
            drive_id="1ASabP5wkLUIh4VQc8CEuZbZyLJEFaTMF",
            num_classes=7,
            labels="rafdb",
            accuracy=0.8970,
            balanced_accuracy=0.8275,
            description="RAF-DB's 5-landmark-aligned faces, 224 px, ImageNet mean/std; the reference release",
        ),
        ReleasedModel(
            name="affectnet7",
            filename="affecnet7_epoch6_acc0.6569.pth",  # sic: the released file's own name
            drive_id="1_Z-U7rT5NJ3Vc73aN2ZBmuvCkzUQG4jT",
            num_classes=7,
            labels="affectnet7",
            accuracy=0.6569,
            description=_AFFECTNET,
        ),
        ReleasedModel(
            name="affectnet8",
            filename="affecnet8_epoch5_acc0.6209.pth",
            drive_id="1uHNADViICyJEjJljv747nfvrGu12kjtu",
            num_classes=8,
            labels="affectnet8",
            accuracy=0.6209,
            description=_AFFECTNET,
        ),
    )
}


def dan_home() -> Path:
    """``$DAN_HOME`` if set, else the user cache folder (``~/.cache/dan`` on Linux)."""
    env = os.environ.get("DAN_HOME")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("dan"))


def models_dir() -> Path:
    """Where downloaded checkpoints are kept: ``<dan_home>/models``."""
    return dan_home() / "models"


def released_model(spec: str | os.PathLike) -> ReleasedModel | None:
    """The registry entry ``spec`` names, or None (also when a local file of that name exists)."""
    text = os.fspath(spec)
    return RELEASED.get(text) if not Path(text).is_file() else None


def is_remote(spec: str | os.PathLike) -> bool:
    """True when ``spec`` is not a local file but a released name, an http(s) URL or an ``hf://`` path."""
    text = os.fspath(spec)
    if Path(text).is_file():
        return False
    return text in RELEASED or text.startswith(("https://", "http://", "hf://"))


def list_released() -> list[dict]:
    """The released models with their cache state, for ``dan models``.

    Returns:
        One dict per model: the :class:`ReleasedModel` fields, ``file`` (its file name) and ``cached``
        (the cached file's path, or None).
    """
    folder = models_dir()
    rows = [{**asdict(m), "file": m.filename, "cached": folder / m.filename} for m in RELEASED.values()]
    return [{**row, "cached": row["cached"] if row["cached"].is_file() else None} for row in rows]


def _hashed_name(basename: str, key: str) -> str:
    """``<stem>-<hash of key><suffix>``: a readable name that two sources cannot share."""
    base = re.sub(r"[^A-Za-z0-9._-]", "_", unquote(basename)).lstrip(".") or "download"
    suffix = PurePosixPath(base).suffix if len(PurePosixPath(base).suffix) <= 12 else ""
    stem = base[: len(base) - len(suffix)] or "download"
    return f"{stem[:80]}-{hashlib.sha256(key.encode()).hexdigest()[:10]}{suffix}"


def _parse_hf(spec: str) -> tuple[str, str, str | None]:
    rest = spec[len("hf://") :]
    revision = None
    if "@" in rest:
        rest, _, revision = rest.rpartition("@")
    parts = rest.split("/", 2)
    if len(parts) != 3 or not all(parts) or revision == "":
        raise DanError(f"{spec}: not an hf:// path: use hf://owner/repo/path/in/repo[@revision]")
    return f"{parts[0]}/{parts[1]}", parts[2], revision


def resolve_checkpoint(spec: str | os.PathLike, *, verify: Verify | None = None, progress: bool = True) -> Path:
    """Turn a checkpoint spec (see the module docstring) into a local file, downloading it at most once.

    Args:
        spec: A local path, a released model name, an http(s) URL or an ``hf://`` path.
        verify: Called with the downloaded temporary file (which keeps the final suffix) before it
            enters the cache; raises :class:`DanError` if the file is not what was expected.
        progress: Show a progress bar on stderr (only when stderr is a terminal).

    Returns:
        The local file: ``spec`` itself when it is an existing file, else the cached file.

    Raises:
        DanError: Not a file nor a remote spec, or the download or its verification failed.
    """
    text = os.fspath(spec)
    if Path(text).is_file():
        return Path(spec)
    folder = models_dir()
    if text in RELEASED:
        m = RELEASED[text]
        transport: _Transport = _drive if _is_drive(m.url) else _http
        return _fetch(folder / m.filename, f"{m.name} from {m.url}", m.url, transport, verify, progress)
    if text.startswith(("https://", "http://")):
        dest = folder / _hashed_name(PurePosixPath(urlsplit(text).path).name, text)
        return _fetch(dest, text, text, _drive if _is_drive(text) else _http, verify, progress)
    if text.startswith("hf://"):
        repo_id, filename, revision = _parse_hf(text)
        from huggingface_hub import hf_hub_url

        url = hf_hub_url(repo_id, filename, revision=revision)
        transport = _hf_transport(repo_id, filename, revision)
        dest = folder / _hashed_name(PurePosixPath(filename).name, text)
        return _fetch(dest, f"{text} from {url}", url, transport, verify, progress)
    names = ", ".join(RELEASED)
    raise DanError(f"{text}: no such file, and not a released model name ({names}), https:// URL or hf:// path")


class _Failure(Exception):
    """A download problem already phrased for the user."""


def _is_drive(url: str) -> bool:
    return (urlsplit(url).hostname or "") in _DRIVE_HOSTS


def _fetch(dest: Path, what: str, url: str, transport: _Transport, verify: Verify | None, progress: bool) -> Path:
    if dest.is_file():  # only a complete, verified file is ever renamed into place
        return dest
    from filelock import FileLock, Timeout

    manual = f"download it yourself and save it as {dest}"
    lock = FileLock(f"{dest}.lock")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            if progress:
                print(f"dan: waiting for another process downloading {dest.name}", file=sys.stderr)
            lock.acquire()
    except OSError as err:
        raise DanError(f"cannot download {what}: cannot write in {dest.parent} ({err.strerror}); {manual}") from None
    try:
        if dest.is_file():
            return dest
        for stale in dest.parent.glob(f".{dest.name}.*.part*"):  # left by a killed process; we hold the lock
            stale.unlink(missing_ok=True)
        if progress:
            print(f"dan: downloading {what} to {dest}", file=sys.stderr)
        _download(dest, url, transport, verify, progress, what, manual)
        return dest
    finally:
        lock.release()


def _download(
    dest: Path, url: str, transport: _Transport, verify: Verify | None, progress: bool, what: str, manual: str
) -> None:
    from tqdm import tqdm

    try:
        fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=f".part{dest.suffix}", dir=dest.parent)
    except OSError as err:
        raise DanError(f"cannot download {what}: cannot write in {dest.parent} ({err.strerror}); {manual}") from None
    os.close(fd)
    tmp = Path(name)
    try:
        bar_options = {"unit": "B", "unit_scale": True, "unit_divisor": 1024, "desc": dest.name, "file": sys.stderr}
        with open(tmp, "wb") as f, tqdm(disable=None if progress else True, **bar_options) as bar:
            transport(url, f, bar)
            f.flush()
            os.fsync(f.fileno())
        _check_payload(tmp, url)
        if verify is not None:
            verify(tmp)
        os.replace(tmp, dest)
    except (Exception, KeyboardInterrupt) as err:
        tmp.unlink(missing_ok=True)
        raise DanError(f"cannot download {what}: {_reason(err, tmp, url)}; {manual}") from None
    _fsync_dir(dest.parent)


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # the rename itself is durable only once the folder is
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _check_payload(path: Path, url: str) -> None:
    with open(path, "rb") as f:
        head = f.read(1 << 16)  # enough of a web page to find Drive's reason
    if not head:
        raise _Failure("the server sent an empty file")
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if start.startswith((b"<html", b"<!doctype")):
        if _is_drive(url):
            raise _Failure(_drive_refusal(head.decode("utf-8", "replace")))
        raise _Failure("the server sent a web page (HTML), not the file")


def _drive_refusal(text: str) -> str:
    flat = " ".join(text.split()).lower()
    if "too many users" in flat or "quota" in flat:
        return (
            "Google Drive refuses the download: too many users have downloaded it recently (quota exceeded), try later"
        )
    if "cannot retrieve the public link" in flat or "<html" in flat or "<!doctype" in flat:
        return "Google Drive refuses the download (quota exceeded, too many users, or the file is no longer shared)"
    return f"Google Drive refuses the download: {one_line(text)}"


def _reason(err: BaseException, tmp: Path, url: str) -> str:
    """One line saying what went wrong, whatever raised it."""
    import requests

    text = " ".join(str(err).split())
    if isinstance(err, KeyboardInterrupt):
        return "interrupted"
    if isinstance(err, _Failure):
        return text
    if isinstance(err, DanError):  # the verify callback: speak of the file, not of the temporary name
        detail = text.replace(f"{tmp}: ", "").replace(str(tmp), "the downloaded file")
        return f"the downloaded file is not the expected checkpoint: {detail}"
    if isinstance(err, requests.HTTPError) and err.response is not None:
        return f"HTTP {err.response.status_code} {err.response.reason}"
    if isinstance(err, requests.Timeout):
        return "the server did not answer in time"
    if isinstance(err, requests.ConnectionError):
        m = re.search(r"\[Errno -?\d+\] [^'\")\]]+", text)
        return f"no connection (offline, or the server cannot be reached: {m.group(0) if m else one_line(text, 160)})"
    module = type(err).__module__
    if module.startswith("gdown"):
        if type(err).__name__ == "FileURLRetrievalError":
            return _drive_refusal(text)
        if "incomplete" in text.lower():
            return "the transfer ended early: " + text.split(":", 1)[-1].strip().split(". ")[0].rstrip(".")
        return f"Google Drive download failed: {one_line(text)}"
    if module.startswith("huggingface_hub"):
        return f"{type(err).__name__}: {one_line(text)}"
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    return f"{type(err).__name__}: {one_line(text)}"


# --- transports: each writes the remote file into an open binary file and advances a tqdm bar ---


def _http(url: str, f: BinaryIO, bar: Any) -> None:
    import requests

    from dan import __version__

    headers = {"Accept-Encoding": "identity", "User-Agent": f"dan/{__version__}"}
    got, expected = 0, None
    with requests.get(url, stream=True, timeout=_TIMEOUT, headers=headers) as r:
        if r.status_code >= 400:
            raise _Failure(f"HTTP {r.status_code} {r.reason}")
        length = r.headers.get("Content-Length")
        if length and length.isdigit() and r.headers.get("Content-Encoding", "identity") == "identity":
            expected = int(length)
            bar.reset(total=expected)
        try:
            for chunk in r.iter_content(_CHUNK):
                f.write(chunk)
                got += len(chunk)
                bar.update(len(chunk))
        except requests.exceptions.ChunkedEncodingError:
            pass  # the connection closed mid-body: reported below by the byte count
    if expected is not None and got != expected:
        raise _Failure(f"the transfer ended early: received {got:,} of {expected:,} bytes")
    if expected is None and got == 0:
        raise _Failure("the server sent an empty file")


def _drive(url: str, f: BinaryIO, bar: Any) -> None:
    import gdown

    def advance(done: int, total: int | None) -> None:
        if total and bar.total != total:
            bar.reset(total=total)
            bar.update(done)
        else:
            bar.update(done - bar.n)

    gdown.download(url=url, output=f, quiet=True, progress=advance, timeout=_TIMEOUT)


def _hf_transport(repo_id: str, filename: str, revision: str | None) -> _Transport:
    def fetch(url: str, f: BinaryIO, bar: Any) -> None:
        from huggingface_hub import hf_hub_download

        local = hf_hub_download(repo_id, filename, revision=revision)
        with open(local, "rb") as src:
            shutil.copyfileobj(src, f, _CHUNK)

    return fetch
