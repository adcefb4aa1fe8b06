"""The one interface every model runner offers, whatever runs the network: :class:`Backend`.

A backend implements one method, :meth:`Backend.outputs`: a normalised RGB batch float32 (N, 3, S, S) in,
an :class:`Outputs` record out (the logits (N, C); the heads' attention maps (N, K, h, w) when asked for
and the file has them; valence/arousal (N, 2) for a model with that output). Everything else is the base
class's, the same for every runtime:

- ``metadata`` (:class:`dan.models.metadata.ModelMetadata`, class names settled), ``labels``,
  ``preprocessing`` and ``trained_on``, read from it;
- ``device`` (a :class:`dan.system.DeviceChoice`, resolved once by :func:`dan.runtime.loader.load_backend`
  and handed in) and ``device_reason``, one line on where it runs and why;
- ``has_attention`` and ``has_va``: what :meth:`Backend.outputs` can give;
- :meth:`Backend.probabilities`: softmax(logits / T) with the file's calibrated temperature T
  (``dan calibrate``), the one place it is applied for every runtime; ``backend(x)``: the logits alone;
- ``auto_reason``: what ``--backend auto`` picked and why (:mod:`dan.auto`), else None.

:mod:`dan.runtime.torch`, :mod:`dan.runtime.onnx`, :mod:`dan.runtime.openvino` and :mod:`dan.runtime.pt2`
implement it; :func:`dan.runtime.loader.load_backend` opens a file with one of them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import NamedTuple

import numpy as np

from dan.models.metadata import ModelMetadata
from dan.preprocess import Preprocessing
from dan.system import DeviceChoice

__all__ = ["CPU", "Backend", "Outputs", "softmax"]

CPU = DeviceChoice("cpu", "cpu (as asked)")
"""Where a backend runs when it is given no device."""


class Outputs(NamedTuple):
    """Every output of one run of a backend.

    Attributes:
        logits: float32 (N, C).
        attention: The heads' spatial maps, float32 (N, K, h, w), when asked for and available; else None.
        va: (valence, arousal) in [-1, 1], float32 (N, 2), for a model with the output; else None.
    """

    logits: np.ndarray
    attention: np.ndarray | None = None
    va: np.ndarray | None = None


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (N, C) logits, float32."""
    z = logits.astype(np.float32) - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class Backend(ABC):
    """A model runner: subclasses implement :meth:`outputs`; the rest is here (see the module docstring).

    Args:
        metadata: The model's record, class names settled (:meth:`ModelMetadata.with_labels`).
        device: Where it runs, already resolved (:func:`dan.system.pick_device`); None: the CPU.

    Attributes:
        name: The runtime (``torch``, ``onnx``, ``openvino``, ``pt2``).
        has_attention: Whether :meth:`outputs` gives the attention maps when asked (an export may lack them).
        has_va: Whether the model has the valence/arousal output.
        auto_reason: What ``--backend auto`` picked and why (set by :mod:`dan.auto`), else None.
    """

    name: str = "backend"
    has_attention: bool = True
    has_va: bool = False
    auto_reason: str | None = None

    def __init__(self, metadata: ModelMetadata, device: DeviceChoice | None = None) -> None:
        self.metadata = metadata
        self.labels: tuple[str, ...] = tuple(metadata.labels or ())
        self.preprocessing: Preprocessing = metadata.preprocessing
        self.trained_on: dict | None = metadata.trained_on
        self.device: DeviceChoice = device or CPU
        self.device_reason: str = self.device.reason

    @abstractmethod
    def outputs(self, x: np.ndarray, attention: bool = False) -> Outputs:
        """Every output of one run on a normalised batch.

        Args:
            x: float32 (N, 3, S, S), normalised RGB (N may be 0).
            attention: Also return the heads' attention maps (when :attr:`has_attention`).

        Returns:
            The logits (N, C), the maps (N, K, h, w) when asked for and available (else None), and
            valence/arousal (N, 2) when :attr:`has_va` (else None).
        """

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """The logits (N, C) of a normalised batch (N, 3, S, S): ``outputs(x).logits``."""
        return self.outputs(x).logits

    def empty(self, attention: bool = False) -> Outputs:
        """The outputs of an empty batch: logits (0, C), maps (0, 0, 0, 0) when asked, va (0, 2) for a model with it."""
        maps = np.zeros((0, 0, 0, 0), np.float32) if attention and self.has_attention else None
        va = np.zeros((0, 2), np.float32) if self.has_va else None
        return Outputs(np.zeros((0, len(self.labels)), np.float32), maps, va)

    @property
    def temperature(self) -> float:
        """The temperature T the model file carries (``dan calibrate``), 1.0 when it has none."""
        t = self.metadata.temperature
        return float(t) if t is not None else 1.0

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """Class probabilities (N, C), float32, of this model's logits (N, C): softmax(logits / T).

        T is :attr:`temperature` (1 for a model that was never calibrated): the one place a calibrated
        temperature is applied, whatever runtime produced the logits.
        """
        logits = np.asarray(logits, np.float32)
        t = self.temperature
        return softmax(logits / np.float32(t) if t != 1.0 else logits)
