"""Frame sources for the demo: a camera, a video file, an image, a folder of images.

A source is iterable and yields :class:`Frame` objects, RGB as everywhere inside ``dan``: a camera's or
a video's BGR frames are converted once, here, as they are read. Problems that should not stop the run (an
image that is not an image, a frame that fails to decode, a video that ends before its announced
length) are recorded in ``source.errors`` as one-line messages naming the file, and the rest is
processed. Problems that leave nothing to process (no camera at the index, a video that cannot be
opened, a folder with no images) raise :class:`dan.errors.DanError`.

A file is a still image when OpenCV would decode it as one (by its content, whatever its name), so it
goes through :func:`dan.imaging.read_image` and its pixel limit, never through FFmpeg. A video's frame
size is checked against the same limit before any frame is read. FFmpeg's own log lines are off
(:mod:`dan.opencv`); OpenCV's are kept off the terminal while a video opens: the one line says it.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dan.errors import DanError
from dan.imaging import (
    IMAGE_SUFFIXES,
    ImageReadError,
    image_size,
    list_images,
    quiet_opencv,
    read_image,
)
from dan.opencv import DEFAULT_MAX_PIXELS, cv2

__all__ = [
    "CameraSource",
    "Frame",
    "FrameSource",
    "ImageSource",
    "PrefetchSource",
    "VideoFileSource",
    "open_source",
]


@dataclass
class Frame:
    """One frame: its number, its time in seconds, the RGB pixels (H, W, 3) and where it came from."""

    index: int
    time: float
    image: np.ndarray
    name: str


class FrameSource:
    """Base class of sources: ``fps``, ``size`` (w, h) once known, ``errors``, ``name``, iteration.

    ``live`` marks a camera (wall-clock times); ``stills`` marks unrelated photos (no tracking
    across frames).
    """

    name = "source"
    fps: float = 30.0
    size: tuple[int, int] | None = None
    live = False
    stills = False

    def __init__(self) -> None:
        self.errors: list[str] = []

    def __iter__(self) -> Iterator[Frame]:
        raise NotImplementedError

    def close(self) -> None:
        """Release the device or file (idempotent)."""


def _too_large(name: str, w: int, h: int) -> str:
    return f"{name}: frames of {w} x {h} pixels are over the limit of {DEFAULT_MAX_PIXELS:,} pixels a frame"


class _CaptureSource(FrameSource):
    """Shared reading loop of cameras and video files."""

    max_skip = 8  # consecutive undecodable frames tolerated before the video counts as ended

    def __init__(self, cap: cv2.VideoCapture, name: str) -> None:
        super().__init__()
        self.cap, self.name = cap, name
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and 1 <= fps <= 240 else 30.0
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.size = (w, h) if w > 0 and h > 0 else None
        if self.size is not None and w * h > DEFAULT_MAX_PIXELS:
            cap.release()
            raise DanError(_too_large(name, w, h))
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        self.frame_count = count if count > 0 else None

    def __iter__(self) -> Iterator[Frame]:
        index, pos, failed, start = 0, 0, 0, time.monotonic()  # frames yielded, frames consumed, failures in a row
        while self.cap.isOpened():
            ok, image = self.cap.read()
            if not ok or image is None:
                expected = self.frame_count is not None and pos < self.frame_count
                if self.live or not expected:
                    if self.live and index == 0:
                        self.errors.append(f"{self.name}: camera gave no frames")
                    break
                failed += 1
                pos += 1
                if failed > self.max_skip:
                    self.errors.append(f"{self.name}: video ended early at frame {pos - failed} of {self.frame_count}")
                    failed = 0
                    break
                continue
            if failed:
                which = f"frame {pos - 1}" if failed == 1 else f"frames {pos - failed}..{pos - 1}"
                self.errors.append(f"{self.name}: {which} failed to decode; skipped")
                failed = 0
            if self.size is None and image.shape[0] * image.shape[1] > DEFAULT_MAX_PIXELS:  # size not announced
                raise DanError(_too_large(self.name, image.shape[1], image.shape[0]))
            pos += 1
            t = time.monotonic() - start if self.live else (pos - 1) / self.fps
            yield Frame(index, t, cv2.cvtColor(image, cv2.COLOR_BGR2RGB), self.name)  # OpenCV's BGR, once
            index += 1
        if failed:
            self.errors.append(f"{self.name}: video ended early at frame {pos - failed} of {self.frame_count}")

    def close(self) -> None:
        self.cap.release()


class CameraSource(_CaptureSource):
    """A webcam by index.

    Raises:
        DanError: No camera at that index.
    """

    live = True

    def __init__(self, index: int = 0) -> None:
        with quiet_opencv():  # OpenCV's own warnings about a missing camera: our one line says it
            cap = cv2.VideoCapture(index)
        if not cap.isOpened():
            cap.release()
            raise DanError(f"camera {index}: no camera at this index (or it is busy / not permitted)")
        super().__init__(cap, f"camera {index}")


class VideoFileSource(_CaptureSource):
    """A video file.

    Raises:
        DanError: Missing file, or OpenCV cannot open it as a video.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        path = Path(path)
        if not path.is_file():
            raise DanError(f"{path}: no such file")
        with quiet_opencv("SILENT"):  # OpenCV's lines about each backend it tried: the one line below says it
            cap = cv2.VideoCapture(str(path))
        if not cap.isOpened():
            cap.release()
            raise DanError(f"{path}: cannot open as a video (not a video, or a codec OpenCV lacks)")
        super().__init__(cap, str(path))


class ImageSource(FrameSource):
    """Still images, one frame each, read through :func:`dan.imaging.read_image`.

    Args:
        paths: Image files in display order.
        fps: Frame rate given to an output video (each image lasts 1 / fps seconds).
        name: What to call the source in messages.
    """

    stills = True

    def __init__(self, paths: list[Path], fps: float = 1.0, name: str = "images") -> None:
        super().__init__()
        self.paths, self.fps, self.name = list(paths), float(fps), name

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        for path in self.paths:
            try:
                image = read_image(path)
            except ImageReadError as err:
                self.errors.append(str(err))
                continue
            if self.size is None:
                self.size = (image.shape[1], image.shape[0])
            yield Frame(index, index / self.fps, image, str(path))
            index += 1


class PrefetchSource(FrameSource):
    """Read frames of another source in a background thread (decode overlaps with the model).

    Exceptions raised by the wrapped source, KeyboardInterrupt included, re-raise in the consumer.

    Args:
        source: The source to read.
        depth: Frames buffered ahead.
    """

    _END = object()

    def __init__(self, source: FrameSource, depth: int = 4) -> None:
        super().__init__()
        self.source, self.depth = source, depth
        self.errors = source.errors
        self.name, self.fps, self.live, self.stills = source.name, source.fps, source.live, source.stills
        self._stop = threading.Event()

    @property
    def size(self) -> tuple[int, int] | None:  # type: ignore[override]
        return self.source.size

    def _run(self, q: queue.Queue) -> None:
        try:
            for frame in self.source:
                while not self._stop.is_set():
                    try:
                        q.put(frame, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if self._stop.is_set():
                    return
            q.put(self._END)
        except BaseException as err:  # noqa: BLE001 - handed to the consumer thread
            q.put(err)

    def __iter__(self) -> Iterator[Frame]:
        q: queue.Queue = queue.Queue(maxsize=self.depth)
        thread = threading.Thread(target=self._run, args=(q,), daemon=True, name="dan-prefetch")
        thread.start()
        try:
            while True:
                item = q.get()
                if item is self._END:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self._stop.set()
            thread.join(timeout=2)

    def close(self) -> None:
        self._stop.set()
        self.source.close()


def open_source(spec: str | int, image_fps: float = 1.0) -> FrameSource:
    """Open ``0`` (a camera index), a video file, an image file or a folder of images.

    Raises:
        DanError: Nothing to read: no camera, missing path, unopenable video, folder without images.
    """
    text = str(spec)
    if text.isdigit():
        return CameraSource(int(text))
    path = Path(text)
    if path.is_dir():
        images = list_images(path)
        if not images:
            raise DanError(f"{path}: folder has no images ({', '.join(IMAGE_SUFFIXES)})")
        return ImageSource(images, fps=image_fps, name=str(path))
    if not path.exists():
        raise DanError(f"{path}: no such file or folder")
    if path.suffix.lower() in IMAGE_SUFFIXES or _is_still_image(path):
        return ImageSource([path], fps=image_fps, name=str(path))
    return VideoFileSource(path)


def _is_still_image(path: Path) -> bool:
    """Whether OpenCV would decode ``path`` as an image (it looks at the content, not the name).

    A GIF, maybe animated, is left to FFmpeg as a video, once its declared size is within the limit.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError as err:
        raise DanError(f"{path}: cannot read: {err.strerror or err}") from None
    if head[:6] in (b"GIF87a", b"GIF89a"):
        w, h = image_size(head) or (0, 0)
        if w * h > DEFAULT_MAX_PIXELS:
            raise DanError(_too_large(str(path), w, h))
        return False
    with quiet_opencv("SILENT"):
        try:
            return bool(cv2.haveImageReader(str(path)))
        except cv2.error:
            return False
