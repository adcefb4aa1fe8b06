"""What a remote checkpoint spec names: a released name, an http(s) URL or an ``hf://`` path, and where it is cached.

Parsing only, no network: :func:`released_model` and :func:`is_remote` read the catalogue; :func:`source_of`
turns a spec into a :class:`Source` (the URL, its transport, the cache file, the catalogue's pin), every
part of an ``hf://`` path checked before any library sees it.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

from dan.errors import DanError, one_line
from dan.hub import transport as transfer
from dan.hub.catalogue import BACKBONES, RELEASED, ReleasedModel
from dan.paths import models_dir

__all__ = ["Source", "cached_path", "is_drive", "is_remote", "released_model", "source_of"]

DRIVE_HOSTS = ("drive.google.com", "docs.google.com", "drive.usercontent.google.com")


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


def is_drive(url: str) -> bool:
    """True for a Google Drive URL (its confirmation page and quota replies are the drive transport's)."""
    return (urlsplit(url).hostname or "") in DRIVE_HOSTS


@dataclass(frozen=True)
class Source:
    """Where a remote spec comes from and where it is cached."""

    dest: Path
    what: str  # "rafdb from https://...": for messages
    url: str
    transport: transfer.Transport
    pinned: str | None  # the catalogue's SHA-256


def source_of(text: str) -> Source | None:
    """The :class:`Source` of a released name, a URL or an ``hf://`` path; None for anything else.

    Raises:
        DanError: A malformed ``hf://`` path.
    """
    folder = models_dir()
    entry = RELEASED.get(text) or BACKBONES.get(text)
    if entry is not None:
        transport = transfer.drive if is_drive(entry.url) else transfer.http
        return Source(folder / entry.filename, f"{entry.name} from {entry.url}", entry.url, transport, entry.sha256)
    if text.startswith(("https://", "http://")):
        dest = folder / _hashed_name(PurePosixPath(urlsplit(text).path).name, text)
        return Source(dest, text, text, transfer.drive if is_drive(text) else transfer.http, None)
    if text.startswith("hf://"):
        repo_id, filename, revision = _parse_hf(text)
        try:
            from huggingface_hub import hf_hub_url

            url = hf_hub_url(repo_id, filename, revision=revision)
        except Exception as err:  # the library's own checks, or the library missing: one line
            raise DanError(f"{text}: {type(err).__name__}: {one_line(err)}") from None
        dest = folder / _hashed_name(PurePosixPath(filename).name, text)
        return Source(dest, f"{text} from {url}", url, transfer.hf_transport(repo_id, filename, revision), None)
    return None


def cached_path(spec: str | os.PathLike) -> Path | None:
    """Where the remote ``spec`` is (or would be) cached; None for anything else.

    Raises:
        DanError: A malformed ``hf://`` path.
    """
    source = source_of(os.fspath(spec))
    return None if source is None else source.dest
