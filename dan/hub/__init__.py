"""Released models by name: a verified, pinned, atomic, locked download cache (the package's only network code).

A checkpoint *spec* is one of:

- an existing local file: used as it is, no network;
- a released model name (:data:`RELEASED`: ``rafdb``, ``affectnet7``, ``affectnet8``): the reference
  implementation's files, fetched once from Google Drive into ``<dan_home>/models/<file name>``;
  a released backbone's name (:data:`BACKBONES`: ``msceleb``) is refused in one line: it is
  ``model.backbone_weights``' to fetch (:func:`resolve_backbone`), through this same cache;
- an ``https://`` or ``http://`` URL: fetched once into ``<dan_home>/models/<name>-<hash><suffix>``;
- ``hf://owner/repo/path/in/repo[@revision]``: fetched with ``huggingface_hub`` and copied into the same
  cache; the names are checked first (Hugging Face's rules, no ``..`` segment anywhere).

A download goes into a temporary file in the cache folder (:func:`dan.fileio.temp_path_for`), is checked
(not empty, not a web page, its SHA-256 against the pin when there is one, then the caller's ``verify``
callback) and published with :func:`dan.fileio.publish`, so the cache never holds a partial or unverified
file; its SHA-256 is then recorded beside it (``<file>.sha256``). Every later use checks the cached file
against the catalogue's pin (:attr:`ReleasedModel.sha256`) or else that record (:mod:`dan.hub.cache`); a
file found in the cache with neither (put there by hand) is checked by ``verify``, accepted with a notice,
and recorded. A lock (``<file>.lock``, removed after use) makes a second process wait for the first and
then use its file. Any failure is one :class:`~dan.common.DanError` line naming the URL and the path
where the file can be put by hand.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

from dan import fileio
from dan.common import DanError, one_line
from dan.hub import cache as hubcache
from dan.hub import transport as transfer
from dan.hub.catalogue import BACKBONES, RELEASED, ReleasedBackbone, ReleasedModel

__all__ = [
    "BACKBONES",
    "RELEASED",
    "ReleasedBackbone",
    "ReleasedModel",
    "cached_path",
    "dan_home",
    "is_remote",
    "list_backbones",
    "list_released",
    "models_dir",
    "released_model",
    "resolve_backbone",
    "resolve_checkpoint",
]

_DRIVE_HOSTS = ("drive.google.com", "docs.google.com", "drive.usercontent.google.com")

Verify = Callable[[Path], None]


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
    return text in RELEASED or text in BACKBONES or text.startswith(("https://", "http://", "hf://"))


def list_released() -> list[dict]:
    """The released models with their cache state, for ``dan models``.

    Returns:
        One dict per model: the :class:`ReleasedModel` fields, ``file`` (its file name), ``cached`` (the
        cached file's path, or None) and ``state``: ``not cached``, ``verified (catalogue pin)``,
        ``unchanged since recorded at first download, no published hash``, ``unchanged since recorded at
        first use, no published hash``,
        ``MISMATCH``, ``unpinned`` (found in the cache, not loaded yet) or ``damaged record``.
    """
    return [_cache_row(m) for m in RELEASED.values()]


def list_backbones() -> list[dict]:
    """The released backbones with their cache state, for ``dan models`` (the rows of :func:`list_released`)."""
    return [_cache_row(b) for b in BACKBONES.values()]


def _cache_row(entry: ReleasedModel | ReleasedBackbone) -> dict:
    path = models_dir() / entry.filename
    state = "not cached"
    if path.is_file():
        try:
            state = hubcache.inspect(path, entry.sha256).describe()
        except DanError:
            state = "damaged record"
    return {**asdict(entry), "file": entry.filename, "cached": path if path.is_file() else None, "state": state}


def _hashed_name(basename: str, key: str) -> str:
    """``<stem>-<hash of key><suffix>``: a readable name that two sources cannot share."""
    base = re.sub(r"[^A-Za-z0-9._-]", "_", unquote(basename)).lstrip(".") or "download"
    suffix = PurePosixPath(base).suffix if len(PurePosixPath(base).suffix) <= 12 else ""
    stem = base[: len(base) - len(suffix)] or "download"
    return f"{stem[:80]}-{hashlib.sha256(key.encode()).hexdigest()[:10]}{suffix}"


_HF_NAME = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9._-]*[A-Za-z0-9_])?")
_HF_USAGE = "use hf://owner/repo/path/in/repo[@revision]"


def _bad_segments(text: str) -> bool:
    return any(s in ("", ".", "..") for s in text.split("/")) or any(c.isspace() or ord(c) < 32 for c in text)


def _parse_hf(spec: str) -> tuple[str, str, str | None]:
    """``(owner/repo, path, revision)`` of an ``hf://`` spec, every part checked before any library sees it."""
    rest = spec[len("hf://") :]
    revision = None
    if "@" in rest:
        rest, _, revision = rest.rpartition("@")
    parts = rest.split("/", 2)
    if len(parts) != 3 or not all(parts) or revision == "":
        raise DanError(f"{spec}: not an hf:// path: {_HF_USAGE}")
    owner, repo, path = parts
    for what, name in (("owner", owner), ("repository", repo)):
        if not _HF_NAME.fullmatch(name) or ".." in name or "--" in name or len(name) > 96:
            raise DanError(
                f"{spec}: {name!r} is not a Hugging Face {what} name (letters, digits, '-', '_' and '.', starting "
                f"and ending with a letter, digit or '_', no '..' or '--'); {_HF_USAGE}"
            )
    if _bad_segments(path) or "\\" in path:
        raise DanError(f"{spec}: the path in the repository has an empty, '.' or '..' part or a space; {_HF_USAGE}")
    if revision is not None and (_bad_segments(revision) or "\\" in revision):
        raise DanError(f"{spec}: revision {revision!r} has an empty, '.' or '..' part or a space; {_HF_USAGE}")
    return f"{owner}/{repo}", path, revision


def _is_drive(url: str) -> bool:
    return (urlsplit(url).hostname or "") in _DRIVE_HOSTS


@dataclass(frozen=True)
class _Source:
    """Where a remote spec comes from and where it is cached."""

    dest: Path
    what: str  # "rafdb from https://...": for messages
    url: str
    transport: transfer.Transport
    pinned: str | None  # the catalogue's SHA-256


def _source(text: str) -> _Source | None:
    folder = models_dir()
    entry = RELEASED.get(text) or BACKBONES.get(text)
    if entry is not None:
        transport = transfer.drive if _is_drive(entry.url) else transfer.http
        return _Source(folder / entry.filename, f"{entry.name} from {entry.url}", entry.url, transport, entry.sha256)
    if text.startswith(("https://", "http://")):
        dest = folder / _hashed_name(PurePosixPath(urlsplit(text).path).name, text)
        return _Source(dest, text, text, transfer.drive if _is_drive(text) else transfer.http, None)
    if text.startswith("hf://"):
        repo_id, filename, revision = _parse_hf(text)
        try:
            from huggingface_hub import hf_hub_url

            url = hf_hub_url(repo_id, filename, revision=revision)
        except Exception as err:  # the library's own checks, or the library missing: one line
            raise DanError(f"{text}: {type(err).__name__}: {one_line(err)}") from None
        dest = folder / _hashed_name(PurePosixPath(filename).name, text)
        return _Source(dest, f"{text} from {url}", url, transfer.hf_transport(repo_id, filename, revision), None)
    return None


def cached_path(spec: str | os.PathLike) -> Path | None:
    """Where the remote ``spec`` is (or would be) cached; None for anything else.

    Raises:
        DanError: A malformed ``hf://`` path.
    """
    source = _source(os.fspath(spec))
    return None if source is None else source.dest


def resolve_checkpoint(
    spec: str | os.PathLike, *, verify: Verify | None = None, progress: bool = True, force: bool = False
) -> Path:
    """Turn a checkpoint spec (see the module docstring) into a local file, downloading it at most once.

    Args:
        spec: A local path, a released model name, an http(s) URL or an ``hf://`` path.
        verify: Called with the downloaded temporary file (which keeps the final suffix) before it
            enters the cache, and with a cached file that has no pin; raises :class:`DanError` if the
            file is not what was expected.
        progress: Show a progress bar on stderr (only when stderr is a terminal).
        force: Fetch a remote ``spec`` again even when it is cached (``dan models download --force``): the new
            file is downloaded beside the cached one and replaces it only once it verified; a failed fetch
            leaves the cached file as it was.

    Returns:
        The local file: ``spec`` itself when it is an existing file, else the cached file.

    Raises:
        DanError: Not a file nor a remote spec, the download or its verification failed, or the cached
            file does not match its pin.
    """
    text = os.fspath(spec)
    if Path(text).is_file():
        return Path(spec)
    if text in BACKBONES:
        raise DanError(
            f"{text}: a released backbone ({BACKBONES[text].filename}: {BACKBONES[text].architecture} weights), not "
            f"a DAN model: it cannot be used as a checkpoint; train from it with model.backbone_weights: {text} "
            f"(dan fit), or name a released model ({', '.join(RELEASED)})"
        )
    source = _source(text)
    if source is None:
        names = ", ".join(RELEASED)
        raise DanError(f"{text}: no such file, and not a released model name ({names}), https:// URL or hf:// path")
    refetch = f"dan models download {text} --force"
    if source.dest.is_file() and not force:  # the common case: no lock, no network
        return _check_cached(source.dest, source.pinned, verify, refetch)
    return _fetch(source, verify, progress, refetch, force)


def resolve_backbone(name: str, *, verify: Verify | None = None, progress: bool = True, force: bool = False) -> Path:
    """The local file of the released backbone ``name`` (:data:`BACKBONES`), downloaded at most once.

    The same verified, pinned, atomic and locked cache as :func:`resolve_checkpoint`, with the same
    progress bar and the same one-line failures (the URL and the path to save the file as by hand).

    Args:
        name: A key of :data:`BACKBONES`.
        verify: The layout check of a downloaded (or hand-placed, unpinned) file.
        progress: Show a progress bar on stderr (only when stderr is a terminal).
        force: Fetch it again even when cached, replacing the cached file only once the new one verified.

    Raises:
        DanError: Not a released backbone, the download or its verification failed, or the cached file does
            not match its pin.
    """
    if name not in BACKBONES:
        raise DanError(f"{name}: not a released backbone ({', '.join(BACKBONES)})")
    source = _source(name)
    assert source is not None  # every catalogue name has one
    refetch = f"dan models download {name} --force"
    if source.dest.is_file() and not force:
        return _check_cached(source.dest, source.pinned, verify, refetch)
    return _fetch(source, verify, progress, refetch, force)


def _check_cached(path: Path, pinned: str | None, verify: Verify | None, refetch: str) -> Path:
    verdict = hubcache.inspect(path, pinned, refresh=True)
    if verdict.state == "mismatch":
        by = "the catalogue" if verdict.source == "catalogue" else f"{hubcache.sidecar_of(path)}"
        raise DanError(
            f"{path}: SHA-256 mismatch: the file is damaged or was replaced (it is {verdict.sha256[:16]}..., "
            f"{by} pins {(verdict.expected or '')[:16]}...); delete it and fetch it again: {refetch}"
        )
    if verdict.state == "unpinned":
        if verify is not None:
            try:
                verify(path)
            except DanError as err:
                raise DanError(f"{err}; delete it, or fetch the file: {refetch}") from None
        hubcache.write_record(path, verdict.sha256, "first use")
        print(
            f"dan: notice: {path} is not pinned (no published hash: the catalogue has no SHA-256 for it, and dan did "
            f"not download it); it passed the layout check only; SHA-256 {verdict.sha256} recorded at first use, "
            "so a changed file will be refused",
            file=sys.stderr,
        )
    return path


def _fetch(source: _Source, verify: Verify | None, progress: bool, refetch: str, force: bool = False) -> Path:
    """Download ``source`` under its entry's lock (``force``: even when cached; the cached file is replaced only
    by a new one that verified)."""
    dest = source.dest
    manual = f"download it yourself and save it as {dest}"
    lock = hubcache.EntryLock(dest)

    def waiting() -> None:
        if progress:
            print(f"dan: waiting for another process downloading {dest.name}", file=sys.stderr)

    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        lock.acquire(on_wait=waiting)
    except OSError as err:
        raise DanError(
            f"cannot download {source.what}: cannot write in {dest.parent} ({err.strerror}); {manual}"
        ) from None
    try:
        if dest.is_file() and not force:  # another process fetched it while we waited
            return _check_cached(dest, source.pinned, verify, refetch)
        for stale in dest.parent.glob(f".{dest.name}.*.part*"):  # an older version's, left by a killed process
            stale.unlink(missing_ok=True)
        fileio.remove_stale_temps(dest)
        if progress:
            print(f"dan: downloading {source.what} to {dest}", file=sys.stderr)
        _download(source, verify, progress, manual)
        return dest
    finally:
        lock.release()


def _download(source: _Source, verify: Verify | None, progress: bool, manual: str) -> None:
    from tqdm import tqdm

    dest = source.dest
    record = hubcache.read_record(dest)  # left by an earlier download of a file since deleted
    expected, by = (source.pinned, "catalogue") if source.pinned else (None, "")
    if expected is None and record is not None and record.source == "download":  # not a hand-placed file's
        expected, by = record.sha256, f"SHA-256 recorded in {hubcache.sidecar_of(dest)}"
    tmp = fileio.temp_path_for(dest)
    try:
        bar_options = {"unit": "B", "unit_scale": True, "unit_divisor": 1024, "desc": dest.name, "file": sys.stderr}
        with open(tmp, "wb") as f, tqdm(disable=None if progress else True, **bar_options) as bar:
            source.transport(source.url, f, bar)
        transfer.check_payload(tmp, _is_drive(source.url))
        digest = hubcache.sha256_file(tmp)
        if expected is not None and digest != expected.lower():
            raise transfer.Failure(
                f"its SHA-256 {digest[:16]}... is not the {by} pin {expected[:16]}... (a damaged or another file)"
                if by == "catalogue"
                else f"its SHA-256 {digest[:16]}... is not the {by}, {expected[:16]}... (delete that record if "
                "the release really changed)"
            )
        if verify is not None:
            verify(tmp)
        fileio.publish(tmp, dest)
    except (Exception, KeyboardInterrupt) as err:
        tmp.unlink(missing_ok=True)
        raise DanError(f"cannot download {source.what}: {transfer.reason(err, tmp)}; {manual}") from None
    hubcache.write_record(dest, digest, "catalogue" if source.pinned else "download")
