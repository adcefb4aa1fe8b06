"""The demo loop: read frames, find and track faces, label them, draw, show and save.

Per frame: the live step (:class:`dan.inference.live.LiveStep`, the one ``dan serve`` runs too)
detects faces (every ``detect_every`` frames; in between the tracked boxes are reused), matches them
to tracks by IoU, runs the model once on all faces (every ``classify_every`` frames; new faces at
once) and smooths each track's probabilities; then the loop draws, writes the frame to the output
video, the rows to the CSV, and shows it in a window when one can be opened. Frames are RGB up to
the drawing, which converts each to BGR once (OpenCV's order for its writer and window). Decoding runs in a
background thread ahead of the loop and encoding in one behind it, so both overlap with the model.
Ctrl-C ends the loop cleanly: the video and CSV are finished in ``finally``, complete up to the last
processed frame; SIGTERM does the same. A full disk, an error that stops the loop, or a run that
processed no frame publishes nothing (a previous video or CSV stays as it was): no file under the
name asked for unless the run produced it whole.
"""

from __future__ import annotations

import errno
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

import numpy as np

from dan.demo.outputs import CsvStream
from dan.demo.overlay import annotate_face, draw_attention, draw_status, draw_va
from dan.demo.sources import Frame, FrameSource, PrefetchSource, open_source
from dan.demo.window import Window, window_support
from dan.demo.writer import VideoWriter, check_output
from dan.inference.live import STEP_STAGES, LiveFace, LiveStep
from dan.inference.predictor import Predictor
from dan.opencv import cv2

__all__ = ["DemoStats", "STAGES", "csv_header", "run_demo"]

STAGES = ("read", "detect", "crop", "model", "draw", "write", "display")


@dataclass
class DemoStats:
    """What a demo run did.

    Attributes:
        frames: Frames processed.
        faces: Face rows produced (one per face per frame).
        errors: One-line messages of everything that failed (bad files, undecodable frames...).
        interrupted: The run was stopped by Ctrl-C.
        seconds: Wall time of the loop.
        stage_seconds: Time per stage (``STAGES``); ``read`` is the time spent waiting for frames.
        video: ``(frames, width, height, fps)`` read back from the output video, or None.
        csv_rows: Rows written to the CSV.
        csv_written: Whether the CSV was published (not when no frame was processed).
        displayed: Whether a window was shown.
    """

    frames: int = 0
    faces: int = 0
    errors: list[str] = field(default_factory=list)
    interrupted: bool = False
    seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    video: tuple[int, int, int, float] | None = None
    csv_rows: int = 0
    csv_written: bool = False
    displayed: bool = False

    @property
    def fps(self) -> float:
        """Frames per second over the whole loop."""
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _sigterm_as_interrupt():
    """Make SIGTERM stop the loop as Ctrl-C does (outputs finished); returns the handler to put back."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise_interrupt)


def csv_header(labels: tuple[str, ...], va: bool = False) -> list[str]:
    """Columns of the demo CSV: frame, time, track, x, y, w, h, label, confidence, one per class, and
    ``valence``, ``arousal`` for a model with that output (``va``)."""
    return [
        "frame",
        "time",
        "track",
        "x",
        "y",
        "w",
        "h",
        "label",
        "confidence",
        *labels,
        *(("valence", "arousal") if va else ()),
    ]


class _Sinks:
    """Where drawn frames go: the video (opened at the first frame), the CSV rows, the window."""

    def __init__(
        self,
        source: FrameSource,
        labels: tuple[str, ...],
        output: str | os.PathLike | None,
        csv_path: str | os.PathLike | None,
        display: bool,
        stats: DemoStats,
        log: Callable[[str], None],
        va: bool = False,
    ) -> None:
        self.source, self.labels, self.output, self.stats = source, labels, output, stats
        self.va = va  # a model with the valence/arousal output: two more columns
        self.csv = CsvStream(csv_path, csv_header(labels, va)) if csv_path else None
        self.writer: VideoWriter | None = None
        self.window: Window | None = None
        if display:
            ok, message = window_support()
            if ok:
                self.window = Window()
                stats.displayed = True
            else:
                log(message)

    def rows(self, frame: Frame, faces: list[LiveFace]) -> None:
        """One CSV row per face (smoothed probabilities, as drawn)."""
        if self.csv is None:
            return
        for face in faces:
            p = face.probabilities
            k = int(np.argmax(p))
            row = [self.stats.frames, f"{frame.time:.3f}", face.track, *face.box, self.labels[k], f"{p[k]:.4f}"]
            row += [f"{v:.4f}" for v in p]
            if self.va:
                row += [f"{v:.4f}" for v in face.va] if face.va is not None else ["", ""]
            self.csv.write(row)

    def write(self, image: np.ndarray) -> None:
        """Append the drawn frame to the output video."""
        if self.output is not None:
            if self.writer is None:
                size = self.source.size or (image.shape[1], image.shape[0])
                self.writer = VideoWriter(self.output, self.source.fps, size)
            self.writer.write(image)

    def show(self, image: np.ndarray) -> bool:
        """Show the drawn frame; False when the user closed the window (or pressed q / Esc)."""
        return self.window is None or self.window.show(image, wait_ms=0 if self.source.stills else 1)

    def finish(self, publish: bool) -> None:
        """Close the window; publish the video (read back first), then the CSV, or drop both.

        If publishing the video fails, the CSV is dropped too.
        """
        if self.window is not None:
            self.window.close()
        if not publish:  # nothing half-written, nothing empty
            for out in (self.csv, self.writer):
                if out is not None:
                    out.abort()
            return
        if self.writer is not None:
            t = time.perf_counter()
            try:
                self.stats.video = self.writer.close()
            except BaseException:
                if self.csv is not None:
                    self.csv.abort()
                raise
            finally:
                self.stats.stage_seconds["write"] += time.perf_counter() - t
        if self.csv is not None:
            self.csv.close()
            self.stats.csv_rows, self.stats.csv_written = self.csv.rows, True


def _draw(image: np.ndarray, faces: list[LiveFace], labels: tuple[str, ...], fps: float | None, stills: bool) -> None:
    """Boxes, labels, bars and (when present) attention maps of every face, and the status line."""
    for face in faces:
        annotate_face(image, face.box, labels, face.probabilities, track_id=None if stills else face.track)
        if face.attention is not None:
            draw_attention(image, face.box, face.attention)
        if face.va is not None:
            draw_va(image, face.box, face.va)
    draw_status(image, fps, len(faces))


def run_demo(
    predictor: Predictor,
    source: FrameSource | str | int,
    output: str | os.PathLike | None = None,
    csv_path: str | os.PathLike | None = None,
    display: bool = True,
    detect_every: int = 1,
    attention: bool = False,
    max_frames: int | None = None,
    smoothing: float = 0.6,
    hold: int = 1,
    classify_every: int = 1,
    prefetch: bool = True,
    log: Callable[[str], None] = print,
) -> DemoStats:
    """Run the demo until the source ends, ``max_frames``, q/Esc in the window, or Ctrl-C.

    Args:
        predictor: Detector and model (see :class:`Predictor`).
        source: A :class:`FrameSource`, or what :func:`open_source` opens (``0``, video, image, folder).
        output: Annotated video to write (``.mp4`` or ``.avi``), at the source's frame rate and size.
        csv_path: CSV with one row per face per frame (smoothed probabilities, as drawn).
        display: Show a window if this OpenCV build and machine can (else one message, headless).
        detect_every: Run the face detector every N frames and reuse tracked boxes in between.
        attention: Draw each head's attention map under each face (backends that have them).
        max_frames: Stop after this many frames.
        smoothing: Weight of the past in each track's probability average (0: none).
        hold: Detection rounds a face the detector missed keeps being shown at its last box.
        classify_every: Run the model on tracked faces every N frames (new faces at once); in
            between each face keeps its smoothed probabilities.
        prefetch: Decode frames in a background thread.
        log: Where progress and warnings go.

    Returns:
        A :class:`DemoStats`; ``errors`` lists what failed while the rest went on.

    Raises:
        DanError: The source cannot be opened, or an output cannot be created (or fails its read-back);
            nothing is published then.
    """
    if output is not None:
        check_output(output)
    if not isinstance(source, FrameSource):
        source = open_source(source)
    step = LiveStep(predictor, smoothing, max(1, detect_every), max(1, classify_every), hold, source.stills)
    stats = DemoStats()
    if attention and not predictor.has_attention:
        log("warning: this backend gives no attention maps; --attention needs the torch backend")
        attention = False
    reader = PrefetchSource(source) if prefetch and not source.live else source
    sinks = _Sinks(source, predictor.labels, output, csv_path, display, stats, log, predictor.has_va)
    st = stats.stage_seconds
    fps_avg: float | None = None
    start = last = time.perf_counter()
    frames = iter(reader)
    disk_full: OSError | None = None
    failed = False  # an exception stops the loop: nothing is published
    old_sigterm = _sigterm_as_interrupt()
    try:
        while max_frames is None or stats.frames < max_frames:
            t0 = time.perf_counter()
            frame = next(frames, None)
            st["read"] += time.perf_counter() - t0
            if frame is None:
                break
            faces = step(frame.image, attention)
            t1 = time.perf_counter()
            sinks.rows(frame, faces)
            inst = 1.0 / max(t1 - last, 1e-6)
            fps_avg = inst if fps_avg is None else 0.9 * fps_avg + 0.1 * inst
            last = t1
            image = cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR)  # drawn, written and shown by OpenCV: BGR
            _draw(image, faces, predictor.labels, None if source.stills else fps_avg, source.stills)
            t2 = time.perf_counter()
            st["draw"] += t2 - t1
            sinks.write(image)
            t3 = time.perf_counter()
            st["write"] += t3 - t2
            stats.frames += 1
            stats.faces += len(faces)
            keep_going = sinks.show(image)
            st["display"] += time.perf_counter() - t3
            if not keep_going:
                log("window closed: stopping")
                break
            if sinks.csv is not None and stats.frames % 30 == 0:
                sinks.csv.flush()
    except KeyboardInterrupt:
        stats.interrupted = True
        log(f"interrupted at frame {stats.frames}: finishing the outputs")
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EDQUOT):
            failed = True
            raise
        disk_full = err
    except BaseException:
        failed = True
        raise
    finally:
        if old_sigterm is not None:
            signal.signal(signal.SIGTERM, old_sigterm)
        stats.seconds = time.perf_counter() - start
        for stage in STEP_STAGES:
            st[stage] += step.seconds[stage]
        if hasattr(frames, "close"):
            frames.close()  # stops the read-ahead thread before the source is released
        source.close()
        sinks.finish(publish=disk_full is None and not failed and stats.frames > 0)
        stats.errors = list(source.errors)
        if disk_full is not None:
            names = ", ".join(str(p) for p in (csv_path, output) if p is not None)
            reason = os.strerror(cast(int, disk_full.errno))  # ENOSPC or EDQUOT: checked where it was caught
            stats.errors.append(f"disk full at frame {stats.frames} ({reason}): {names} not written")
    return stats
