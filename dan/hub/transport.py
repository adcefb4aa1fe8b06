"""How :mod:`dan.hub` fetches bytes: the transports (plain HTTP, Google Drive through gdown, Hugging
Face through huggingface_hub), the check that a payload is a file and not a web page, and the one line
that says why a download failed, whatever raised.

A transport writes the remote file into an open binary file and advances a tqdm bar; it raises
:class:`Failure` (a reason already phrased for the user) or the library's own exception.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from dan.errors import DanError, one_line

__all__ = ["Failure", "Transport", "check_payload", "drive", "hf_transport", "http", "reason"]

TIMEOUT = (15.0, 60.0)  # seconds: connect, then between bytes
_CHUNK = 1 << 20

Transport = Callable[[str, BinaryIO, Any], None]  # (url, open temporary file, tqdm bar)


class Failure(Exception):
    """A download problem already phrased for the user."""


def check_payload(path: Path, drive: bool) -> None:
    """Refuse an empty file and a web page (Drive's refusal page is read for its reason).

    Raises:
        Failure: One of those.
    """
    with open(path, "rb") as f:
        head = f.read(1 << 16)  # enough of a web page to find Drive's reason
    if not head:
        raise Failure("the server sent an empty file")
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if start.startswith((b"<html", b"<!doctype")):
        if drive:
            raise Failure(_drive_refusal(head.decode("utf-8", "replace")))
        raise Failure("the server sent a web page (HTML), not the file")


def _drive_refusal(text: str) -> str:
    flat = " ".join(text.split()).lower()
    if "too many users" in flat or "quota" in flat:
        return (
            "Google Drive refuses the download: too many users have downloaded it recently (quota exceeded), try later"
        )
    if "cannot retrieve the public link" in flat or "<html" in flat or "<!doctype" in flat:
        return "Google Drive refuses the download (quota exceeded, too many users, or the file is no longer shared)"
    return f"Google Drive refuses the download: {one_line(text)}"


def reason(err: BaseException, tmp: Path) -> str:
    """One line saying what went wrong, whatever raised it."""
    import requests

    text = " ".join(str(err).split())
    if isinstance(err, KeyboardInterrupt):
        return "interrupted"
    if isinstance(err, Failure):
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


def http(url: str, f: BinaryIO, bar: Any) -> None:
    """Plain HTTP(S) GET, streamed; a body shorter than its ``Content-Length`` is a :class:`Failure`."""
    import requests

    from dan import __version__

    headers = {"Accept-Encoding": "identity", "User-Agent": f"dan/{__version__}"}
    got, expected = 0, None
    with requests.get(url, stream=True, timeout=TIMEOUT, headers=headers) as r:
        if r.status_code >= 400:
            raise Failure(f"HTTP {r.status_code} {r.reason}")
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
        raise Failure(f"the transfer ended early: received {got:,} of {expected:,} bytes")
    if expected is None and got == 0:
        raise Failure("the server sent an empty file")


def drive(url: str, f: BinaryIO, bar: Any) -> None:
    """A Google Drive file through gdown (which follows Drive's confirmation page)."""
    import gdown

    def advance(done: int, total: int | None) -> None:
        if total and bar.total != total:
            bar.reset(total=total)
            bar.update(done)
        else:
            bar.update(done - bar.n)

    gdown.download(url=url, output=f, quiet=True, progress=advance, timeout=TIMEOUT)


def hf_transport(repo_id: str, filename: str, revision: str | None) -> Transport:
    """A transport fetching one file of a Hugging Face repository (into its cache) and copying it."""

    def fetch(url: str, f: BinaryIO, bar: Any) -> None:
        from huggingface_hub import hf_hub_download

        local = hf_hub_download(repo_id, filename, revision=revision)
        with open(local, "rb") as src:
            shutil.copyfileobj(src, f, _CHUNK)

    return fetch
