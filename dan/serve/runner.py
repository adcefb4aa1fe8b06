"""One predictor shared by every request and connection, called from one thread at a time.

The detector and the model runtimes are not safe to call from several threads at once (a detector
keeps per-call state, and two model calls would only fight over the same cores), so every call goes
through a single-worker thread pool: requests queue in arrival order, the event loop never blocks,
and decoding (in other threads) overlaps the model. The number of still images decoded and waiting
for the model is capped, so a burst of large uploads cannot hold unbounded memory.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from dan.common import DanError
from dan.inference.predictor import FaceResult, Predictor
from dan.inference.tracking import IoUTracker

__all__ = ["LiveFace", "ModelRunner"]

T = TypeVar("T")


def normalize_map(amap: np.ndarray) -> np.ndarray:
    """Scale one attention map (h, w) to [0, 1] for display (a constant map becomes zeros)."""
    amap = np.asarray(amap, np.float32)
    lo, hi = float(amap.min()), float(amap.max())
    return (amap - lo) / (hi - lo) if hi > lo else np.zeros_like(amap)


@dataclass
class LiveFace:
    """One tracked face of a live frame.

    Attributes:
        track: Track id, stable while the face stays in view.
        box: ``(x, y, w, h)`` in pixels of the frame.
        probabilities: Smoothed probabilities (C,), in label order.
        attention: The heads' maps (K, h, w) scaled to [0, 1] per head, when asked for.
    """

    track: int
    box: tuple[int, int, int, int]
    probabilities: np.ndarray
    attention: np.ndarray | None = None


class ModelRunner:
    """Serialise every use of one :class:`Predictor`.

    Args:
        predictor: The detector and model, shared by every client.
        max_waiting: Still images decoded and waiting for the model at once (more wait to decode).
    """

    def __init__(self, predictor: Predictor, max_waiting: int = 8) -> None:
        self.predictor = predictor
        self.attention = predictor.has_attention
        self.max_waiting = max_waiting
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dan-model")
        self._slots: dict[asyncio.AbstractEventLoop, asyncio.Semaphore] = {}

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the model thread and wait for it without blocking the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def _waiting_slots(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()  # one per event loop (a test may run the app in several)
        if loop not in self._slots:
            self._slots = {loop: asyncio.Semaphore(self.max_waiting)}
        return self._slots[loop]

    async def predict(self, decode: Callable[[], np.ndarray]) -> tuple[np.ndarray, list[FaceResult]]:
        """Decode an image in a worker thread, then label its faces on the model thread.

        Args:
            decode: Returns the BGR uint8 image (H, W, 3); may raise the client's error.

        Returns:
            The image and one :class:`FaceResult` per face, largest first.
        """
        async with self._waiting_slots():
            image = await asyncio.to_thread(decode)
            return image, await self.call(self.predictor.predict, image)

    def _live_step(self, frame: np.ndarray, tracker: IoUTracker, attention: bool) -> list[LiveFace]:
        boxes = self.predictor.detect(frame)
        tracks = tracker.update(boxes)  # the track of each box, in box order
        maps = None
        if attention and self.attention:
            try:
                probs, maps = self.predictor.classify(frame, boxes, attention=True)
            except DanError:  # e.g. an ONNX export without the attention output
                self.attention = False
        if maps is None:
            probs, _ = self.predictor.classify(frame, boxes)
        smoothed = tracker.smooth(tracks, probs)
        faces = []
        for i, (track, p) in enumerate(zip(tracks, smoothed)):
            heads = None if maps is None else np.stack([normalize_map(m) for m in maps[i]])  # (K, h, w)
            x, y, w, h = track.box
            faces.append(LiveFace(track.id, (int(x), int(y), int(w), int(h)), p, heads))
        return faces

    async def live(self, frame: np.ndarray, tracker: IoUTracker, attention: bool) -> tuple[list[LiveFace], float]:
        """Detect, track, classify and smooth one live frame on the model thread.

        Args:
            frame: BGR uint8 frame (H, W, 3).
            tracker: The connection's own tracker (touched only on the model thread).
            attention: Also return each face's attention maps (when the backend has them).

        Returns:
            The faces, in track order, and the milliseconds the model thread spent on the frame.
        """

        def step() -> tuple[list[LiveFace], float]:
            start = time.perf_counter()
            faces = self._live_step(frame, tracker, attention)
            return sorted(faces, key=lambda f: f.track), (time.perf_counter() - start) * 1e3

        return await self.call(step)
