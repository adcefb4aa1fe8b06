"""Writing a calibrated temperature into a copy of a model file (what ``dan calibrate`` writes).

The temperature T (:attr:`dan.models.metadata.ModelMetadata.temperature`) travels in the file's ``dan``
record, as every other setting does, so every runtime reads it and applies it (softmax(logits / T),
:func:`dan.runtime.backend.probabilities`):

- this project's checkpoints (``.ckpt``, ``.pt``): the ``dan`` entry of the dict, everything else kept
  as it was (a Lightning checkpoint's whole-file checksum is renewed by the caller's ``finish`` hook,
  since computing it is training's job);
- ``.safetensors``: the ``dan`` JSON of the file's metadata, the tensors as they were;
- ONNX exports: the ``dan`` entry of ``metadata_props`` (the graph, its weights and their
  ``dan_weights`` checksum unchanged); ``.pt2`` programs: the ``dan.json`` extra file (the archive is
  checked for pickles before it is loaded, and the program saved again);
- a file without a ``dan`` record (a reference ``.pth``, a released model): this project's ``.pt``
  with the reference weights, the record and T.

The weights are never changed, so the record's weights checksum stays valid. Every file is written
under a temporary name beside its destination and renamed into place.
"""

from __future__ import annotations

import dataclasses
import json
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

from dan.errors import DanError, one_line
from dan.fileio import atomic_path
from dan.models.backbone import read_state_dict
from dan.models.checkpoint import save_model
from dan.models.loading import load_model
from dan.models.metadata import ModelMetadata

__all__ = ["CHECKPOINT_SUFFIXES", "EXPORT_SUFFIXES", "calibrated_record", "write_temperature"]

CHECKPOINT_SUFFIXES = (".ckpt", ".pt", ".safetensors")
"""Files holding a ``dan`` record that is rewritten in place of the old one."""
EXPORT_SUFFIXES = (".onnx", ".pt2")
"""Exports whose metadata gets the temperature."""


def calibrated_record(stored: object, fallback: ModelMetadata, temperature: float, calibration: dict | None) -> dict:
    """The ``dan`` record to write: the stored one (or ``fallback``'s when the file has none) with T.

    Args:
        stored: The record as the file holds it (a mapping, its JSON text, or None).
        fallback: The record a loader settled (class names included) for a file that stores none.
        temperature: T.
        calibration: How T was fitted (plain types).

    Raises:
        DanError: A damaged stored record (:meth:`ModelMetadata.read`).
    """
    record = ModelMetadata.read(stored) or fallback
    return dataclasses.replace(record, temperature=float(temperature), calibration=calibration).to_dict()


Record = Callable[[object], dict]
"""What the rewriters call with the file's stored record to get the one to write (:func:`calibrated_record`)."""


def _rewrite_safetensors(src: Path, dst: Path, make: Record) -> bool:
    from safetensors import safe_open
    from safetensors.torch import save_file

    try:
        with safe_open(str(src), framework="pt") as f:
            meta = dict(f.metadata() or {})
            state = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as err:
        raise DanError(f"{src}: not a readable safetensors file: {one_line(err)}") from None
    if not meta.get("dan"):
        return False
    meta["dan"] = json.dumps(make(meta["dan"]))
    with atomic_path(dst, "model file") as tmp:
        save_file(state, str(tmp), metadata=meta)
    return True


def _rewrite_checkpoint(src: Path, dst: Path, make: Record, finish: Callable[[dict], None] | None) -> bool:
    import torch

    obj = read_state_dict(src)
    if not isinstance(obj, dict) or not obj.get("dan"):
        return False  # a reference file named .pt: written as a new .pt by the caller
    obj["dan"] = make(obj["dan"])
    if finish is not None:
        finish(obj)
    with atomic_path(dst, "model file") as tmp:
        torch.save(obj, tmp)
    return True


def _rewrite_onnx(src: Path, dst: Path, make: Record) -> bool:
    try:
        import onnx
    except ImportError:
        raise DanError("rewriting an ONNX file's metadata needs onnx: pip install 'dan-fer[export]'") from None
    try:
        proto = onnx.load(str(src))
    except Exception as err:
        raise DanError(f"{src}: not a readable ONNX file: {one_line(err)}") from None
    props = {p.key: p.value for p in proto.metadata_props}
    record = make(props.get("dan"))  # another exporter's file: the record the runtime settled
    props.update(
        dan=json.dumps(record),
        labels=json.dumps(record["labels"]),
        preprocessing=json.dumps(record["preprocessing"]),
    )
    del proto.metadata_props[:]
    for key, value in props.items():  # the graph, its weights and their dan_weights checksum as they were
        proto.metadata_props.add(key=key, value=value)
    with atomic_path(dst, "ONNX file") as tmp:
        onnx.save(proto, str(tmp))
    return True


def _rewrite_pt2(src: Path, dst: Path, make: Record) -> bool:
    import torch

    from dan.runtime.pt2 import PT2_METADATA, check_pt2_archive

    check_pt2_archive(src)  # no pickled payload is loaded
    extra = {PT2_METADATA: ""}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.export.load(str(src), extra_files=extra)
    except Exception as err:
        raise DanError(f"{src}: not a loadable torch.export program: {one_line(err)}") from None
    record = make(extra.get(PT2_METADATA))
    with atomic_path(dst, "pt2 file") as tmp:
        torch.export.save(program, str(tmp), extra_files={PT2_METADATA: json.dumps(record)})
    return True


def write_temperature(
    source: str | os.PathLike,
    output: str | os.PathLike,
    temperature: float,
    record: ModelMetadata,
    calibration: dict | None = None,
    labels: str | Sequence[str] | None = None,
    finish: Callable[[dict], None] | None = None,
) -> Path:
    """Write ``source``'s model with temperature ``temperature`` to ``output`` (see the module docstring).

    Args:
        source: The model file as the user named it: a local file, or a released name, URL or ``hf://``
            path (already in the cache; written out as ``.pt``).
        output: Destination (may be ``source`` itself: the file is replaced atomically).
        temperature: T.
        record: The record the runtime settled for ``source`` (its class names), written for a file
            that stores none.
        calibration: How T was fitted (plain types), stored beside it.
        labels: Class names for a file without them (a 7-class reference ``.pth``).
        finish: Called with a ``.ckpt``/``.pt`` dict before it is written (to renew a whole-file checksum).

    Returns:
        ``output``.

    Raises:
        DanError: An unreadable or unsafe file, or an output suffix the source cannot be written as.
    """
    out = Path(output)
    local = Path(source)
    suffix = local.suffix.lower() if local.is_file() else ""
    if suffix in CHECKPOINT_SUFFIXES + EXPORT_SUFFIXES and out.suffix.lower() != suffix:
        raise DanError(f"{out}: the calibrated copy of a {suffix} file is a {suffix} file: name one")

    def make(stored: object) -> dict:
        return calibrated_record(stored, record, temperature, calibration)

    if suffix == ".onnx":
        done = _rewrite_onnx(local, out, make)
    elif suffix == ".pt2":
        done = _rewrite_pt2(local, out, make)
    elif suffix == ".safetensors":
        done = _rewrite_safetensors(local, out, make)
    elif suffix in CHECKPOINT_SUFFIXES:
        done = _rewrite_checkpoint(local, out, make, finish)
    else:
        done = False
    if done:
        return out
    if out.suffix.lower() not in (".pt", ".safetensors"):
        raise DanError(f"{out}: a model file without DAN settings is written as .pt or .safetensors: name one")
    model = load_model(source, labels=labels if labels is not None else record.labels)
    model.temperature, model.calibration = float(temperature), calibration
    return save_model(model, out)
