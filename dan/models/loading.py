"""A checkpoint spec to a model: a local file, a released model name, an https:// URL or an ``hf://`` path.

The models layer's one door to the download cache (:mod:`dan.hub`): a remote spec is fetched once into
the cache (:func:`dan.hub.resolve_checkpoint`), checked by :func:`checkpoint_verifier` before it enters
it, then read by :mod:`dan.models.checkpoint`, which reads local files only. A released model's name
brings its class names and the catalogue's preprocessing (:attr:`dan.hub.ReleasedModel.preprocessing`).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from dan.errors import DanError
from dan.hub import released_model, resolve_checkpoint
from dan.models.checkpoint import build_model, check_checkpoint_file, check_reference_file, read_model_file
from dan.models.dan import DAN
from dan.models.metadata import tensor_checksum
from dan.preprocess import Preprocessing
from dan.system import torch_device

__all__ = ["StoredWeights", "checkpoint_verifier", "load_model", "read_weights"]


def checkpoint_verifier(spec: str | os.PathLike) -> Callable[[Path], None]:
    """The check a downloaded checkpoint must pass before :func:`dan.hub.resolve_checkpoint` caches it.

    The same check accepts a file found in the cache with no SHA-256 pin (put there by hand) before
    its hash is recorded; the SHA-256 itself is :mod:`dan.hub`'s to check. (An exported ``.onnx`` file's
    check is the runtime's: :func:`dan.runtime.download_check.download_check`.)

    Args:
        spec: What the user named: a released model name, a URL or an ``hf://`` path.

    Returns:
        A callback raising :class:`DanError` for a file that is not the expected checkpoint.
    """
    released = released_model(spec)
    if released is not None:
        return functools.partial(check_reference_file, num_classes=released.num_classes)
    return check_checkpoint_file


def load_model(
    path: str | os.PathLike, labels: str | Sequence[str] | None = None, device: str | torch.device = "cpu"
) -> DAN:
    """Load any supported DAN checkpoint and return the model in eval mode.

    Args:
        path: This project's ``.pt``/``.ckpt``/``.safetensors`` file, a reference ``.pth`` file, or a
            remote spec :func:`dan.hub.resolve_checkpoint` fetches into its cache: a released model name
            (``rafdb``, ``affectnet7``, ``affectnet8``), an https:// URL or an ``hf://`` path.
        labels: Label set name (``rafdb``, ``affectnet7``, ``affectnet8``, ``fer2013``) or class
            names. Needed for 7-class reference files (a released name brings its own); overrides the
            names stored in our files.
        device: Where to put the model: ``cpu`` (default), ``cuda``, ``cuda:N``, ``auto`` (a CUDA GPU
            when PyTorch sees one, :func:`dan.system.pick_device`), or a ``torch.device``.

    Returns:
        The :class:`DAN` model with ``labels`` and ``preprocessing`` set, in eval mode.

    Raises:
        DanError: The file is missing, unreadable, unsafe, not a DAN checkpoint, or does not fit; or a
            cached download does not match its SHA-256 pin (:mod:`dan.hub.records`); or a GPU is asked
            for where there is none (checked first).
    """
    target, _ = torch_device(device)
    released = released_model(path)
    if released is not None and labels is None:
        labels = released.labels
    path = resolve_checkpoint(path, verify=checkpoint_verifier(path))
    # the catalogue says how a released model's faces were cut out (AffectNet's: boxes); others: defaults
    record, state, _ = read_model_file(path, released.preprocessing if released else None)
    model = build_model(record, state, path)
    record.with_labels(labels, f"{path}: ", model.num_classes).apply_to(model)
    return model.to(target).eval()


@dataclass(frozen=True)
class StoredWeights:
    """A trained DAN's weights and what they mean, read without building the model (:func:`read_weights`).

    Attributes:
        path: The local file (the cached download for a remote spec).
        model_config: Constructor arguments of :class:`DAN` that the weights belong to.
        labels: Class names, index ``i`` naming classifier row ``i``.
        state: The network's weights, in :class:`DAN`'s layout (a reference file's converted).
        rest: A Lightning checkpoint's other module entries (``affinity.centers``, ...); else empty.
        preprocessing: How the model's inputs were prepared.
        checksum: :func:`dan.models.metadata.tensor_checksum` of ``state``.
    """

    path: Path
    model_config: dict
    labels: tuple[str, ...]
    state: dict[str, torch.Tensor]
    rest: dict[str, torch.Tensor]
    preprocessing: Preprocessing
    checksum: str


def read_weights(spec: str | os.PathLike, labels: str | Sequence[str] | None = None) -> StoredWeights:
    """Read any DAN checkpoint :func:`load_model` reads (same cache, pins and checks), without building it.

    Args:
        spec: A file, a released model name, an https:// URL or an ``hf://`` path.
        labels: Label set name or class names; needed for a 7-class reference file (a released name
            brings its own); overrides the names stored in our files.

    Returns:
        The :class:`StoredWeights`.

    Raises:
        DanError: What :func:`load_model` refuses (missing, unreadable, unsafe, damaged or not a DAN
            file), an exported model (no training state), or a 7-class reference file without labels
            (:class:`dan.errors.MissingLabelsError`).
    """
    released = released_model(spec)
    if released is not None and labels is None:
        labels = released.labels
    path = resolve_checkpoint(spec, verify=checkpoint_verifier(spec))
    if path.suffix.lower() in (".onnx", ".pt2"):
        raise DanError(
            f"{path}: an exported model has no trainable weights: start from a .ckpt, .pt, .safetensors or .pth"
        )
    record, state, rest = read_model_file(path, released.preprocessing if released else None)
    where = f"{path}: "
    record.verify(state, where)
    record = record.with_labels(labels, where, int(record.model_config.get("num_classes", 7)))
    names, config, preprocessing = tuple(record.labels or ()), dict(record.model_config), record.preprocessing
    return StoredWeights(path, config, names, state, rest, preprocessing, tensor_checksum(state))
