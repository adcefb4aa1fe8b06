"""The PyTorch runtime: a :class:`dan.models.DAN` (or any checkpoint ``load_model`` reads) behind the
backend interface (:mod:`dan.runtime.backend`), re-parameterised for speed by default.
"""

from __future__ import annotations

import contextlib
import copy
import os
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from dan.models import DAN, load_model
from dan.models.metadata import ModelMetadata
from dan.runtime.backend import Backend, Outputs
from dan.system import DeviceChoice

__all__ = ["TorchBackend", "cuda_math"]


@contextlib.contextmanager
def cuda_math(device: torch.device, tf32: bool = True) -> Iterator[None]:
    """Run float32 on a CUDA ``device`` in full precision when ``tf32`` is False (TF32 tensor-core math off
    for cuDNN convolutions and cuBLAS matrix products, put back after); nothing on other devices.

    PyTorch runs float32 convolutions in TF32 on Ampere and later GPUs by default: faster, and about
    1e-3 relative error, which export verification's tolerance must not absorb.
    """
    if tf32 or device.type != "cuda":
        yield
        return
    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


class TorchBackend(Backend):
    """Run a :class:`dan.models.DAN` with PyTorch under ``torch.inference_mode``.

    By default it runs a re-parameterised copy (BatchNorms folded, each head's three branches merged
    into one convolution; on the CPU in the channels-last layout): the same function to float32
    rounding, and faster. The caller's model is not changed.

    Args:
        model_or_path: A DAN model, or the path of any checkpoint :func:`dan.load_model` reads.
        labels: Label set name or class names; overrides the model's own (needed for 7-class
            reference checkpoints, which carry no names).
        device: Where to run, resolved (:func:`dan.system.pick_device`; :func:`dan.runtime.loader.load_backend`
            resolves ``--device`` once and hands it here); None: the CPU. ``torch_device`` is its
            ``torch.device``.
        threads: Intra-op CPU threads for torch (None leaves torch's setting alone).
        reparameterize: Run the re-parameterised copy (False: the model as it is, in eval mode).
        tf32: On a CUDA GPU, let float32 use TF32 tensor-core math as PyTorch does by default (False:
            full float32, :func:`cuda_math`).

    Raises:
        DanError: The checkpoint cannot be read, or the model has no label names.
    """

    name = "torch"

    def __init__(
        self,
        model_or_path: DAN | str | os.PathLike,
        labels: str | Sequence[str] | None = None,
        device: DeviceChoice | None = None,
        threads: int | None = None,
        reparameterize: bool = True,
        tf32: bool = True,
    ) -> None:
        self.tf32 = tf32
        if threads:
            torch.set_num_threads(int(threads))
        model = model_or_path if isinstance(model_or_path, torch.nn.Module) else load_model(model_or_path, labels)
        record = ModelMetadata(  # the model's own record, without hashing its weights (they are in memory)
            model.model_config,
            labels=getattr(model, "labels", None),
            preprocessing=model.preprocessing,
            trained_on=getattr(model, "trained_on", None),
            temperature=getattr(model, "temperature", None),
        )
        super().__init__(record.with_labels(labels, num_classes=model.num_classes), device)
        self.torch_device = torch.device(self.device.device)
        self.source = model  # the model as given (export reads it)
        net: DAN
        if reparameterize:
            from dan.models.reparam import reparameterize as fold

            net = fold(model, channels_last=self.torch_device.type == "cpu")  # a copy
        else:
            net = copy.deepcopy(model)
        self.model: DAN = net.to(self.torch_device).eval()
        self.has_va = model.has_va

    def _tensor(self, x: np.ndarray) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected a batch of shape (N, 3, S, S), got {x.shape}")
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(self.torch_device)

    def outputs(self, x: np.ndarray, attention: bool = False) -> Outputs:
        """Logits (N, C), attention maps (N, K, h, w) when asked for, and valence/arousal (N, 2) of a model
        with them (else None), from one forward pass (:class:`dan.runtime.backend.Outputs`)."""
        if len(x) == 0:
            return self.empty(attention)
        with torch.inference_mode(), cuda_math(self.torch_device, self.tf32):
            out = self.model(self._tensor(x), return_attention=attention)
            maps = out.attention.float().cpu().numpy() if out.attention is not None else None
            va = out.va.float().cpu().numpy() if out.va is not None else None
            return Outputs(out.logits.float().cpu().numpy(), maps, va)
