"""``torch.export`` programs (``.pt2``): write one, check it holds no pickle, run it.

``torch.export`` replaces TorchScript (deprecated in current PyTorch) for a PyTorch-only deployment:
a ``.pt2`` file holds the re-parameterised network as an ATen graph with its weights, a dynamic
batch axis, and the same two outputs and ``dan`` metadata as an ONNX export.

``torch.export.load`` unpickles some parts of an archive (pickled weights, custom and opaque
objects, sample inputs) and would run code from a crafted file. :func:`check_pt2_archive` reads the
archive's JSON configs first and refuses any file with a pickled payload, and loads every other
``.pt`` entry with the weights-only unpickler; only then is the program loaded. Files this module
writes never contain pickled objects.
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

from dan.common import DanError, Preprocessing, one_line, resolve_labels
from dan.models.metadata import ModelMetadata, tensor_checksum

__all__ = ["Pt2Backend", "check_pt2_archive", "export_pt2", "load_pt2"]

_META = "dan.json"


def export_pt2(net: torch.nn.Module, example: torch.Tensor, output: Path, metadata: str) -> Path:
    """Write ``net`` (returning ``(logits, attention)``) as a ``torch.export`` program with a dynamic batch.

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
    torch.export.save(program, str(output), extra_files={_META: json.dumps(meta)})
    return output


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


def load_pt2(path: str | os.PathLike) -> tuple[torch.nn.Module, dict]:
    """Check and load a ``.pt2`` file: the runnable module and its ``dan`` metadata.

    Raises:
        DanError: Missing, unsafe or unreadable file.
    """
    path = Path(path)
    if not path.is_file():
        raise DanError(f"{path}: no such file")
    check_pt2_archive(path)
    extra = {_META: ""}
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
    try:
        meta = json.loads(extra.get(_META) or "{}")
    except json.JSONDecodeError:
        meta = {}
    if not isinstance(meta, dict):
        meta = {}
    if meta:
        ModelMetadata.from_dict(meta, f"{path}: ").verify(program.state_dict, f"{path}: ")
    return program.module(), meta


class Pt2Backend:
    """Run an exported ``.pt2`` program with the backend interface (see :mod:`dan.inference.backends`).

    Args:
        path: The ``.pt2`` file (from ``dan export --format pt2``).
        labels: Label set name or class names, overriding the file's.
        threads: Intra-op CPU threads for torch (None leaves torch's setting alone).

    Raises:
        DanError: The file is missing, unsafe, unreadable, or carries no class names.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        labels: str | Sequence[str] | None = None,
        threads: int | None = None,
    ) -> None:
        if threads:
            torch.set_num_threads(int(threads))
        self.path = Path(path)
        self.module, meta = load_pt2(self.path)
        config = meta.get("model_config", {})
        num_classes = config.get("num_classes") or (len(meta["labels"]) if meta.get("labels") else None)
        if not num_classes:
            raise DanError(f"{self.path}: no dan metadata in this .pt2 file (export it with 'dan export --format pt2')")
        try:
            self.labels = resolve_labels(labels if labels is not None else meta.get("labels"), int(num_classes))
        except DanError as err:
            raise DanError(f"{self.path}: {err}") from None
        self.preprocessing = Preprocessing.from_dict(meta.get("preprocessing"), f"{self.path}: ")
        self.model_config = dict(config)
        self.trained_on = meta.get("trained_on") if isinstance(meta.get("trained_on"), dict) else None
        self.name = "pt2"

    def predict_with_attention(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Logits (N, C) and attention maps (N, K, h, w) of a normalised batch (N, 3, S, S)."""
        with torch.inference_mode():
            logits, maps = self.module(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))
        return logits.numpy(), maps.numpy()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Logits (N, C) of a normalised batch (N, 3, S, S)."""
        if len(x) == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        return self.predict_with_attention(x)[0]

    def attention(self, x: np.ndarray) -> np.ndarray:
        """The heads' spatial attention maps, float32 (N, K, h, w)."""
        return self.predict_with_attention(x)[1]
