"""The demo loop: read frames, find and track faces, label them, draw, show and save.

Per frame: detect faces (every ``detect_every`` frames; in between the tracked boxes are reused),
match them to tracks by IoU, run the model once on all faces (every ``classify_every`` frames; new
faces at once), smooth each track's probabilities,
draw, then write the frame to the output video, the rows to the CSV, and show it in a window when
one can be opened. Decoding runs in a background thread ahead of the loop and encoding in one
behind it, so both overlap with the model. Ctrl-C ends the loop cleanly: the video and CSV are
finished in ``finally``, complete up to the last processed frame; SIGTERM does the same. A full disk
stops the loop and publishes nothing half-written (a previous video or CSV stays as it was).
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

from dan.inference.attention import draw_attention
from dan.inference.outputs import CsvStream
from dan.inference.overlay import draw_face, draw_status
from dan.inference.predictor import Predictor
from dan.inference.tracking import IoUTracker
from dan.inference.video import FrameSource, PrefetchSource, open_source
from dan.inference.window import Window, window_support
from dan.inference.writer import VideoWriter, check_output

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


def csv_header(labels: tuple[str, ...]) -> list[str]:
    """Columns of the demo CSV: frame, time, track, x, y, w, h, label, confidence, one per class."""
    return ["frame", "time", "track", "x", "y", "w", "h", "label", "confidence", *labels]


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
        DanError: The source cannot be opened, or an output cannot be created.
    """
    if output is not None:
        check_output(output)
    if not isinstance(source, FrameSource):
        source = open_source(source)
    stats = DemoStats()
    if attention and not predictor.has_attention:
        log("warning: this backend gives no attention maps; --attention needs the torch backend")
        attention = False
    labels = predictor.labels
    tracker = IoUTracker(smoothing=smoothing)
    reader = PrefetchSource(source) if prefetch and not source.live else source
    csv = CsvStream(csv_path, csv_header(labels)) if csv_path else None
    writer: VideoWriter | None = None
    window: Window | None = None
    if display:
        ok, message = window_support()
        if ok:
            window = Window()
            stats.displayed = True
        else:
            log(message)
    st = stats.stage_seconds
    fps_avg: float | None = None
    start = last = time.perf_counter()
    frames = iter(reader)
    disk_full: OSError | None = None
    old_sigterm = _sigterm_as_interrupt()
    try:
        while max_frames is None or stats.frames < max_frames:
            t0 = time.perf_counter()
            frame = next(frames, None)
            t1 = time.perf_counter()
            st["read"] += t1 - t0
            if frame is None:
                break
            image = frame.image
            if source.stills or stats.frames % max(1, detect_every) == 0:
                if source.stills:
                    tracker.reset()
                tracks = tracker.update(predictor.detect(image))
                seen = {t.id for t in tracks}
                tracks += [t for t in tracker.visible(hold) if t.id not in seen]  # briefly missed faces
            else:
                tracks = tracker.visible(hold)
            boxes = [(*t.box, t.score) for t in tracks]
            t2 = time.perf_counter()
            st["detect"] += t2 - t1
            classify_now = source.stills or stats.frames % max(1, classify_every) == 0
            todo = [i for i, t in enumerate(tracks) if classify_now or t.probs is None]
            batch = predictor.prepare(image, [boxes[i] for i in todo]) if todo else None
            t3 = time.perf_counter()
            st["crop"] += t3 - t2
            if todo:
                assert batch is not None  # prepared above whenever there is a face to classify
                fresh, maps = predictor.run_batch(batch, attention)
                tracker.smooth([tracks[i] for i in todo], fresh)
                for j, i in enumerate(todo):
                    tracks[i].attention = None if maps is None else maps[j]
            # every track has probabilities now (those without any were in todo)
            probs = (
                np.stack([cast(np.ndarray, t.probs) for t in tracks])
                if tracks
                else np.zeros((0, len(labels)), np.float32)
            )
            t4 = time.perf_counter()
            st["model"] += t4 - t3
            for track, p in zip(tracks, probs):
                draw_face(image, track.box, labels, p, track_id=None if source.stills else track.id)
                if track.attention is not None:
                    draw_attention(image, track.box, track.attention)
                if csv is not None:
                    k = int(np.argmax(p))
                    row = [stats.frames, f"{frame.time:.3f}", track.id, *track.box, labels[k], f"{p[k]:.4f}"]
                    csv.write(row + [f"{v:.4f}" for v in p])
            now = time.perf_counter()
            inst = 1.0 / max(now - last, 1e-6)
            fps_avg = inst if fps_avg is None else 0.9 * fps_avg + 0.1 * inst
            last = now
            draw_status(image, None if source.stills else fps_avg, len(tracks))
            t5 = time.perf_counter()
            st["draw"] += t5 - t4
            if output is not None:
                if writer is None:
                    size = source.size or (image.shape[1], image.shape[0])
                    writer = VideoWriter(output, source.fps, size)
                writer.write(image)
            t6 = time.perf_counter()
            st["write"] += t6 - t5
            stats.frames += 1
            stats.faces += len(tracks)
            if window is not None:
                keep_going = window.show(image, wait_ms=0 if source.stills else 1)
                st["display"] += time.perf_counter() - t6
                if not keep_going:
                    log("window closed: stopping")
                    break
            if csv is not None and stats.frames % 30 == 0:
                csv.flush()
    except KeyboardInterrupt:
        stats.interrupted = True
        log(f"interrupted at frame {stats.frames}: finishing the outputs")
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        disk_full = err
    finally:
        if old_sigterm is not None:
            signal.signal(signal.SIGTERM, old_sigterm)
        stats.seconds = time.perf_counter() - start
        if hasattr(frames, "close"):
            frames.close()  # stops the read-ahead thread before the source is released
        source.close()
        if window is not None:
            window.close()
        if disk_full is not None:  # nothing half-written replaces a previous output
            for out in (csv, writer):
                if out is not None:
                    out.abort()
        else:
            if csv is not None:
                csv.close()
                stats.csv_rows = csv.rows
            if writer is not None:
                t = time.perf_counter()
                stats.video = writer.close()
                st["write"] += time.perf_counter() - t
        stats.errors = list(source.errors)
        if disk_full is not None:
            names = ", ".join(str(p) for p in (csv_path, output) if p is not None)
            reason = os.strerror(cast(int, disk_full.errno))  # ENOSPC or EDQUOT: checked where it was caught
            stats.errors.append(f"disk full at frame {stats.frames} ({reason}): {names} not written")
    return stats
