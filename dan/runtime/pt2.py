"""``torch.export`` programs (``.pt2``): check one holds no pickle, load it, run it.

``torch.export`` replaces TorchScript (deprecated in current PyTorch) for a PyTorch-only deployment:
a ``.pt2`` file holds the re-parameterised network as an ATen graph with its weights, a dynamic
batch axis, and the same two outputs and ``dan`` metadata as an ONNX export.

``torch.export.load`` unpickles some parts of an archive (pickled weights, custom and opaque
objects, sample inputs) and would run code from a crafted file. :func:`check_pt2_archive` reads the
archive's JSON configs first and refuses any file with a pickled payload, and loads every other
``.pt`` entry with the weights-only unpickler; only then is the program loaded. Files
:func:`dan.export.pt2.export_pt2` writes never contain pickled objects.
"""

from __future__ import annotations

import io
import json
import logging
import os
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from dan.errors import DanError, one_line
from dan.models.metadata import ModelMetadata
from dan.runtime.backend import Backend, Outputs
from dan.runtime.torch import cuda_math
from dan.system import DeviceChoice

__all__ = ["PT2_METADATA", "Pt2Backend", "check_pt2_archive", "load_pt2"]

PT2_METADATA = "dan.json"
"""The archive's extra file holding the ``dan`` metadata (JSON)."""


def check_pt2_archive(path: Path) -> None:
    """Refuse a ``.pt2`` archive that would unpickle anything but tensors.

    Raises:
        DanError: Not a ZIP archive, a legacy or pickled payload, or an entry the weights-only
            unpickler refuses. The message names the file and the entry.
    """
    try:
        archive = zipfile.ZipFile(path)
    except Exception as err:  # BadZipFile, OSError, EOFError, ValueError on a damaged directory
        raise DanError(f"{path}: not a torch.export (.pt2) archive: {err}") from None
    with archive:
        names = archive.namelist()
        configs = [n for n in names if n.endswith(("_weights_config.json", "_constants_config.json"))]
        if not any(n.endswith("_weights_config.json") for n in configs):
            raise DanError(f"{path}: not a torch.export (.pt2) archive of this PyTorch's format (no weights config)")
        for name in configs:
            try:
                entries = json.loads(_read_entry(archive, path, name)).get("config", {})
                items = [(str(key), dict(meta)) for key, meta in entries.items()]
            except (json.JSONDecodeError, UnicodeDecodeError, AttributeError, TypeError, ValueError) as err:
                raise DanError(f"{path}: damaged archive entry {name}: {one_line(err, 120)}") from None
            for key, meta in items:
                stem = str(meta.get("path_name", ""))
                pickled = meta.get("use_pickle", True) or not stem.startswith(("weight_", "tensor_"))
                if pickled:
                    raise DanError(
                        f"{path}: refused to load: entry {key!r} is a pickled object ({stem}); "
                        "dan reads .pt2 files that hold plain tensors only (as dan export writes them)"
                    )
        for name in names:
            if name.endswith(".pt"):  # sample inputs, legacy constants: tensors only, weights-only unpickler
                data = _read_entry(archive, path, name)
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", UserWarning)
                        torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
                except Exception as err:
                    detail = one_line(err, 120)
                    raise DanError(f"{path}: refused to load: entry {name} is not plain tensors ({detail})") from None


def _read_entry(archive: zipfile.ZipFile, path: Path, name: str) -> bytes:
    """One archive entry's bytes; a damaged entry (bad offsets, sizes, compression) is a ``DanError``."""
    try:
        return archive.read(name)
    except Exception as err:  # zipfile raises BadZipFile, OSError, EOFError, zlib.error, ... on damage
        raise DanError(f"{path}: damaged archive entry {name}: {one_line(err, 120)}") from None


def load_pt2(
    path: str | os.PathLike, device: torch.device | None = None
) -> tuple[torch.nn.Module, ModelMetadata | None]:
    """Check and load a ``.pt2`` file: the runnable module and its ``dan`` record (None when it has none).

    Args:
        path: The file.
        device: Where the program runs (None: where it was exported, the CPU); moved there by
            ``torch.export``'s own pass, which also moves the device arguments inside the graph.

    Raises:
        DanError: Missing, unsafe or unreadable file, damaged metadata, or weights that do not match the
            checksum written with them.
    """
    path = Path(path)
    if not path.is_file():
        raise DanError(f"{path}: no such file")
    check_pt2_archive(path)
    extra = {PT2_METADATA: ""}
    try:
        export_log = logging.getLogger("torch.export")  # logs a traceback before it raises: keep it quiet
        level, export_log.level = export_log.level, logging.CRITICAL
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                program = torch.export.load(str(path), extra_files=extra)
        finally:
            export_log.setLevel(level)
    except Exception as err:
        raise DanError(f"{path}: not a loadable torch.export program: {one_line(err)}") from None
    record = ModelMetadata.read(extra.get(PT2_METADATA), f"{path}: ")
    if record is not None:
        record.verify(program.state_dict, f"{path}: ")
    if device is not None and device.type != "cpu":
        from torch.export.passes import move_to_device_pass

        program = move_to_device_pass(program, device)
    return program.module(), record


class Pt2Backend(Backend):
    """Run an exported ``.pt2`` program with the backend interface (see :mod:`dan.runtime.backend`).

    Args:
        path: The ``.pt2`` file (from ``dan export --format pt2``).
        labels: Label set name or class names, overriding the file's.
        threads: Intra-op CPU threads for torch (None leaves torch's setting alone).
        device: Where to run, resolved (:func:`dan.system.pick_device`); None: the CPU.
        tf32: On a CUDA GPU, let float32 use TF32 math (False: full float32,
            :func:`dan.runtime.torch.cuda_math`).

    Raises:
        DanError: The file is missing, unsafe, unreadable, or carries no class names.
    """

    name = "pt2"

    def __init__(
        self,
        path: str | os.PathLike,
        labels: str | Sequence[str] | None = None,
        threads: int | None = None,
        device: DeviceChoice | None = None,
        tf32: bool = True,
    ) -> None:
        self.torch_device = torch.device(device.device if device is not None else "cpu")
        self.tf32 = tf32
        if threads:
            torch.set_num_threads(int(threads))
        self.path = Path(path)
        self.module, record = load_pt2(self.path, self.torch_device)
        if record is None or not record.num_classes:
            raise DanError(f"{self.path}: no dan metadata in this .pt2 file (export it with 'dan export --format pt2')")
        super().__init__(record.with_labels(labels, f"{self.path}: "), device)
        self.has_va = self.metadata.has_va  # the program's third output

    def outputs(self, x: np.ndarray, attention: bool = False) -> Outputs:
        """Logits (N, C), attention maps (N, K, h, w) when asked for, and valence/arousal (N, 2) of a model
        with them (else None), from one run (:class:`dan.runtime.backend.Outputs`)."""
        if len(x) == 0:  # the program's batch axis starts at 1
            return self.empty(attention)
        with torch.inference_mode(), cuda_math(self.torch_device, self.tf32):
            out = self.module(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(self.torch_device))
        va = out[2].cpu().numpy() if self.has_va and len(out) > 2 else None  # (logits, attention[, va])
        return Outputs(out[0].cpu().numpy(), out[1].cpu().numpy() if attention else None, va)
