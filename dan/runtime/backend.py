"""The one interface every model runner offers, whatever runs the network.

A *backend* is any object with:

- ``name: str``: the runtime (``torch``, ``onnx``, ``openvino``, ``pt2``);
- ``labels: tuple[str, ...]``: class names, index ``i`` naming output ``i``;
- ``preprocessing: Preprocessing``: how a face becomes the network's input (size, mean, std, crop);
- optionally ``metadata: ModelMetadata``: the file's whole record; its ``temperature`` (``dan calibrate``)
  is how the logits become probabilities: :func:`probabilities`, the one place it is applied, for
  every runtime (``dan predict``, ``demo``, ``serve`` and ``evaluate`` all go through it);
- ``__call__(x) -> logits``: ``x`` float32 of shape (N, 3, S, S), normalised RGB; returns float32
  logits of shape (N, C) as numpy;
- optionally ``predict_with_attention(x) -> (logits, maps)``: the logits and the heads' spatial
  attention, float32 (N, K, h, w), from one run: the one attention entry of a backend. A backend
  whose file may lack the attention output says so with ``supports_attention``;
- optionally ``has_va: bool`` and ``outputs(x, attention=False) -> Outputs``: every output of one run,
  the logits, the attention maps when asked for, and (a model with ``va_head``) the valence and arousal,
  float32 (N, 2) in [-1, 1]; ``predict_with_va(x) -> (logits, va or None)`` is its short form.
  :func:`backend_outputs` runs any backend that way (one without them gives no valence/arousal).

:mod:`dan.runtime.torch`, :mod:`dan.runtime.onnx`, :mod:`dan.runtime.openvino` and
:mod:`dan.runtime.pt2` implement it; :func:`dan.runtime.loader.load_backend` picks one for a file.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol, runtime_checkable

import numpy as np

from dan.preprocess import Preprocessing

__all__ = [
    "AttentionBackend",
    "Backend",
    "Outputs",
    "backend_outputs",
    "has_attention",
    "has_va",
    "probabilities",
    "softmax",
    "temperature_of",
]


@runtime_checkable
class Backend(Protocol):
    """What every model runner provides (see the module docstring)."""

    labels: tuple[str, ...]
    preprocessing: Preprocessing

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Logits (N, C) for a normalised batch (N, 3, S, S)."""
        ...


class AttentionBackend(Backend, Protocol):
    """A backend that also returns the heads' spatial attention (the optional member of the module docstring)."""

    def predict_with_attention(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Logits (N, C) and attention maps (N, K, h, w) for a normalised batch (N, 3, S, S), from one run."""
        ...


def has_attention(backend: object) -> bool:
    """True when ``backend`` can return the heads' spatial attention maps (an export without them cannot)."""
    supports = getattr(backend, "supports_attention", None)
    return bool(supports) if supports is not None else callable(getattr(backend, "predict_with_attention", None))


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


def has_va(backend: object) -> bool:
    """True when ``backend``'s model has the valence/arousal output (``has_va``; absent: no)."""
    return bool(getattr(backend, "has_va", False))


def backend_outputs(backend: object, x: np.ndarray, attention: bool = False) -> Outputs:
    """Run ``backend`` once on a normalised batch (N, 3, S, S): logits, attention maps if asked for (and the
    backend has them), valence/arousal if the model has them.

    A backend with ``outputs`` gives all three from one run; any other gives its logits (and maps) as before.
    """
    run = getattr(backend, "outputs", None)
    if callable(run):
        out = run(x, attention=attention and has_attention(backend))
        return out if isinstance(out, Outputs) else Outputs(*out)
    if attention and has_attention(backend):
        logits, maps = backend.predict_with_attention(x)  # type: ignore[attr-defined]  # has_attention
        return Outputs(logits, maps)
    return Outputs(backend(x))  # type: ignore[operator]  # a Backend is callable


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (N, C) logits, float32."""
    z = logits.astype(np.float32) - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def temperature_of(backend: object) -> float:
    """The temperature T a backend's model file carries (``metadata.temperature``), 1.0 when it has none."""
    t = getattr(getattr(backend, "metadata", None), "temperature", None)
    return float(t) if t is not None else 1.0


def probabilities(backend: object, logits: np.ndarray) -> np.ndarray:
    """Class probabilities (N, C), float32, of a backend's logits (N, C): softmax(logits / T).

    T is :func:`temperature_of` the backend (1 for a model that was never calibrated): the one place a
    calibrated temperature is applied, whatever runtime produced the logits.
    """
    logits = np.asarray(logits, np.float32)
    t = temperature_of(backend)
    return softmax(logits / np.float32(t) if t != 1.0 else logits)
