"""onnxruntime-web's browser files at one pinned version, fetched once into dan's cache and verified.

Source: the npm package ``onnxruntime-web`` at :data:`VERSION`, fetched by name with the ordinary npm
client (``npm pack onnxruntime-web@VERSION`` in a temporary folder, so npm's own registry settings and
proxies apply), or a ``.tgz`` of that package the user names (``--ort-web FILE.tgz``). Either way the
tarball must match the pinned SHA-512 :data:`INTEGRITY` (npm's ``dist.integrity`` of that version)
before anything of it is used. Only the files the page loads are kept (:data:`FILES`: the WASM SIMD
threaded build for the CPU and the WebGPU build, each an ES module and its ``.wasm``) with the MIT
licence, in ``$DAN_HOME/ort-web/VERSION/``; the folder appears whole (written beside it, then renamed)
with a ``SHA256SUMS`` the next use checks. No network, no npm and no copy: one line saying what to fetch
and where to put it.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from dan.errors import DanError, one_line
from dan.hub.records import EntryLock, sha256_file
from dan.paths import dan_home

__all__ = ["FILES", "INTEGRITY", "VERSION", "ort_web_files"]

VERSION = "1.31.1"
INTEGRITY = "sha512-5GeH+bWQ+HxM10z7erGlsWqryrwMbSvm/1tkIsKTT48g0fI19VXVVC435t4t7VsPdSQeS7NmuZPXrQ73k82URw=="
"""npm's ``dist.integrity`` of ``onnxruntime-web@VERSION``: SHA-512 of the package tarball, base64."""

FILES = (
    "ort.wasm.min.mjs",  # the CPU build's API (WASM SIMD, threads when the page is cross-origin isolated)
    "ort-wasm-simd-threaded.mjs",
    "ort-wasm-simd-threaded.wasm",
    "ort.webgpu.min.mjs",  # the WebGPU build's API (its WASM also runs the CPU kernels)
    "ort-wasm-simd-threaded.asyncify.mjs",
    "ort-wasm-simd-threaded.asyncify.wasm",
)
"""What the page loads, from the package's ``dist/``."""

LICENSE = """MIT License

Copyright (c) Microsoft Corporation.

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
"""
"""onnxruntime's licence (the package declares ``"license": "MIT"`` and ships no licence file)."""

PACKAGE = f"onnxruntime-web@{VERSION}"
SUMS = "SHA256SUMS"


def cache_dir() -> Path:
    """Where the verified files live: ``$DAN_HOME/ort-web/VERSION``."""
    return dan_home() / "ort-web" / VERSION


def _integrity(path: Path) -> str:
    digest = hashlib.sha512()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return "sha512-" + base64.b64encode(digest.digest()).decode()


def _manual() -> str:
    return (
        f"fetch the npm package {PACKAGE} (npm pack {PACKAGE}) on a machine with the npm registry and pass "
        f"--ort-web onnxruntime-web-{VERSION}.tgz, or extract its dist/ files ({', '.join(FILES)}) into {cache_dir()}"
    )


def _npm_pack(work: Path) -> Path:
    """``npm pack onnxruntime-web@VERSION`` in ``work``; the tarball's path."""
    npm = shutil.which("npm")
    if npm is None:
        raise DanError(f"onnxruntime-web is not cached and npm is not installed: {_manual()}")
    try:
        done = subprocess.run(
            [npm, "pack", PACKAGE, "--silent"], cwd=work, capture_output=True, text=True, timeout=600, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise DanError(f"npm pack {PACKAGE} failed ({one_line(err, 120)}): {_manual()}") from None
    found = sorted(work.glob("onnxruntime-web-*.tgz"))
    if done.returncode != 0 or not found:
        reason = one_line(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}")
        raise DanError(f"npm pack {PACKAGE} failed ({reason}): {_manual()}")
    return found[0]


def _extract(tgz: Path, dest: Path) -> None:
    """The pinned package's :data:`FILES`, its licence and ``SHA256SUMS`` into the new folder ``dest``."""
    got = _integrity(tgz)
    if got != INTEGRITY:
        raise DanError(f"{tgz}: not {PACKAGE}: its SHA-512 is {got}, the pinned one {INTEGRITY}")
    try:
        with tarfile.open(tgz, "r:gz") as tar:
            for name in FILES:
                member = tar.getmember(f"package/dist/{name}")
                source = tar.extractfile(member)
                if source is None:
                    raise KeyError(name)
                with source, open(dest / name, "wb") as out:
                    shutil.copyfileobj(source, out)
    except (tarfile.TarError, KeyError, OSError, EOFError) as err:
        raise DanError(f"{tgz}: cannot read {PACKAGE}'s files: {one_line(err, 120)}") from None
    (dest / "LICENSE").write_text(LICENSE, encoding="utf-8")
    sums = "".join(f"{sha256_file(dest / n)}  {n}\n" for n in (*FILES, "LICENSE"))
    (dest / SUMS).write_text(sums, encoding="utf-8")


def _verified(folder: Path) -> bool:
    """The cached folder is whole: every file there with the SHA-256 its ``SHA256SUMS`` recorded."""
    try:
        lines = (folder / SUMS).read_text(encoding="utf-8").splitlines()
        pairs = [line.split("  ", 1) for line in lines if line]  # "<sha256>  <name>"
        sums = {name: digest for digest, name in pairs}
        return set(sums) == {*FILES, "LICENSE"} and all(sha256_file(folder / n) == h for n, h in sums.items())
    except (OSError, ValueError):
        return False


def ort_web_files(tgz: str | os.PathLike | None = None) -> Path:
    """The folder of onnxruntime-web's verified files, fetched (or taken from ``tgz``) and cached on first use.

    Args:
        tgz: The ``onnxruntime-web`` npm tarball of :data:`VERSION` to use instead of fetching it.

    Returns:
        ``$DAN_HOME/ort-web/VERSION``, holding :data:`FILES`, ``LICENSE`` and ``SHA256SUMS``.

    Raises:
        DanError: The tarball is not the pinned one, npm cannot fetch it (one line saying what to fetch and
            where to put it), or the cache cannot be written.
    """
    folder = cache_dir()
    if tgz is None and _verified(folder):
        return folder
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DanError(f"{folder.parent}: cannot create the cache folder: {err.strerror or err}") from None
    lock = EntryLock(folder)
    lock.acquire(lambda: print(f"waiting for another dan fetching {PACKAGE}", flush=True))
    try:
        if tgz is None and _verified(folder):  # another process fetched it meanwhile
            return folder
        with tempfile.TemporaryDirectory(prefix=".ort-web-", dir=folder.parent) as tmp:
            work = Path(tmp)
            source = Path(tgz) if tgz is not None else _npm_pack(work)
            if not source.is_file():
                raise DanError(f"{source}: no such file (--ort-web wants the {PACKAGE} npm tarball)")
            new = work / "files"
            new.mkdir()
            _extract(source, new)
            with contextlib.suppress(FileNotFoundError):
                shutil.rmtree(folder)  # a damaged copy: replaced whole
            os.replace(new, folder)
    except OSError as err:
        raise DanError(f"{folder}: cannot write onnxruntime-web's files: {one_line(err, 120)}") from None
    finally:
        lock.release()
    return folder
