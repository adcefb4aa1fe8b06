"""Model runners: the one interface the predictor and the demo call, whatever runs the network.

A *backend* is any object with:

- ``labels: tuple[str, ...]``: class names, index ``i`` naming output ``i``;
- ``preprocessing: Preprocessing``: input size, mean and std the network expects;
- ``__call__(x) -> logits``: ``x`` float32 of shape (N, 3, S, S), normalised RGB; returns float32
  logits of shape (N, C) as numpy;
- optionally ``attention(x) -> maps``: float32 of shape (N, K, h, w), the heads' spatial attention.

:class:`TorchBackend` runs the PyTorch model; ``dan.inference.onnx_backend.OnnxBackend`` (the export
module) runs an exported ONNX file through onnxruntime with the same interface.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from dan.common import DanError, Preprocessing, resolve_labels
from dan.hub import RELEASED, is_remote, released_model, resolve_checkpoint
from dan.models import DAN, load_model
from dan.models.checkpoint import checkpoint_verifier

__all__ = ["BACKENDS", "AttentionBackend", "Backend", "TorchBackend", "has_attention", "load_backend"]

BACKENDS = ("auto", "torch", "onnx", "openvino")


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

    def attention(self, x: np.ndarray) -> np.ndarray:
        """Attention maps (N, K, h, w) for a normalised batch (N, 3, S, S)."""
        ...


def has_attention(backend: object) -> bool:
    """True when ``backend`` can return the heads' spatial attention maps (an export without them cannot)."""
    supports = getattr(backend, "supports_attention", None)
    return bool(supports) if supports is not None else callable(getattr(backend, "attention", None))


class TorchBackend:
    """Run a :class:`dan.models.DAN` with PyTorch under ``torch.inference_mode``.

    By default it runs a re-parameterised copy (BatchNorms folded, each head's three branches merged
    into one convolution; on the CPU in the channels-last layout): the same function to float32
    rounding, and faster. The caller's model is not changed.

    Args:
        model_or_path: A DAN model, or the path of any checkpoint :func:`dan.load_model` reads.
        labels: Label set name or class names; overrides the model's own (needed for 7-class
            reference checkpoints, which carry no names).
        device: Torch device to run on.
        threads: Intra-op CPU threads for torch (None leaves torch's setting alone).
        reparameterize: Run the re-parameterised copy (False: the model as it is, in eval mode).

    Raises:
        DanError: The checkpoint cannot be read, or the model has no label names.
    """

    auto_reason: str  # set by dan.inference.auto.auto_backend: what --backend auto picked and why

    def __init__(
        self,
        model_or_path: DAN | str | os.PathLike,
        labels: str | Sequence[str] | None = None,
        device: str | torch.device = "cpu",
        threads: int | None = None,
        reparameterize: bool = True,
    ) -> None:
        if threads:
            torch.set_num_threads(int(threads))
        if isinstance(model_or_path, torch.nn.Module):
            model = model_or_path
            names = labels if labels is not None else getattr(model, "labels", None)
        else:
            model = load_model(model_or_path, labels=labels)
            names = model.labels
        self.device = torch.device(device)
        self.labels: tuple[str, ...] = resolve_labels(names, model.num_classes)
        self.preprocessing: Preprocessing = model.preprocessing
        self.trained_on: dict | None = getattr(model, "trained_on", None)
        self.source = model  # the model as given (export reads it)
        net: DAN
        if reparameterize:
            from dan.models.reparam import reparameterize as fold

            net = fold(model, channels_last=self.device.type == "cpu")  # a copy
        else:
            net = copy.deepcopy(model)
        self.model: DAN = net.to(self.device).eval()
        self.name = "torch"

    def _tensor(self, x: np.ndarray) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected a batch of shape (N, 3, S, S), got {x.shape}")
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(self.device)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Logits for a normalised batch.

        Args:
            x: float32 array of shape (N, 3, S, S).

        Returns:
            float32 array of shape (N, C).
        """
        if len(x) == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        with torch.inference_mode():
            return self.model(self._tensor(x)).logits.float().cpu().numpy()

    def predict_with_attention(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Logits (N, C) and attention maps (N, K, h, w) from one forward pass."""
        with torch.inference_mode():
            out = self.model(self._tensor(x), return_attention=True)
            return out.logits.float().cpu().numpy(), out.attention.float().cpu().numpy()

    def attention(self, x: np.ndarray) -> np.ndarray:
        """Spatial attention maps of each head, float32 of shape (N, K, h, w)."""
        return self.predict_with_attention(x)[1]


def load_backend(
    path: str | os.PathLike,
    backend: str = "auto",
    labels: str | Sequence[str] | None = None,
    threads: int | None = None,
    device: str = "cpu",
    fastest: bool = False,
) -> Backend:
    """Open a model file with the right runner.

    Args:
        path: A checkpoint (``.pt``, ``.ckpt``, ``.pth``, ``.safetensors``), an export (``.onnx``,
            ``.pt2``), or a
            released model name, https:// URL or ``hf://`` path (fetched once into the cache, see
            :func:`dan.hub.resolve_checkpoint`).
        backend: ``"auto"`` (ONNX Runtime for a ``.onnx`` path, else PyTorch), ``"torch"`` (a ``.pt2``
            file runs as its exported program), ``"onnx"`` or ``"openvino"`` (an ``.onnx`` file run
            by OpenVINO, an optional package).
        labels: Label set name or class names, overriding what the file stores.
        threads: CPU threads for the runtime (None: its default).
        device: Torch device for PyTorch checkpoints (``cpu``, ``cuda``, ``cuda:1``).
        fastest: With ``auto`` and a PyTorch checkpoint on the CPU, run whichever of PyTorch and ONNX
            Runtime (and OpenVINO, when installed) is faster here (:func:`dan.inference.auto.auto_backend`:
            a one-time export and timed probe, both cached): worth it for long runs (``dan demo``,
            ``dan serve``).

    Returns:
        A backend (see the module docstring).

    Raises:
        DanError: Unknown backend, missing file, or the ONNX runtime module is unavailable.
    """
    if backend not in BACKENDS:
        raise DanError(f"unknown backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    released = released_model(path)
    if released is not None and labels is None:
        labels = released.labels
    if is_remote(path):
        path = resolve_checkpoint(path, verify=checkpoint_verifier(path))
    path = Path(path)
    if not path.is_file():
        names = ", ".join(RELEASED)
        raise DanError(
            f"{path}: checkpoint not found: no such file, and not a released model name ({names}), "
            "https:// URL or hf:// path"
        )
    suffix = path.suffix.lower()
    if suffix in (".ts", ".torchscript", ".jit"):
        raise DanError(
            f"{path}: TorchScript files are no longer read (TorchScript is deprecated in PyTorch); "
            "re-export with 'dan export --format pt2' (torch.export) or '--format onnx'"
        )
    auto = backend == "auto"
    if auto:
        backend = "onnx" if suffix == ".onnx" else "torch"
    if backend == "torch":
        if suffix == ".onnx":
            raise DanError(f"{path}: an ONNX file runs with --backend onnx (or auto), not torch")
        if suffix == ".pt2":
            from dan.inference.pt2 import Pt2Backend

            return Pt2Backend(path, labels=labels, threads=threads)
        runner = TorchBackend(path, labels=labels, threads=threads, device=device)
        if auto and fastest:
            from dan.inference.auto import auto_backend

            return auto_backend(runner, threads)
        return runner
    if suffix != ".onnx":
        raise DanError(f"{path}: --backend {backend} runs .onnx files; export this one with 'dan export' first")
    from dan.inference.auto import int8_warning

    if backend == "openvino":
        from dan.inference.openvino_backend import OpenVinoBackend

        ov_runner = OpenVinoBackend(path, labels=labels, threads=threads)
        ov_runner.warning = int8_warning(path)
        return ov_runner
    try:
        from dan.inference.onnx_backend import OnnxBackend
    except ImportError as err:
        raise DanError(
            f"the onnx backend is not available ({err}); install the export extra (pip install 'dan[export]') "
            "or use --backend torch with a PyTorch checkpoint"
        ) from None
    onnx_runner = OnnxBackend(path, labels=labels, threads=threads)
    onnx_runner.warning = int8_warning(path)  # int8 without VNNI: slower than float32, said once by the CLI
    return onnx_runner
