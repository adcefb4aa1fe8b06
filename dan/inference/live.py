"""The live step: one frame of a stream in, its tracked, labelled and smoothed faces out.

``dan demo`` (:func:`dan.demo.loop.run_demo`) and ``dan serve``'s live WebSocket
(:class:`dan.serve.runner.ModelRunner`) both run their frames through :class:`LiveStep`, one per stream.
Per frame:

1. detect the faces (every ``detect_every`` frames; in between the tracked boxes are reused), and
   match them to tracks by IoU (:class:`dan.inference.tracking.IoUTracker`); a face the detector
   missed stays for ``hold`` detection rounds at its last box;
2. cut out and prepare the faces that need the model (all of them every ``classify_every`` frames,
   new faces at once) as the model's preprocessing record says, landmarks included (aligned crops),
   exactly as :class:`dan.inference.predictor.Predictor` does for a photo;
3. run the model once on them, with the heads' attention maps when asked for;
4. fold each face's probabilities (and, for a model with them, its valence and arousal) into its
   track's moving average (``smoothing``: the weight of the past, 0 for none).

Frames are RGB, as everywhere inside ``dan``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from dan.errors import DanError
from dan.inference.predictor import Predictor
from dan.inference.tracking import IoUTracker

__all__ = ["LIVE_DETECT_EVERY", "LIVE_DETECT_SIZE", "STEP_STAGES", "LiveFace", "LiveStep"]

LIVE_DETECT_EVERY = 2
"""Detect every N frames of a live stream, track in between: ``dan demo``'s and the web page's default."""
LIVE_DETECT_SIZE = 480
"""Longest side a live frame is detected at (scaled down to it): ``dan demo``'s and the web page's default."""

STEP_STAGES = ("detect", "crop", "model")
"""The parts of a step :attr:`LiveStep.seconds` times."""


@dataclass
class LiveFace:
    """One tracked face of a live frame.

    Attributes:
        track: Track id, stable while the face stays in view.
        box: ``(x, y, w, h)`` in pixels of the frame.
        probabilities: Smoothed class probabilities, float32 (C,), in label order.
        attention: The heads' maps (K, h, w) of the face's latest classification, when asked for.
        va: Smoothed (valence, arousal), float32 (2,), of a model with that output; else None.
    """

    track: int
    box: tuple[int, int, int, int]
    probabilities: np.ndarray
    attention: np.ndarray | None = None
    va: np.ndarray | None = None


class LiveStep:
    """Detect, track, classify and smooth the faces of one stream's frames (see the module docstring).

    Not thread-safe: one per stream, called from one thread at a time.

    Args:
        predictor: Detector and model (may be shared between streams when calls are serialised).
        smoothing: Weight of the past in each track's probability average, in [0, 1) (0: none).
        detect_every: Run the detector every N frames; in between the tracked boxes are reused.
        classify_every: Run the model on tracked faces every N frames (new faces at once).
        hold: Detection rounds a face the detector missed keeps being returned at its last box.
        stills: The frames are unrelated photos: detect and classify every frame, no tracking across.
        run: What runs the model on a batch (N, 3, S, S) when no attention is asked for (default:
            ``predictor.run_outputs``); ``dan predict`` passes one that pools faces of many streams
            into shared batches (:class:`dan.collection.batcher.SharedBatcher`).

    Raises:
        DanError: ``smoothing`` outside [0, 1), or ``detect_every`` / ``classify_every`` below 1.
    """

    def __init__(
        self,
        predictor: Predictor,
        smoothing: float = 0.6,
        detect_every: int = 1,
        classify_every: int = 1,
        hold: int = 0,
        stills: bool = False,
        run: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray | None, np.ndarray | None]] | None = None,
    ) -> None:
        if not 0.0 <= smoothing < 1.0:
            raise DanError(f"smoothing must be in [0, 1), got {smoothing}")
        if detect_every < 1 or classify_every < 1:
            raise DanError("detect_every and classify_every must be at least 1")
        self.predictor = predictor
        self.run = run or predictor.run_outputs
        self.tracker = IoUTracker(smoothing=smoothing)
        self.detect_every, self.classify_every, self.hold, self.stills = detect_every, classify_every, hold, stills
        self.frames = 0
        self.attention_available = predictor.has_attention
        self.seconds = dict.fromkeys(STEP_STAGES, 0.0)

    @property
    def smoothing(self) -> float:
        """Weight of the past in each track's probabilities."""
        return self.tracker.smoothing

    def __call__(self, frame: np.ndarray, attention: bool = False) -> list[LiveFace]:
        """Step one frame.

        Args:
            frame: uint8 RGB frame (H, W, 3).
            attention: Also return each classified face's attention maps (backends that have them;
                when the backend fails to give them, the step goes on without, and
                :attr:`attention_available` turns False).

        Returns:
            The frame's faces: those detected in it (in detection order, largest first), then those
            held from earlier frames.
        """
        t0 = time.perf_counter()
        n = self.frames
        if self.stills or n % self.detect_every == 0:
            if self.stills:
                self.tracker.reset()
            tracks = self.tracker.update(self.predictor.detect(frame))
            seen = {t.id for t in tracks}
            tracks += [t for t in self.tracker.visible(self.hold) if t.id not in seen]  # briefly missed faces
        else:
            tracks = self.tracker.visible(self.hold)
        t1 = time.perf_counter()
        classify_now = self.stills or n % self.classify_every == 0
        todo = [t for t in tracks if classify_now or t.probs is None]
        batch = self.predictor.prepare(frame, [t.detection for t in todo]) if todo else None
        t2 = time.perf_counter()
        if todo:
            assert batch is not None  # prepared above whenever there is a face to classify
            fresh, maps, va = self._run(batch, attention)
            self.tracker.smooth(todo, fresh)
            if va is not None:
                self.tracker.smooth_va(todo, va)
            for j, track in enumerate(todo):
                track.attention = None if maps is None else maps[j]
        t3 = time.perf_counter()
        self.frames += 1
        for stage, seconds in zip(STEP_STAGES, (t1 - t0, t2 - t1, t3 - t2)):
            self.seconds[stage] += seconds
        # every track has probabilities now (those without any were in todo)
        return [LiveFace(t.id, t.box, np.asarray(t.probs), t.attention, t.va) for t in tracks]

    def _run(self, batch: np.ndarray, attention: bool) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """Probabilities (N, C), attention maps (N, K, h, w) when asked and available, and valence/arousal
        (N, 2) of a model with them, of a batch."""
        if attention and self.attention_available:
            try:
                return self.predictor.run_outputs(batch, attention=True)
            except DanError:  # e.g. an ONNX export without the attention output
                self.attention_available = False
        return self.run(batch)
