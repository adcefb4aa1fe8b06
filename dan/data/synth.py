"""The synthetic data set: procedurally drawn faces written in the RAF-DB basic layout.

``generate(out_dir)`` writes::

    OUT/EmoLabel/list_patition_label.txt          "train_00001.jpg 4" ..., labels 1..7 (RAF-DB order)
    OUT/EmoLabel/valence_arousal.txt              "train_00001.jpg 0.6213 0.3087" ...: each face's valence and arousal
    OUT/Image/aligned/train_00001_aligned.jpg     size x size JPEG faces
    OUT/preview.jpg                               a few labelled examples per class
    OUT/dan-synth.json                            how it was made (written last: the data set is complete)

so the RAF-DB reader (``format: rafdb``) trains on it. ``dan-synth.json`` also tells training that
the faces are generated, so checkpoints trained on them say so (and ``dan predict`` warns that such
a model is not meant for photographs). Every image has its own seed derived from
``(seed, index)``, so the output is byte-identical for a seed whatever the number of workers.

Valence and arousal (:func:`dan.synthface.valence_arousal`) come from each face's expression and
the intensity it was drawn with, plus noise from a generator of their own (``(seed, index, label, 1)``),
so the images are the same pixels as without them; the RAF-DB reader reads the side file when it is there.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dan.data.rafdb import RAFDB_LIST, RAFDB_VA
from dan.errors import DanError
from dan.fileio import atomic_write, check_writable
from dan.opencv import cv2
from dan.synthface import draw_face_with_intensity, render_image, valence_arousal
from dan.vocab import LABEL_SETS

__all__ = [
    "MANIFEST",
    "SynthResult",
    "generate",
    "make_preview",
    "read_manifest",
    "render_item",
]

MANIFEST = "dan-synth.json"

_NAMES = LABEL_SETS["rafdb"]


@dataclass(frozen=True)
class SynthResult:
    """What :func:`generate` wrote.

    Attributes:
        out_dir: The data set root.
        train: Number of training images.
        test: Number of test images.
        seconds: Wall time taken.
        preview: Path of the preview grid.
    """

    out_dir: Path
    train: int
    test: int
    seconds: float
    preview: Path


def render_item(seed: int, index: int, label: int, size: int = 100) -> tuple[np.ndarray, tuple[float, float]]:
    """:func:`render_image`'s image (the same pixels) and its ``(valence, arousal)``, deterministic."""
    image, intensity = draw_face_with_intensity(label, np.random.default_rng([seed, index, label]), size)
    return image, valence_arousal(label, intensity, np.random.default_rng([seed, index, label, 1]))


def _plan(per_class: int, test_fraction: float, seed: int) -> list[tuple[str, int]]:
    """``(list-file name, label index)`` for every image, classes interleaved in a seeded order."""
    n_test = int(round(per_class * test_fraction))
    rng = np.random.default_rng([seed, 7])
    entries: list[tuple[str, int]] = []
    for split, count in (("train", per_class - n_test), ("test", n_test)):
        labels = np.repeat(np.arange(len(_NAMES)), count)
        rng.shuffle(labels)
        entries += [(f"{split}_{i + 1:05d}.jpg", int(lab)) for i, lab in enumerate(labels)]
    return entries


def _write_chunk(args: tuple[int, int, list[tuple[int, str, int]], str, int]) -> list[tuple[float, float]]:
    """Draw and write the images of ``items``; their ``(valence, arousal)``, in order."""
    seed, size, items, image_dir, quality = args
    cv2.setNumThreads(1)
    va: list[tuple[float, float]] = []
    for index, name, label in items:
        rgb, item_va = render_item(seed, index, label, size)
        va.append(item_va)
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise DanError(f"{image_dir}: JPEG encoding failed for {name}")
        stem = name.rsplit(".", 1)[0]
        (Path(image_dir) / f"{stem}_aligned.jpg").write_bytes(buf.tobytes())
    return va


def make_preview(seed: int, size: int = 100, per_class: int = 6) -> np.ndarray:
    """A labelled grid (one row per class, ``per_class`` columns) of freshly drawn examples, RGB."""
    cell, label_w = max(size, 64), 110
    grid = np.full((cell * len(_NAMES), label_w + cell * per_class, 3), 255, np.uint8)
    for label, name in enumerate(_NAMES):
        y = label * cell
        cv2.putText(grid, name, (6, y + cell // 2 + 5), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        for k in range(per_class):
            img = render_image(seed + 1_000_003, k, label, size)
            grid[y : y + cell, label_w + k * cell : label_w + (k + 1) * cell] = cv2.resize(img, (cell, cell))
    return grid


def generate(
    out_dir: str | Path,
    per_class: int = 1000,
    size: int = 100,
    seed: int = 0,
    test_fraction: float = 0.2,
    workers: int | None = None,
    quality: int = 92,
) -> SynthResult:
    """Write a synthetic RAF-DB-layout data set.

    Args:
        out_dir: Output root (created; existing list file and images are overwritten).
        per_class: Images per class, train and test together.
        size: Image side in pixels (RAF-DB aligned images are 100).
        seed: Seed; the same seed gives byte-identical files.
        test_fraction: Share of each class written to the test split.
        workers: Worker processes; default the CPU count, 0 or 1 draws in this process.
        quality: JPEG quality.

    Returns:
        Counts, time taken and the preview path.

    Raises:
        DanError: Invalid arguments or an output folder that cannot be written.
    """
    if per_class < 1 or not 16 <= size <= 1024 or not 0.0 <= test_fraction < 1.0:
        raise DanError("synth: need per_class >= 1, 16 <= size <= 1024 and 0 <= test_fraction < 1")
    start = time.perf_counter()
    out = Path(out_dir)
    image_dir = out / "Image" / "aligned"
    try:
        image_dir.mkdir(parents=True, exist_ok=True)
        (out / "EmoLabel").mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DanError(f"{out}: cannot create the output folder: {err.strerror or err}") from None
    probes = (image_dir / "train_00001_aligned.jpg", out / RAFDB_LIST, out / RAFDB_VA, out / MANIFEST)
    for probe in probes:  # each folder written
        check_writable(probe, "data set")  # a file can be created there (a read-only mount passes the mkdir)
    entries = _plan(per_class, test_fraction, seed)
    items = [(i, name, label) for i, (name, label) in enumerate(entries)]
    workers = (os.cpu_count() or 1) if workers is None else workers
    chunk = max(1, min(256, len(items) // max(workers * 4, 1)))
    jobs = [(seed, size, items[i : i + chunk], str(image_dir), quality) for i in range(0, len(items), chunk)]
    if workers <= 1 or len(jobs) == 1:
        chunks = [_write_chunk(job) for job in jobs]
    else:
        # spawn, not fork: forking a process that runs threads (torch, a test runner) can deadlock
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            chunks = list(pool.map(_write_chunk, jobs))  # in job order, whatever finished first
    va = [v for chunk in chunks for v in chunk]  # one per entry, in list order
    lines = "".join(f"{name} {label + 1}\n" for name, label in entries)
    atomic_write(out / RAFDB_LIST, lines, "list file")
    va_lines = "".join(f"{name} {v:.4f} {a:.4f}\n" for (name, _), (v, a) in zip(entries, va, strict=True))
    atomic_write(out / RAFDB_VA, va_lines, "valence/arousal file")
    preview = out / "preview.jpg"
    ok, jpg = cv2.imencode(".jpg", cv2.cvtColor(make_preview(seed, size), cv2.COLOR_RGB2BGR))
    atomic_write(preview, jpg.tobytes(), "preview")
    n_test = sum(1 for name, _ in entries if name.startswith("test"))
    settings = {"per_class": per_class, "size": size, "seed": seed, "test_fraction": test_fraction, "quality": quality}
    manifest = {"generator": "dan synth", **settings, "train": len(entries) - n_test, "test": n_test}
    manifest["valence_arousal"] = RAFDB_VA
    atomic_write(out / MANIFEST, json.dumps(manifest, indent=2) + "\n", "manifest")
    return SynthResult(out, len(entries) - n_test, n_test, time.perf_counter() - start, preview)


def read_manifest(root: str | Path) -> dict | None:
    """The ``dan-synth.json`` of a generated data set (None for any other data set, or a broken file)."""
    try:
        data = json.loads((Path(root) / MANIFEST).read_text(encoding="utf-8-sig"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("generator") == "dan synth" else None
