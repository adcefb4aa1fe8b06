"""``dan data pack``: any data set dan reads, written once as LitData chunks for training at scale.

Each split is read through its format's record (:mod:`dan.data.formats`) exactly as training reads it,
and written with LitData's chunk writer (``litdata.streaming.writer.BinaryWriter``, what
``litdata.optimize`` runs in each of its workers) in the split's order, one item per sample:
``index``, ``image`` (the file's bytes as stored, never re-encoded; an in-memory FER2013/FERPlus face
as a lossless PNG), ``label``, and where the split has them ``box`` (the face box, ``-1`` s for none),
``va`` (valence, arousal; NaN where unknown) and ``soft`` (vote fractions). Writing in this process
rather than through ``optimize``'s worker pool keeps the order (sample ``i`` is item ``i``), dan's own
progress lines, and no account advertisement.

Layout of ``OUTPUT`` (a folder or ``s3://BUCKET/PREFIX``)::

    dan-pack.json            written last: format, class names, splits, roles, face crop, va
    SPLIT/index.json         LitData's chunk index
    SPLIT/chunk-0-N.bin      the chunks
    SPLIT/dan-split.json     every sample's source name, label, box, va and soft targets

A killed pack leaves nothing that looks finished: a local pack is built in a hidden folder beside
``OUTPUT`` and renamed into place at the end; a pack to object storage deletes ``dan-pack.json``
first and writes it last, and a reader refuses a prefix without it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

import numpy as np

from dan.data.formats import DataFormat, get_format
from dan.data.options import ReadOptions
from dan.data.packed_store import Location
from dan.data.samples import SplitData
from dan.errors import DanError
from dan.opencv import cv2

__all__ = ["MANIFEST", "PACK_VERSION", "SPLIT_FILE", "pack_dataset"]

MANIFEST = "dan-pack.json"
SPLIT_FILE = "dan-split.json"
PACK_VERSION = 1
_BLOCK = 256  # samples read ahead by the reading threads


def _image_bytes(data: SplitData) -> Iterator[bytes]:
    """Every sample's image as stored (files read by a few threads, a block at a time)."""
    if data.pixels is not None:
        for face in data.pixels:
            ok, png = cv2.imencode(".png", face)
            if not ok:
                raise DanError(f"{data.source}: could not encode an in-memory face as PNG")
            yield png.tobytes()
        return

    def read(source: str) -> bytes:
        try:
            return Path(source).read_bytes()
        except OSError as err:
            raise DanError(f"{source}: {err.strerror or err}") from None

    with ThreadPoolExecutor(8) as pool:
        for start in range(0, len(data), _BLOCK):
            yield from pool.map(read, [s.source for s in data.samples[start : start + _BLOCK]])


def _split_record(data: SplitData) -> dict:
    """What ``SPLIT/dan-split.json`` holds: every sample's source, label, box, va and soft targets."""
    va = data.va
    return {
        "split": data.split,
        "source": data.source,
        "count": len(data),
        "sources": [s.source for s in data.samples],
        "labels": data.labels,
        "boxes": [list(s.box) if s.box is not None else None for s in data.samples],
        "va": va.tolist() if va is not None else None,
        "soft": data.soft.tolist() if data.soft is not None else None,
    }


def _write_split(data: SplitData, folder: Path, chunk_bytes: str, say: Callable[[str], None]) -> None:
    """Write one split's chunks, LitData index and ``dan-split.json`` into ``folder``."""
    from litdata.streaming.writer import BinaryWriter

    folder.mkdir(parents=True)
    writer = BinaryWriter(str(folder), chunk_bytes=chunk_bytes)
    va, soft = data.va, data.soft
    boxes = any(s.box is not None for s in data.samples)
    n, started, shown = len(data), time.monotonic(), 0.0
    for i, image in enumerate(_image_bytes(data)):
        sample = data.samples[i]
        item: dict = {"index": i, "image": image, "label": sample.label}
        if boxes:
            item["box"] = np.asarray(sample.box if sample.box is not None else (-1, -1, -1, -1), np.int32)
        if va is not None:
            item["va"] = va[i]
        if soft is not None:
            item["soft"] = np.asarray(soft[i], np.float32)
        writer[i] = item
        now = time.monotonic()
        if now - shown >= 2.0 or i + 1 == n:
            shown = now
            rate = (i + 1) / max(now - started, 1e-9)
            say(f"  {data.split}: {i + 1}/{n} samples ({rate:.0f}/s)")
    writer.done()
    writer.merge(1)
    (folder / SPLIT_FILE).write_text(json.dumps(_split_record(data)))


def _splits_to_pack(fmt: DataFormat, root: str, splits: list[str] | None, options: ReadOptions) -> list[str]:
    """The on-disk splits to pack: those named, else every split and every split a role names (CK+'s ``train``)."""
    if splits:
        return list(dict.fromkeys(fmt.resolve_split(root, s, options) for s in splits))
    roles = [s for s in fmt.role_splits(root, options).values() if s is not None]
    return list(dict.fromkeys([*fmt.split_names(root, options), *roles]))


def _manifest(fmt: DataFormat, root: str, options: ReadOptions, counts: dict[str, int]) -> dict:
    roles = {role: split if split in counts else None for role, split in fmt.role_splits(root, options).items()}
    return {
        "dan_pack": PACK_VERSION,
        "format": fmt.name,
        "title": fmt.title,
        "source_root": str(root),
        "label_names": list(fmt.label_names(root, options)),
        "splits": counts,
        "listed": [s for s in fmt.split_names(root, options) if s in counts],  # what dan data check reads
        "roles": roles,
        "face_crop": asdict(fmt.crop(root, options)),
        "va": fmt.can_have_va(root, options),
        "eval_labels": fmt.eval_labels,
        "options": asdict(options),
    }


def pack_dataset(
    format: str,
    root: str | Path,
    output: str | Path,
    splits: list[str] | None = None,
    options: ReadOptions | None = None,
    chunk_bytes: str = "64MB",
    say: Callable[[str], None] = print,
) -> dict:
    """Pack a data set's splits into LitData chunks at ``output`` (see the module docstring).

    Args:
        format: The source layout (:data:`dan.vocab.FORMAT_NAMES`).
        root: The source data set's root.
        output: A new local folder, or ``s3://BUCKET/PREFIX``.
        splits: Splits to pack (names or roles); default all of them.
        options: How to read the source (class count, RAF-DB images, CK+ folds, ...).
        chunk_bytes: Target chunk size (LitData's ``chunk_bytes``).
        say: Where progress lines go.

    Returns:
        The manifest written as ``dan-pack.json``.

    Raises:
        DanError: A problem with the source (before anything is written), an existing output folder,
            or the object store (one line each).
    """
    options = options or ReadOptions()
    fmt, root = get_format(format, "--format"), str(root)
    if fmt.name == "packed":
        raise DanError("--format packed: the data is packed already")
    names = _splits_to_pack(fmt, root, splits, options)
    out = Location(output)
    final = Path(out.url)
    if out.remote:
        out.delete(MANIFEST)  # from here on the prefix does not look finished
        stage = Path(tempfile.mkdtemp(prefix="dan-pack-"))
    else:
        if final.exists() and (not final.is_dir() or any(final.iterdir())):
            raise DanError(f"{final}: exists; remove it or choose another --output")
        final.parent.mkdir(parents=True, exist_ok=True)
        stage = final.parent / f".{final.name}.packing-{os.getpid()}"
        shutil.rmtree(stage, ignore_errors=True)
    counts: dict[str, int] = {}
    try:
        for split in names:
            data = fmt.read_split(root, split, options)
            say(f"packing {fmt.title} {split}: {len(data)} samples -> {out.join(split)}")
            _write_split(data, stage / split, chunk_bytes, say)
            counts[split] = len(data)
            if out.remote:
                for file in sorted((stage / split).iterdir()):
                    out.put_file(file, f"{split}/{file.name}")
        manifest = _manifest(fmt, root, options, counts)
        text = json.dumps(manifest, indent=1).encode()
        if out.remote:
            out.put_bytes(MANIFEST, text)
        else:
            (stage / MANIFEST).write_bytes(text)
            if final.exists():
                final.rmdir()
            os.replace(stage, final)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    say(f"packed {sum(counts.values())} samples in {len(counts)} splits to {out.url}")
    return manifest
