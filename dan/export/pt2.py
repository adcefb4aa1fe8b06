"""Writing ``torch.export`` programs (``.pt2``): the re-parameterised network, its weights and metadata.

``torch.export`` replaces TorchScript (deprecated in current PyTorch) for a PyTorch-only deployment:
a ``.pt2`` file holds the re-parameterised network as an ATen graph with its weights, a dynamic
batch axis, and the same outputs (two, or three with ``va``) and ``dan`` metadata as an ONNX export. Nothing in it is
pickled: :func:`dan.runtime.pt2.check_pt2_archive` refuses files that are, before loading them.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch

from dan.models.metadata import tensor_checksum
from dan.runtime.pt2 import PT2_METADATA

__all__ = ["export_pt2"]


def export_pt2(net: torch.nn.Module, example: torch.Tensor, output: Path, metadata: str) -> Path:
    """Write ``net`` (returning ``(logits, attention[, va])``) as a ``torch.export`` program with a dynamic batch.

    Args:
        net: The module to export, in eval mode.
        example: An example input (N >= 2, 3, S, S).
        output: Destination file (written by the caller's atomic-write helper to a temporary name).
        metadata: The ``dan`` metadata as a JSON string.

    Returns:
        ``output``.
    """
    batch = torch.export.Dim("batch", min=1, max=65536)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        program = torch.export.export(net.eval(), (example,), dynamic_shapes={"x": {0: batch}})
    meta = json.loads(metadata)
    meta["checksum"] = tensor_checksum(program.state_dict)  # the program's own weights, verified on load
    torch.export.save(program, str(output), extra_files={PT2_METADATA: json.dumps(meta)})
    return output
