"""ONNX export of the re-parameterised network, with the model's settings in the file's metadata.

What is exported is :func:`dan.models.reparam.reparameterize`'s copy (every BatchNorm folded, each
DAN head's three convolution branches merged into one), with a dynamic batch axis and two outputs:
``logits`` (N, C) and ``attention`` (N, K, H, W), and a third, ``va`` (N, 2), for a model with the
valence/arousal output (``va_head``; a model without it exports exactly as before). The class names,
preprocessing record and model settings travel in ONNX ``metadata_props`` (key ``dan``, JSON, plus
``labels`` and ``preprocessing``). PyTorch's torch.export-based exporter (``dynamo=True``) is used; the
legacy exporter is only a fallback when it fails.
"""

from __future__ import annotations

import copy
import json
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from dan.errors import DanError
from dan.fileio import atomic_path
from dan.models.dan import DAN
from dan.models.metadata import ModelMetadata
from dan.models.reparam import reparameterize
from dan.runtime.onnx import onnx_weights_checksum

__all__ = [
    "DEFAULT_OPSET",
    "OUTPUT_NAMES",
    "VA_OUTPUT",
    "ExportOutputs",
    "export_metadata",
    "export_onnx",
    "output_names",
    "prepare_for_export",
    "sample_input",
    "set_onnx_metadata",
]

DEFAULT_OPSET = 18
OUTPUT_NAMES = ("logits", "attention")
VA_OUTPUT = "va"


def output_names(model: DAN) -> tuple[str, ...]:
    """The outputs of ``model``'s export: :data:`OUTPUT_NAMES`, then ``va`` for a model with the output."""
    return (*OUTPUT_NAMES, VA_OUTPUT) if model.has_va else OUTPUT_NAMES


def export_metadata(model: DAN) -> dict[str, str]:
    """String metadata an exported file carries: ``dan`` (all settings, JSON), ``labels``, ``preprocessing``."""
    meta = ModelMetadata.of_model(model).to_dict()
    meta["checksum"] = None  # the exported graph has its own weights (ONNX: checked through "dan_weights")
    meta["outputs"] = list(output_names(model))
    meta["reparameterized"] = True
    return {
        "dan": json.dumps(meta),
        "labels": json.dumps(meta["labels"]),
        "preprocessing": json.dumps(meta["preprocessing"]),
    }


class ExportOutputs(nn.Module):
    """``(logits, attention)`` of a DAN, and ``va`` when it has them: the tuple an exported graph returns."""

    def __init__(self, model: DAN) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(x, return_attention=True)
        return (out.logits, out.attention) if out.va is None else (out.logits, out.attention, out.va)


def prepare_for_export(model: DAN) -> ExportOutputs:
    """The re-parameterised float32 CPU copy of ``model`` wrapped to return ``(logits, attention[, va])``.

    The caller's model is not changed (not moved, not cast, its mode kept).
    """
    if not isinstance(model, DAN):
        raise TypeError(f"expected a DAN model, got {type(model).__name__}")
    return ExportOutputs(reparameterize(copy.deepcopy(model).cpu().float())).eval()


def sample_input(model: DAN, batch: int = 2) -> torch.Tensor:
    """A fixed random input (batch, C, S, S) at the model's input size."""
    s = model.preprocessing.input_size
    return torch.randn(batch, model.in_chans, s, s, generator=torch.Generator().manual_seed(0))


def set_onnx_metadata(path: Path, metadata: dict[str, str]) -> None:
    """Replace an ONNX file's ``metadata_props`` (in place), adding ``dan_weights`` (the checksum of its
    initializers, verified when it is loaded), and mark ``dan`` as its producer."""
    import onnx

    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    metadata = {k: v for k, v in metadata.items() if k != "dan_weights"}
    metadata["dan_weights"] = onnx_weights_checksum(proto)
    for key, value in metadata.items():
        proto.metadata_props.add(key=key, value=value)
    proto.producer_name = "dan"
    onnx.save(proto, str(path))


def export_onnx(model: DAN, output: str | os.PathLike, opset: int = DEFAULT_OPSET) -> Path:
    """Write the re-parameterised ``model`` as an ONNX file (float32, dynamic batch axis).

    Inputs ``input`` (N, 3, S, S); outputs ``logits`` (N, C) and ``attention`` (N, K, H, W), and ``va``
    (N, 2) for a model with the valence/arousal output; metadata from :func:`export_metadata`. Written
    atomically.

    Args:
        model: The DAN (not changed; its ``labels`` and ``preprocessing`` go in the metadata).
        output: Destination ``.onnx`` file (one self-contained file).
        opset: ONNX opset version.

    Returns:
        The path written.
    """
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise DanError("ONNX export needs onnx and onnxscript: pip install 'dan-fer[export]'") from None
    output = Path(output)
    names = list(output_names(model))
    net = prepare_for_export(model)
    x = sample_input(model)
    with atomic_path(output, "ONNX file") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            program = torch.onnx.export(
                net,
                (x,),
                None,
                dynamo=True,
                input_names=["input"],
                output_names=names,
                dynamic_shapes={"x": {0: torch.export.Dim("batch", min=1, max=65536)}},
                opset_version=opset,
                verbose=False,
            )
            assert program is not None  # dynamo=True returns the ONNXProgram (None is for the legacy exporter)
            program.save(str(tmp), external_data=False)
        except Exception as err:  # the legacy exporter as fallback
            warnings.warn(
                f"torch.export-based ONNX export failed ({type(err).__name__}); using the legacy exporter", stacklevel=2
            )
            torch.onnx.export(
                net,
                (x,),
                str(tmp),
                dynamo=False,
                input_names=["input"],
                output_names=names,
                dynamic_axes={name: {0: "batch"} for name in ("input", *names)},
                opset_version=opset,
            )
        set_onnx_metadata(tmp, export_metadata(model))
    return output
