"""A video's frames, sampled (``--every N`` or ``--fps F``), read ahead in a thread.

The video is opened by :class:`dan.demo.sources.VideoFileSource`, which refuses a frame size over the
pixel limit from the header before any frame is decoded, exactly as for ``dan demo``. Frames that are
not analysed are only grabbed (no colour conversion, no copy); analysed ones are converted from
OpenCV's BGR to RGB once, here. A frame that fails to decode is skipped and recorded; a run of
failures ends the video early with one line in :attr:`SampledVideo.errors`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass

from dan.demo.sources import Frame, FrameSource, VideoFileSource
from dan.errors import DanError
from dan.opencv import DEFAULT_MAX_PIXELS, cv2

__all__ = ["Sampling", "SampledVideo"]


@dataclass(frozen=True)
class Sampling:
    """Which frames of a video are analysed: every ``every``-th, or ``fps`` a second (whichever is set).

    Raises:
        DanError: ``every`` below 1 or ``fps`` not above 0.
    """

    every: int = 1
    fps: float | None = None

    def __post_init__(self) -> None:
        if self.every < 1:
            raise DanError(f"--every must be at least 1, got {self.every}")
        if self.fps is not None and not (self.fps > 0 and math.isfinite(self.fps)):
            raise DanError(f"--fps must be above 0, got {self.fps}")

    def keep(self, index: int, video_fps: float) -> bool:
        """Whether frame ``index`` of a video at ``video_fps`` is analysed."""
        if self.fps is None or self.fps >= video_fps:
            return index % self.every == 0
        step = video_fps / self.fps  # source frames per analysed frame
        return index == 0 or math.floor(index / step) != math.floor((index - 1) / step)


class SampledVideo(FrameSource):
    """The analysed frames of one video file, as :class:`~dan.demo.sources.Frame` objects (RGB).

    Attributes:
        position: Frames consumed so far (analysed or not): what progress counts.
        frame_count: Frames the header announces (None when it does not say).

    Raises:
        DanError: Missing file, not openable as a video, or frames over the pixel limit.
    """

    max_skip = 8  # consecutive undecodable frames tolerated before the video counts as ended

    def __init__(self, path: str | os.PathLike, sampling: Sampling) -> None:
        super().__init__()
        self.video = VideoFileSource(path)
        self.name, self.fps, self.size = self.video.name, self.video.fps, self.video.size
        self.frame_count = self.video.frame_count
        self.sampling = sampling
        self.position = 0

    def __iter__(self) -> Iterator[Frame]:
        cap, failed = self.video.cap, 0
        while True:
            index = self.position
            if not cap.grab():
                if self.frame_count is None or index >= self.frame_count:
                    return
                failed += 1
                self.position += 1
                if failed > self.max_skip:
                    self.errors.append(
                        f"{self.name}: video ended early at frame {index - failed + 1} of {self.frame_count}"
                    )
                    return
                continue
            if failed:
                self.errors.append(f"{self.name}: frames {index - failed}..{index - 1} failed to decode; skipped")
                failed = 0
            self.position += 1
            if not self.sampling.keep(index, self.fps):
                continue
            ok, image = cap.retrieve()
            if not ok or image is None:
                self.errors.append(f"{self.name}: frame {index} failed to decode; skipped")
                continue
            if self.size is None and image.shape[0] * image.shape[1] > DEFAULT_MAX_PIXELS:  # size not announced
                raise DanError(f"{self.name}: frames of {image.shape[1]} x {image.shape[0]} pixels are over the limit")
            yield Frame(index, index / self.fps, cv2.cvtColor(image, cv2.COLOR_BGR2RGB), self.name)  # BGR, once

    def close(self) -> None:
        self.video.close()
