"""dan evaluate overlaps loading with the model: with no worker processes a background thread loads the next
batches (:func:`dan.evaluation.evaluate.prefetched`), bounded, in order, errors raised in the caller."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

from dan.evaluation.evaluate import evaluate_backend, prefetched
from dan.models.metadata import ModelMetadata
from dan.runtime.backend import Backend, Outputs


class _Faces(torch.utils.data.Dataset):
    """Tiny labelled "images" that record which thread loaded them."""

    label_names = ("happy", "sad")

    def __init__(self, n: int) -> None:
        self.samples = [(f"img{i}.png", i % 2) for i in range(n)]
        self.threads: set[str] = set()

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        self.threads.add(threading.current_thread().name)
        x = torch.full((3, 4, 4), float(i % 2))  # (3, S, S)
        return x, torch.tensor(i % 2)


class _Backend(Backend):
    def __init__(self) -> None:
        # another order than the data set's: matched by name
        super().__init__(ModelMetadata({"num_classes": 2}, labels=("sad", "happy")))
        self.threads: set[str] = set()

    def outputs(self, x: np.ndarray, attention: bool = False) -> Outputs:
        return Outputs(self.logits(x))

    def logits(self, x: np.ndarray) -> np.ndarray:
        self.threads.add(threading.current_thread().name)
        m = x.reshape(len(x), -1).mean(1)  # (B,)
        return np.stack([m, 1 - m], 1) * 5  # (B, 2): "sad" for ones (label 1), "happy" for zeros


def test_loading_runs_in_another_thread_than_the_model() -> None:
    data, backend = _Faces(10), _Backend()
    result = evaluate_backend(backend, data, batch_size=3, num_workers=0)
    assert result.accuracy == 1.0 and list(result.targets) == [i % 2 for i in range(10)]
    assert data.threads == {"dan-eval-prefetch"} and backend.threads == {threading.current_thread().name}
    assert not [t for t in threading.enumerate() if t.name == "dan-eval-prefetch"]


def test_a_model_error_stops_the_loading_thread() -> None:
    class Broken(_Backend):
        def logits(self, x: np.ndarray) -> np.ndarray:
            raise RuntimeError("model failed")

    with pytest.raises(RuntimeError, match="model failed"):
        evaluate_backend(Broken(), _Faces(40), batch_size=2, num_workers=0)
    assert not [t for t in threading.enumerate() if t.name == "dan-eval-prefetch"]


def test_prefetched_is_in_order_bounded_and_raises_in_the_caller() -> None:
    made = [0]

    def items():
        for i in range(100):
            made[0] += 1
            yield i

    it = prefetched(items(), depth=2)
    assert next(it) == 0
    time.sleep(0.05)  # let the thread run ahead as far as it may
    assert made[0] <= 1 + 2 + 1  # the one taken, the queue, the one waiting to be put
    assert list(it) == list(range(1, 100))

    def failing():
        yield 1
        raise ValueError("bad image")

    it = prefetched(failing())
    assert next(it) == 1
    with pytest.raises(ValueError, match="bad image"):
        next(it)
