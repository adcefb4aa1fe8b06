"""The annotated-video writer: the source's frame rate and size, written whole or not at all.

``.mp4`` is written with the ``mp4v`` codec, ``.avi`` with ``MJPG`` (both in every OpenCV build).
Frames are encoded in a background thread (OpenCV releases the GIL while encoding, so encoding
overlaps with the model), into a temporary file beside the target; :meth:`VideoWriter.close` (call
it in ``finally``) finishes the container, reads it back to check it plays, and only then renames it
to the target: a video that failed is never left under the name asked for.
"""

from __future__ import annotations

import os
import queue
import threading
from pathlib import Path

import numpy as np

from dan.errors import DanError
from dan.fileio import check_writable, temp_path_for
from dan.imaging import quiet_opencv
from dan.opencv import DEFAULT_MAX_PIXELS, cv2

__all__ = ["CODECS", "VideoWriter", "check_output", "fit_frame", "probe_video"]

CODECS = {".mp4": "mp4v", ".avi": "MJPG"}


def check_output(path: str | os.PathLike) -> Path:
    """Validate an output video path before any work is done.

    Raises:
        DanError: The suffix is not ``.mp4``/``.avi``, the path is a folder, or its folder is missing or
            not writable.
    """
    path = Path(path)
    if path.suffix.lower() not in CODECS:
        raise DanError(f"{path}: output video must end in .mp4 (mp4v) or .avi (MJPG)")
    return check_writable(path, "output video")


def probe_video(path: str | os.PathLike) -> tuple[int, int, int, float]:
    """Read a video back: ``(frames decoded, width, height, fps)``; (0, 0, 0, 0) when unreadable."""
    with quiet_opencv("SILENT"):
        cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            return 0, 0, 0, 0.0
        fps = float(cap.get(cv2.CAP_PROP_FPS))
        w, h, n = 0, 0, 0
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            h, w = frame.shape[:2]
            n += 1
        return n, w, h, fps
    finally:
        cap.release()


def fit_frame(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Letterbox ``frame`` into ``size`` (w, h) keeping its aspect ratio (black bars)."""
    w, h = size
    fh, fw = frame.shape[:2]
    if (fw, fh) == (w, h):
        return frame
    scale = min(w / fw, h / fh)
    nw, nh = max(1, round(fw * scale)), max(1, round(fh * scale))
    out = np.zeros((h, w, 3), np.uint8)
    x0, y0 = (w - nw) // 2, (h - nh) // 2
    out[y0 : y0 + nh, x0 : x0 + nw] = cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_AREA)
    return out


class VideoWriter:
    """Write BGR frames to ``path`` at ``fps`` and ``size`` (w, h); other-sized frames are letterboxed.

    Args:
        path: Target ``.mp4`` or ``.avi`` file.
        fps: Frame rate (the source's).
        size: Frame size (w, h) (the source's).
        threaded: Encode in a background thread.

    Raises:
        DanError: Unsupported suffix, missing folder, a frame size over the pixel limit, or OpenCV cannot
            open a writer.
    """

    def __init__(self, path: str | os.PathLike, fps: float, size: tuple[int, int], threaded: bool = True) -> None:
        self.path = check_output(path)
        suffix = self.path.suffix.lower()
        self.fps, self.size = float(fps), (int(size[0]), int(size[1]))
        w, h = self.size
        if w < 1 or h < 1 or w * h > DEFAULT_MAX_PIXELS:
            raise DanError(
                f"{self.path}: cannot write frames of {w} x {h} pixels (limit {DEFAULT_MAX_PIXELS:,} a frame)"
            )
        self.tmp = temp_path_for(self.path)
        fourcc = cv2.VideoWriter_fourcc(*CODECS[suffix])  # type: ignore[attr-defined]  # in cv2, missing from its stubs
        with quiet_opencv("SILENT"):  # OpenCV's lines about each backend it tried: the one line below says it
            writer = cv2.VideoWriter(str(self.tmp), fourcc, self.fps, self.size)
        self._writer: cv2.VideoWriter | None = writer  # None once closed or aborted
        if not writer.isOpened():
            writer.release()
            self.tmp.unlink(missing_ok=True)
            raise DanError(f"{self.path}: OpenCV cannot write {CODECS[suffix]} video here")
        self.frames = 0
        self._error: BaseException | None = None
        self._queue: queue.Queue | None = None
        self._thread: threading.Thread | None = None
        if threaded:
            self._queue = queue.Queue(maxsize=8)
            self._thread = threading.Thread(target=self._run, daemon=True, name="dan-writer")
            self._thread.start()

    def _run(self) -> None:
        assert self._queue is not None and self._writer is not None  # both set before the thread starts
        writer = self._writer
        while True:
            frame = self._queue.get()
            if frame is None:
                return
            try:
                writer.write(frame)
            except BaseException as err:  # noqa: BLE001 - reported on close
                self._error = err

    def write(self, frame: np.ndarray) -> None:
        """Queue one BGR frame (H, W, 3) for encoding."""
        frame = fit_frame(frame, self.size)
        if self._queue is not None:
            self._queue.put(frame)
        else:
            assert self._writer is not None, "write() after close()"
            self._writer.write(frame)
        self.frames += 1

    def abort(self) -> None:
        """Stop encoding and drop the temporary file: the target (or its previous content) stays as it was."""
        if self._writer is None:
            return
        self._stop()
        self.tmp.unlink(missing_ok=True)

    def _stop(self) -> None:
        """Drain the encoder thread (when there is one) and release the writer."""
        assert self._writer is not None
        if self._thread is not None:
            assert self._queue is not None  # the thread's queue
            self._queue.put(None)
            self._thread.join()
        self._writer.release()
        self._writer = None

    def close(self, verify: bool = True) -> tuple[int, int, int, float] | None:
        """Finish encoding, (``verify``) read the file back, then publish it.

        Returns:
            ``(frames, width, height, fps)`` read back from the file, or None when nothing was
            written (no file is created then) or ``verify`` is False.

        Raises:
            DanError: Encoding failed or the written file cannot be read back; nothing is published
                (the target, or its previous content, stays as it was).
        """
        if self._writer is None:
            return None
        self._stop()
        info = None
        try:
            if self.frames == 0:
                return None
            if self._error is not None:
                raise DanError(f"{self.path}: encoding failed: {self._error}; not written")
            if verify:
                info = probe_video(self.tmp)  # the same suffix, so the same container reader
                if info[0] == 0:
                    raise DanError(f"{self.path}: the written video cannot be read back; not written")
            os.replace(self.tmp, self.path)
        finally:
            self.tmp.unlink(missing_ok=True)
        return info
