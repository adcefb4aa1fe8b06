"""One model, many streams: faces from the frames of several videos scored in shared batches.

Each video of a collection runs in its own worker thread with its own live step
(:class:`dan.inference.live.LiveStep`: decode, detect, track, crop). When a step needs the model it
calls a :class:`SharedBatcher` instead of the predictor: the call joins the batch being gathered, and
the batch runs (in the thread of whichever caller closes it) when every active worker is waiting, when
it holds ``batch_size`` faces, or after ``wait`` seconds. Each caller gets back the rows of its own
faces, so tracks and smoothing are exactly those of one stream at a time; while the model runs, the
other workers go on decoding and detecting.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np

from dan.inference.predictor import Predictor

__all__ = ["SharedBatcher"]

Outputs = tuple[np.ndarray, np.ndarray | None, np.ndarray | None]


@dataclass(eq=False)  # identity: a request is found in the pending list by itself
class _Request:
    batch: np.ndarray
    result: Outputs | None = None
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)


class SharedBatcher:
    """Pools the model runs of several threads (see the module docstring).

    Args:
        predictor: Its ``run_outputs`` runs the pooled batches.
        batch_size: Faces at which a gathered batch runs at once.
        wait: Seconds a caller waits for others before running what is gathered.

    Attributes:
        runs: Model runs so far; ``faces``: faces scored (their ratio is the mean batch).
    """

    def __init__(self, predictor: Predictor, batch_size: int = 32, wait: float = 0.005) -> None:
        self.predictor, self.batch_size, self.wait = predictor, batch_size, wait
        self._lock = threading.Lock()
        self._pending: list[_Request] = []
        self._workers = 0
        self.runs = self.faces = 0

    def join(self) -> None:
        """A worker starts (it may call the batcher until it calls :meth:`leave`)."""
        with self._lock:
            self._workers += 1

    def leave(self) -> None:
        """A worker ends: the others no longer wait for it."""
        with self._lock:
            self._workers -= 1

    def __call__(self, batch: np.ndarray) -> Outputs:
        """The predictor's outputs (probabilities (N, C), None, valence/arousal (N, 2) or None) of ``batch``."""
        request = _Request(batch)
        deadline = time.monotonic() + self.wait
        with self._lock:
            self._pending.append(request)
        while not request.done.is_set():
            with self._lock:
                faces = sum(len(r.batch) for r in self._pending)
                ready = len(self._pending) >= self._workers or faces >= self.batch_size or time.monotonic() >= deadline
                take = self._pending if ready and request in self._pending else []
                if take:
                    self._pending = []
            if take:
                self._run(take)
            else:
                request.done.wait(max(0.0, min(self.wait, deadline - time.monotonic())) or 0.001)
        if request.error is not None:
            raise request.error
        assert request.result is not None  # set with done when no error
        return request.result

    def _run(self, requests: list[_Request]) -> None:
        sizes = [len(r.batch) for r in requests]
        try:
            probs, _, va = self.predictor.run_outputs(np.concatenate([r.batch for r in requests]))  # (sum N, 3, S, S)
        except BaseException as err:  # noqa: BLE001 - handed to every caller of the batch
            for r in requests:
                r.error = err
                r.done.set()
            return
        self.runs += 1
        self.faces += sum(sizes)
        start = 0
        for r, n in zip(requests, sizes):
            r.result = (probs[start : start + n], None, None if va is None else va[start : start + n])
            start += n
            r.done.set()
