"""Many images through one :class:`~dan.inference.predictor.Predictor`: one result per image, in input order.

:func:`predict_images` is what ``dan predict`` runs. Two paths give the same results (to float32
rounding of the probabilities, which batch composition may change in the last bits):

- **sequential** (``workers=0``): one image at a time in the calling thread: read, detect, crop, and
  the model on that image's faces (the path ``dan predict`` had before);
- **batched** (``workers >= 1``): a pool of threads reads, detects (YuNet) and crops/aligns each image
  (each thread with its own detector: a detector keeps state between calls); the calling thread
  gathers the prepared faces of consecutive images until ``batch_size`` faces are waiting and runs
  the model once on them, while the threads prepare the next images. OpenCV's decoding, detection
  and warps, PIL's resize and the model all release the GIL, so the stages overlap on separate
  cores, and the model runs on full batches (on the CPU, a batch of 32 costs about 25 % less per face
  than one face at a time; on a GPU far more).

Memory is bounded whatever the number of images: at most ``prefetch`` images are being prepared or
waiting ahead of the model, and each holds only its faces' model inputs (N, 3, S, S), never the
photo's pixels. An unreadable image is one result with ``error`` set (its one-line message), and the
run goes on, as before.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dan.imaging import ImageReadError
from dan.inference.detectors import Detection, Detector
from dan.inference.predictor import FaceResult, Predictor

__all__ = ["DEFAULT_BATCH_SIZE", "ImageResult", "default_workers", "predict_images"]

DEFAULT_BATCH_SIZE = 32
"""Faces per model run of the batched path."""


def default_workers() -> int:
    """Threads that read, detect and crop: one per core, 1 to 4.

    The model's own (torch intra-op) threads use every core too, yet decoding and YuNet release the GIL
    and fill the model's gaps: on a 2-core AVX2 EPYC (``python -m scripts.bench.predict --workers 1 2``,
    200 photos, 2026-12-03) 2 threads gave 1.58x the sequential path's faces/s and 1 thread 1.29x.
    """
    return max(1, min(4, os.cpu_count() or 2))


@dataclass
class ImageResult:
    """The faces of one image, or why it could not be read.

    Attributes:
        path: The image file as given.
        faces: One :class:`FaceResult` per face, largest first (empty when none was found or on error).
        width: Image width in pixels (0 on error).
        height: Image height in pixels (0 on error).
        error: The one-line message of an unreadable image, else None.
    """

    path: Path
    faces: list[FaceResult] = field(default_factory=list)
    width: int = 0
    height: int = 0
    error: str | None = None


@dataclass
class _Prepared:
    """One image read, detected and cropped in a worker thread: what the model step needs."""

    path: Path
    width: int = 0
    height: int = 0
    boxes: list[Detection] = field(default_factory=list)
    inputs: np.ndarray | None = None  # (N, 3, S, S) float32, N = len(boxes)
    error: str | None = None


def predict_images(
    predictor: Predictor,
    paths: Iterable[str | os.PathLike],
    batch_size: int = DEFAULT_BATCH_SIZE,
    workers: int | None = None,
    prefetch: int | None = None,
) -> Iterator[ImageResult]:
    """Label the faces of every image, one :class:`ImageResult` per path, in the order of ``paths``.

    Args:
        predictor: The model, detector and crop settings.
        paths: Image files (read lazily: a generator is fine).
        batch_size: Faces per model run (batched path); an image's faces are never split across
            results, and a run never holds more than ``batch_size`` faces.
        workers: Threads that read, detect and crop (None: :func:`default_workers`; 0: the sequential
            path, everything in this thread, one image at a time).
        prefetch: Images prepared ahead of the model at most (None: twice ``batch_size``, at least
            four per worker): what bounds the memory.

    Raises:
        ValueError: ``batch_size`` < 1, ``workers`` < 0 or ``prefetch`` < 1.
    """
    workers = default_workers() if workers is None else workers
    if batch_size < 1 or workers < 0 or (prefetch is not None and prefetch < 1):
        raise ValueError(f"batch_size {batch_size}, workers {workers}, prefetch {prefetch}: out of range")
    if workers == 0:
        return _sequential(predictor, paths)
    return _batched(predictor, paths, batch_size, workers, prefetch or max(2 * batch_size, 4 * workers))


def _sequential(predictor: Predictor, paths: Iterable[str | os.PathLike]) -> Iterator[ImageResult]:
    for path in paths:
        try:
            frame = predictor.load_image(path)
        except ImageReadError as err:
            yield ImageResult(Path(path), error=str(err))
            continue
        yield ImageResult(Path(path), predictor.predict(frame), frame.shape[1], frame.shape[0])


class _Preparer:
    """Reads, detects and crops one image in whichever pool thread calls it (a detector per thread)."""

    def __init__(self, predictor: Predictor) -> None:
        self.predictor = predictor
        self.local = threading.local()
        self.lock = threading.Lock()  # for a detector given as an object: one thread at a time

    def _detector(self) -> Detector | None:
        if not hasattr(self.local, "detector"):
            self.local.detector = self.predictor.new_detector()
        return self.local.detector

    def __call__(self, path: str | os.PathLike) -> _Prepared:
        try:
            frame = self.predictor.load_image(path)
        except ImageReadError as err:
            return _Prepared(Path(path), error=str(err))
        detector = self._detector()
        if detector is None:
            with self.lock:
                boxes = self.predictor.detect(frame)
        else:
            boxes = detector.detect(frame)
        inputs = self.predictor.prepare(frame, boxes) if boxes else None
        return _Prepared(Path(path), frame.shape[1], frame.shape[0], boxes, inputs)


def _classify(predictor: Predictor, group: Sequence[_Prepared], batch_size: int) -> Iterator[ImageResult]:
    """Run the model on the faces of ``group`` (in runs of at most ``batch_size``) and yield its results."""
    inputs = [g.inputs for g in group if g.inputs is not None]
    probs = np.zeros((0, len(predictor.labels)), np.float32)
    va = np.zeros((0, 2), np.float32) if predictor.has_va else None  # a model with valence/arousal: (N, 2)
    if inputs:
        x = np.concatenate(inputs)  # (N, 3, S, S): every face of the group, image after image
        runs = [predictor.run_outputs(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
        probs = np.concatenate([r[0] for r in runs])
        if va is not None:
            va = np.concatenate([r[2] for r in runs if r[2] is not None])
    start = 0
    for g in group:
        n = len(g.boxes)
        va_g = None if va is None else va[start : start + n]
        faces = predictor.results(g.boxes, probs[start : start + n], va=va_g) if n else []
        start += n
        yield ImageResult(g.path, faces, g.width, g.height, g.error)


def _batched(
    predictor: Predictor, paths: Iterable[str | os.PathLike], batch_size: int, workers: int, prefetch: int
) -> Iterator[ImageResult]:
    prepare = _Preparer(predictor)
    todo = iter(paths)
    pending: deque[Future[_Prepared]] = deque()  # submitted in input order, taken in input order
    pool = ThreadPoolExecutor(workers, thread_name_prefix="dan-prepare")
    try:

        def fill() -> None:
            while len(pending) < prefetch:
                path = next(todo, None)
                if path is None:
                    return
                pending.append(pool.submit(prepare, path))

        fill()
        group: list[_Prepared] = []
        faces = 0
        while pending:
            item = pending.popleft().result()  # an unexpected error in a thread is raised here, as sequentially
            fill()
            group.append(item)
            faces += len(item.boxes)
            if faces >= batch_size:
                yield from _classify(predictor, group, batch_size)
                group, faces = [], 0
        yield from _classify(predictor, group, batch_size)
    finally:  # also when the caller stops early: nothing more is started, the running ones finish
        for future in pending:
            future.cancel()
        pool.shutdown(wait=True)
