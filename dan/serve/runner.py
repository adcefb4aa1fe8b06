"""One predictor shared by every request and connection; decoding and the model kept off the event loop.

The detector and the model runtimes are not safe to call from several threads at once (a detector
keeps per-call state, and two model calls would only fight over the same cores), so every model call
goes through a single-worker thread pool: requests queue in arrival order and the event loop never
blocks. Decoding client images runs in a small pool of its own (``decode_threads``), never in asyncio's
default pool, and only as many images as it has threads are decoded at once: a flood of large or
hostile images (a JPEG whose scan is megabytes of stuffed bytes makes the truncation check run seconds
of Python) then holds the GIL from a few threads at most, and the event loop still answers ``/health``
and new connections at once.

Images in flight (decoding, decoded and waiting for the model, or in the model) are bounded by one
first-come-first-served set of slots shared by uploads and live frames (``max_in_flight``), so a burst
of large uploads or frames cannot hold unbounded memory; a live connection takes its newest frame only
once it holds a slot, so frames that arrive meanwhile replace the waiting one and are dropped before
they are decoded.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np

from dan.inference.live import LiveFace, LiveStep
from dan.inference.predictor import FaceResult, Predictor

__all__ = ["ModelRunner"]

T = TypeVar("T")


class ModelRunner:
    """Serialise every use of one :class:`Predictor`; decode client images in a bounded pool.

    Args:
        predictor: The detector and model, shared by every client.
        decode_threads: Threads decoding client images (default: the CPU cores, at most 4; decoding a
            large image takes longer than the model, so one thread would leave cores idle).
        max_in_flight: Images being decoded, decoded and waiting, or in the model, at once (uploads and
            live frames together); more wait, undecoded, in arrival order. Default: one more than
            ``decode_threads``, so the model has an image ready while the others decode.
    """

    def __init__(
        self, predictor: Predictor, decode_threads: int | None = None, max_in_flight: int | None = None
    ) -> None:
        decode_threads = decode_threads or min(4, os.cpu_count() or 1)
        max_in_flight = max_in_flight or decode_threads + 1
        if max_in_flight < 1 or decode_threads < 1:
            raise ValueError("max_in_flight and decode_threads must be at least 1")
        self.predictor = predictor
        self.attention = predictor.has_attention
        self.max_in_flight = max_in_flight
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dan-model")
        self._decoders = ThreadPoolExecutor(max_workers=decode_threads, thread_name_prefix="dan-decode")
        self._slots: dict[asyncio.AbstractEventLoop, asyncio.Semaphore] = {}

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the model thread and wait for it without blocking the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def decode(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` (a decode) in the decode pool; call it while holding a :meth:`slot`."""
        return await asyncio.get_running_loop().run_in_executor(self._decoders, fn, *args)

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one of the ``max_in_flight`` places for an image, waiting in arrival order for one."""
        loop = asyncio.get_running_loop()  # one set per event loop (a test may run the app in several)
        if loop not in self._slots:
            self._slots = {loop: asyncio.Semaphore(self.max_in_flight)}
        async with self._slots[loop]:
            yield

    async def predict(self, decode: Callable[[], np.ndarray]) -> tuple[np.ndarray, list[FaceResult]]:
        """Decode an image in the decode pool, then label its faces on the model thread.

        Args:
            decode: Returns the RGB uint8 image (H, W, 3); may raise the client's error.

        Returns:
            The image and one :class:`FaceResult` per face, largest first.
        """
        async with self.slot():
            image = await self.decode(decode)
            return image, await self.call(self.predictor.predict, image)

    async def live(self, frame: np.ndarray, step: LiveStep, attention: bool) -> tuple[list[LiveFace], float]:
        """Detect, track, classify and smooth one live frame on the model thread (:class:`LiveStep`).

        Args:
            frame: uint8 RGB frame (H, W, 3).
            step: The connection's own live step (its tracker; touched only on the model thread).
            attention: Also return each face's attention maps (when the backend has them).

        Returns:
            The faces, in track order, and the milliseconds the model thread spent on the frame.
        """

        def run() -> tuple[list[LiveFace], float]:
            start = time.perf_counter()
            faces = step(frame, attention)
            if attention and not step.attention_available:  # the backend failed to give maps: say so
                self.attention = False
            return sorted(faces, key=lambda f: f.track), (time.perf_counter() - start) * 1e3

        return await self.call(run)
