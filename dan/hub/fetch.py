"""The download cache's way in: a spec to a local file, fetched at most once, verified, pinned, atomic and locked.

See :mod:`dan.hub` for what a spec is and what the cache guarantees; :mod:`dan.hub.specs` parses a spec,
:mod:`dan.hub.transport` moves the bytes and :mod:`dan.hub.records` keeps the locks and SHA-256 records.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from dan import fileio
from dan.errors import DanError
from dan.hub import records as hubcache
from dan.hub import transport as transfer
from dan.hub.catalogue import BACKBONES, RELEASED, ReleasedBackbone, ReleasedModel
from dan.hub.specs import Source, cached_path, is_drive, source_of
from dan.paths import models_dir

__all__ = ["Verify", "list_backbones", "list_released", "remove_cached", "resolve_backbone", "resolve_checkpoint"]

Verify = Callable[[Path], None]


def list_released() -> list[dict]:
    """The released models with their cache state, for ``dan models``.

    Returns:
        One dict per model: the :class:`ReleasedModel` fields, ``file`` (its file name), ``cached`` (the
        cached file's path, or None) and ``state``: ``not cached``, ``verified (catalogue pin)``,
        ``verified (recorded at its first download)``, ``verified (recorded at its first use)``,
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


def remove_cached(spec: str | os.PathLike) -> Path | None:
    """Delete the cached file of ``spec`` so the next use fetches it again; returns its path.

    Its SHA-256 record stays (the new download must match it), unless the record itself is damaged.
    """
    path = cached_path(spec)
    if path is None:
        return None
    path.unlink(missing_ok=True)
    try:
        hubcache.read_record(path)
    except DanError:
        hubcache.sidecar_of(path).unlink(missing_ok=True)
    return path


def resolve_checkpoint(spec: str | os.PathLike, *, verify: Verify | None = None, progress: bool = True) -> Path:
    """Turn a checkpoint spec (see the module docstring) into a local file, downloading it at most once.

    Args:
        spec: A local path, a released model name, an http(s) URL or an ``hf://`` path.
        verify: Called with the downloaded temporary file (which keeps the final suffix) before it
            enters the cache, and with a cached file that has no pin; raises :class:`DanError` if the
            file is not what was expected.
        progress: Show a progress bar on stderr (only when stderr is a terminal).

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
    source = source_of(text)
    if source is None:
        names = ", ".join(RELEASED)
        raise DanError(f"{text}: no such file, and not a released model name ({names}), https:// URL or hf:// path")
    refetch = f"dan models download {text} --force"
    if source.dest.is_file():  # the common case: no lock, no network
        return _check_cached(source.dest, source.pinned, verify, refetch)
    return _fetch(source, verify, progress, refetch)


def resolve_backbone(name: str, *, verify: Verify | None = None, progress: bool = True) -> Path:
    """The local file of the released backbone ``name`` (:data:`BACKBONES`), downloaded at most once.

    The same verified, pinned, atomic and locked cache as :func:`resolve_checkpoint`, with the same
    progress bar and the same one-line failures (the URL and the path to save the file as by hand).

    Args:
        name: A key of :data:`BACKBONES`.
        verify: The layout check of a downloaded (or hand-placed, unpinned) file.
        progress: Show a progress bar on stderr (only when stderr is a terminal).

    Raises:
        DanError: Not a released backbone, the download or its verification failed, or the cached file does
            not match its pin.
    """
    if name not in BACKBONES:
        raise DanError(f"{name}: not a released backbone ({', '.join(BACKBONES)})")
    source = source_of(name)
    assert source is not None  # every catalogue name has one
    refetch = f"dan models download {name} --force"
    if source.dest.is_file():
        return _check_cached(source.dest, source.pinned, verify, refetch)
    return _fetch(source, verify, progress, refetch)


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
            f"dan: notice: {path} is not pinned (no SHA-256 in the catalogue, not downloaded by dan); it passed "
            f"the layout check and its SHA-256 {verdict.sha256} is now recorded: a changed file will be refused",
            file=sys.stderr,
        )
    return path


def _fetch(source: Source, verify: Verify | None, progress: bool, refetch: str) -> Path:
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
        if dest.is_file():  # another process fetched it while we waited
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


def _download(source: Source, verify: Verify | None, progress: bool, manual: str) -> None:
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
        transfer.check_payload(tmp, is_drive(source.url))
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
