"""A generated frame source for the demo benchmark and the soak test: the astronaut's head over a background."""

from __future__ import annotations

import cv2
import numpy as np

from dan.demo.sources import Frame, FrameSource
from scripts.common.measure import rss_mib

__all__ = ["face_frames"]


def face_frames(n: int, size: tuple[int, int] = (640, 480)) -> FrameSource:
    """A generated source: the astronaut's head sliding over a background, ``n`` RGB frames."""
    import skimage.data

    w, h = size
    head = skimage.data.astronaut()[20:260, 110:350]  # frames are RGB inside dan
    tile = cv2.resize(head, (200, 200), interpolation=cv2.INTER_AREA)
    rng = np.random.default_rng(0)
    bg = cv2.GaussianBlur(rng.integers(0, 255, (h, w, 3), dtype=np.uint8), (0, 0), 8)

    class _Source(FrameSource):
        name, fps = "generated", 30.0

        def __init__(self) -> None:
            super().__init__()
            self.size = (w, h)
            self.marks: dict[int, float] = {}

        def __iter__(self):
            for i in range(n):
                frame = bg.copy()
                x = int((w - 200) * (0.5 + 0.5 * np.sin(i / 40)))
                y = int((h - 200) * (0.5 + 0.3 * np.cos(i / 55)))
                frame[y : y + 200, x : x + 200] = tile
                if i in (0, n // 2, n - 1):
                    self.marks[i] = rss_mib()
                yield Frame(i, i / self.fps, frame, self.name)

    return _Source()
