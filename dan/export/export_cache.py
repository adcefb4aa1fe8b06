"""The export cache, ``$DAN_HOME/exports/``: the ONNX files ``--backend auto`` races (:mod:`dan.auto`).

Files are named by a digest of the checkpoint's whole record (weights checksum, class names,
preprocessing, ``trained_on``, temperature) and its input size, so a changed checkpoint gets new files.
The float32 file is written on first use by :func:`dan.auto.open_backend`;
``dan export --int8`` keeps a copy of its int8 file here (:func:`cache_int8`), where the race finds it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from dan.fileio import atomic_path
from dan.models.dan import DAN
from dan.models.metadata import ModelMetadata
from dan.paths import dan_home

__all__ = ["cache_int8", "cached_export", "onnx_weights_key"]


def cached_export(model: DAN, kind: str = "float32") -> Path:
    """Where the export cache keeps ``model``'s ONNX file of ``kind`` (``float32`` or ``int8``).

    The name is a digest of the model's whole record (:class:`dan.models.metadata.ModelMetadata`: the
    weights checksum, class names, preprocessing, ``trained_on``, temperature; the export carries that
    record) and its input size, so a changed checkpoint, or the same weights with another record (a
    calibrated copy, another training record), gets its own files.
    """
    record = ModelMetadata.of_model(model).to_dict()
    key = hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()[:16]
    size = model.preprocessing.input_size
    suffix = "" if kind == "float32" else f"-{kind}"
    return dan_home() / "exports" / f"{key}-{size}{suffix}.onnx"


def cache_int8(model: DAN, int8_file: str | os.PathLike) -> Path:
    """Keep a copy of ``model``'s int8 export in the export cache, where ``--backend auto`` races it.

    A hard link where the cache is on the same file system, else a copy; written atomically.

    Returns:
        The cached file.
    """
    target = cached_export(model, "int8")
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target, "cached int8 export") as tmp:
        tmp.unlink(missing_ok=True)
        try:
            os.link(int8_file, tmp)
        except OSError:  # another file system (or no hard links): a copy
            shutil.copyfile(int8_file, tmp)
    return target


def onnx_weights_key(path: Path) -> str:
    """A short identity of an ONNX file's weights (its ``dan_weights`` checksum, else its size and time)."""
    try:
        import onnx

        for prop in onnx.load(str(path), load_external_data=False).metadata_props:
            if prop.key == "dan_weights":
                return prop.value.removeprefix("sha256:")[:16]
    except Exception:
        pass
    stat = path.stat()
    return f"{stat.st_size}-{stat.st_mtime_ns}"
