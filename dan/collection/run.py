"""Score a collection of videos and images into rows: workers, shared batches, resumption, progress.

:func:`run_collection` hands the inputs, in order, to ``workers`` threads. Each worker takes the next
unfinished input and scores it whole into its part (:mod:`dan.collection.store`): a video frame by
frame through its own live step (:class:`dan.inference.live.LiveStep`: detection, tracks, smoothing,
as in ``dan demo``) with its own detector and a read-ahead thread decoding the sampled frames
(:mod:`dan.collection.frames`); an image as one frame, its faces numbered largest first. Every
worker's model runs go through one :class:`~dan.collection.batcher.SharedBatcher`, so faces of
several videos share batches while the others decode and detect.

Ctrl-C or SIGTERM stops the workers at their next frame: finished parts stay, the parts being
written are dropped, and the run reports ``interrupted`` (a rerun of the same command goes on from
there). An input that cannot be read (damaged, not a video, over the pixel limit) is one line in the
skipped record and the run goes on. Memory does not grow with a video's length: frames are read
ahead a few at a time, rows go to the part as they are made (Parquet: a bounded row group).
"""

from __future__ import annotations

import copy
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from dan.collection.batcher import SharedBatcher
from dan.collection.frames import SampledVideo, Sampling
from dan.collection.inputs import is_video
from dan.collection.progress import Progress
from dan.collection.rows import columns, face_row
from dan.collection.store import PartStore
from dan.collection.writers import PartWriter
from dan.demo.sources import PrefetchSource
from dan.errors import DanError
from dan.imaging import ImageReadError
from dan.inference.live import LiveStep
from dan.inference.predictor import Predictor

__all__ = ["CollectionStats", "run_collection"]


@dataclass
class CollectionStats:
    """What a collection run did.

    Attributes:
        inputs: Inputs given; ``finished``: scored in this run; ``already``: finished by an earlier run.
        skipped: ``(input, reason)`` of those that could not be read.
        frames: Frames analysed; ``rows``: rows written (one per face per analysed frame).
        errors: Frame-level problems of finished videos (frames that failed to decode, early ends).
        interrupted: Stopped by Ctrl-C or SIGTERM (finished inputs kept; rerun to go on).
        output: The file or folder holding the rows (None when nothing is complete yet).
        seconds: Wall time; ``runs``: model runs (``rows / runs`` is the mean batch).
    """

    inputs: int = 0
    finished: int = 0
    already: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    frames: int = 0
    rows: int = 0
    errors: list[str] = field(default_factory=list)
    interrupted: bool = False
    output: Path | None = None
    seconds: float = 0.0
    runs: int = 0


class _Stop(Exception):
    """Raised in a worker when the run is being stopped."""


def _frame_count(path: Path) -> int:
    from dan.imaging import quiet_opencv
    from dan.opencv import cv2

    with quiet_opencv("SILENT"):
        cap = cv2.VideoCapture(str(path))
    try:
        return max(int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), 0) if cap.isOpened() else 0
    finally:
        cap.release()


class _Collection:
    """The shared state of one run: the store, the batcher, the stop flag, the counts."""

    def __init__(
        self, predictor: Predictor, store: PartStore, sampling: Sampling, smoothing: float, batch_size: int
    ) -> None:
        self.predictor, self.store, self.sampling, self.smoothing = predictor, store, sampling, smoothing
        self.columns, self.types = columns(predictor.labels, predictor.has_va)
        self.batcher = SharedBatcher(predictor, batch_size)
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.stats = CollectionStats()
        self.progress: Progress | None = None
        self.local = threading.local()

    def _view(self) -> Predictor:
        """This thread's predictor: the shared model with a detector of its own (a detector keeps state)."""
        if not hasattr(self.local, "view"):
            view = copy.copy(self.predictor)  # shallow: the backend is shared, its runs go through the batcher
            view.detector = self.predictor.new_detector() or self.predictor.detector
            self.local.view = view
        return self.local.view

    def _tick(self, frames: int, done: bool = False) -> None:
        if self.progress is not None:
            self.progress.update(frames, done)

    def score(self, path: Path) -> None:
        """Score one input into its part (or note it as skipped); raises :class:`_Stop` when stopping."""
        if self.stop.is_set():
            raise _Stop
        start = time.perf_counter()
        self.batcher.join()
        try:
            part = PartWriter(self.store.part(path), self.columns, self.types)
            try:
                frames, errors = self._video(path, part) if is_video(path) else self._image(path, part)
            except BaseException:
                part.abort()
                raise
            part.commit()
        except (DanError, ImageReadError) as err:
            self.store.skipped(path, str(err))
            with self.lock:
                self.stats.skipped.append((str(path), str(err)))
            self._tick(0, True)
            return
        finally:
            self.batcher.leave()
        self.store.finished(path, part.rows, frames, time.perf_counter() - start, errors)
        with self.lock:
            self.stats.finished += 1
            self.stats.frames += frames
            self.stats.rows += part.rows
            self.stats.errors += errors
        self._tick(0, True)

    def _video(self, path: Path, part: PartWriter) -> tuple[int, list[str]]:
        video = SampledVideo(path, self.sampling)
        step = LiveStep(self._view(), self.smoothing, run=self.batcher)
        labels, name, frames, seen = self.predictor.labels, str(path), 0, 0
        reader = PrefetchSource(video)
        try:
            for frame in reader:
                if self.stop.is_set():
                    raise _Stop
                for face in step(frame.image):
                    part.write(
                        face_row(
                            name, frame.index, frame.time, face.track, face.box, labels, face.probabilities, face.va
                        )
                    )
                frames += 1
                self._tick(video.position - seen)
                seen = video.position
        finally:
            reader.close()
        self._tick(video.position - seen)
        return frames, list(video.errors)

    def _image(self, path: Path, part: PartWriter) -> tuple[int, list[str]]:
        view = self._view()
        image = view.load_image(path)
        boxes = view.detect(image)
        if boxes:
            probs, _, va = self.batcher(view.prepare(image, boxes))
            for j, face in enumerate(view.results(boxes, probs)):
                vaj = None if va is None else va[j]
                part.write(face_row(str(path), 0, 0.0, face.index, face.box, view.labels, face.probabilities, vaj))
        self._tick(1)
        return 1, []


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _sigterm_as_interrupt() -> Callable | int | None:
    """Make SIGTERM stop the run as Ctrl-C does; returns the handler to put back (None: not the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _interrupt)


def run_collection(
    predictor: Predictor,
    paths: list[Path],
    output: str | Path,
    fmt: str = "csv",
    sampling: Sampling | None = None,
    smoothing: float = 0.6,
    batch_size: int = 32,
    workers: int = 1,
    quiet: bool = False,
    progress_interval: float = 10.0,
) -> CollectionStats:
    """Score ``paths`` (videos and images) into ``output`` (see the module docstring).

    Args:
        predictor: Detector and model.
        paths: Inputs, in the order their rows are published.
        output: A ``.csv`` / ``.jsonl`` / ``.parquet`` file, or a folder of parts (``fmt``).
        fmt: The parts' format for a folder output.
        sampling: Which frames are analysed (default: all).
        smoothing: Weight of the past in each track's average (0: each frame on its own).
        batch_size: Faces at which a shared batch runs at once.
        workers: Inputs scored at the same time, one thread each.
        quiet: No progress.
        progress_interval: Seconds between plain progress lines when stderr is not a terminal.

    Returns:
        The run's :class:`CollectionStats`.

    Raises:
        DanError: The output cannot be written (before any input is read).
    """
    store = PartStore(output, fmt)
    run = _Collection(predictor, store, sampling or Sampling(), smoothing, batch_size)
    stats = run.stats
    stats.inputs = len(paths)
    todo = [p for p in paths if not store.done(p)]
    stats.already = len(paths) - len(todo)
    total = None if quiet else sum(_frame_count(p) if is_video(p) else 1 for p in todo)
    run.progress = Progress(total, "frame", len(todo), quiet, interval=progress_interval, prefix="dan predict")
    start = time.perf_counter()
    old = _sigterm_as_interrupt()
    pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="dan-collection")
    futures: list[Future] = []
    try:
        futures = [pool.submit(run.score, p) for p in todo]
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=0.2, return_when=FIRST_EXCEPTION)
            for f in done:
                if f.exception() is not None and not isinstance(f.exception(), _Stop):
                    raise f.exception()  # type: ignore[misc]
    except KeyboardInterrupt:
        stats.interrupted = True
    finally:
        run.stop.set()  # workers stop at their next frame and drop their unfinished parts
        for f in futures:
            f.cancel()
        pool.shutdown(wait=True)
        if old is not None:
            signal.signal(signal.SIGTERM, old)
        run.progress.close()
        stats.runs = run.batcher.runs
        stats.seconds = time.perf_counter() - start
    if not stats.interrupted:
        written = store.publish(paths)
        stats.output = store.output if (written is not None or not store.single) else None
    return stats
