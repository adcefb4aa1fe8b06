"""The Feature Clustering Network: a timm CNN without pooling or classifier, and its weights.

DAN (arXiv 2109.07270, section 3.1) uses ResNet-18 initialised from a face-recognition model trained
on MS-Celeb-1M (``resnet18_msceleb.pth``: ``{'state_dict': <torchvision resnet18 keys, fc included>}``).
``model.backbone_weights: msceleb`` names it: :func:`dan.hub.resolve_backbone` fetches it once into
the download cache, checked by :func:`check_torchvision_layout` before it enters. Any timm CNN whose
``forward_features`` returns a (B, C, H, W) map can stand in.
"""

from __future__ import annotations

import functools
import os
import pickle
import warnings
from pathlib import Path
from typing import Protocol

import timm
import torch
from torch import nn

from dan.errors import DanError, one_line

__all__ = [
    "MSCELEB_HELP",
    "FeatureBackbone",
    "check_torchvision_layout",
    "create_backbone",
    "load_backbone_weights",
    "read_state_dict",
    "resolve_backbone_weights",
    "state_dict_mismatch",
]

MSCELEB_HELP = (
    "set model.backbone_weights: msceleb to download the MS-Celeb-1M ResNet-18 (resnet18_msceleb.pth, the DAN "
    "reference implementation's file) into the cache, or to the path of a weights file"
)
_COUNTER = "num_batches_tracked"  # BatchNorm's step counter: not a weight; torch's strict load fills it in


class FeatureBackbone(Protocol):
    """The members of a timm CNN that DAN uses (besides those of ``nn.Module``)."""

    num_features: int

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last feature map (B, C, H, W) of a batch (B, in_chans, H0, W0)."""
        ...


def read_state_dict(path: str | os.PathLike) -> dict:
    """Read a PyTorch file with the weights-only unpickler, with one-line errors naming the file.

    Args:
        path: A ``.pth``/``.pt``/``.ckpt`` file.

    Returns:
        Whatever the file holds (dicts, lists, tensors and plain values only).

    Raises:
        DanError: Missing, unreadable or truncated file, or one that holds Python objects.
    """
    path = Path(path)
    if not path.is_file():
        raise DanError(f"{path}: no such file")
    try:
        with warnings.catch_warnings():  # a damaged file can make torch warn before it fails: one line is enough
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        text = str(err)
        lines = text.split("WeightsUnpickler error:", 1)[-1].strip().splitlines()
        detail = lines[0] if lines else type(err).__name__
        if "global" in text.lower():
            raise DanError(
                f"{path}: refused to load: it holds Python objects a weights-only load does not allow "
                f"({one_line(detail, 160)}); only tensors and plain values are read"
            ) from None
        raise DanError(
            f"{path}: not a readable PyTorch checkpoint (corrupt or another format?): {one_line(detail, 160)}"
        ) from None
    except Exception as err:  # zip/tar errors, EOF, bad magic number
        msg = one_line(err)
        raise DanError(f"{path}: not a readable PyTorch checkpoint (truncated or another format?): {msg}") from None


def create_backbone(name: str = "resnet18", in_chans: int = 3, pretrained: bool = False) -> nn.Module:
    """Create a timm model that returns its last feature map from ``forward_features``.

    Args:
        name: Any timm model name with a convolutional feature map.
        in_chans: Input channels.
        pretrained: Load timm's own pretrained weights (from the local Hugging Face cache, or a
            download when online). Offline with an empty cache this is a clear error.

    Raises:
        DanError: Unknown model name, or pretrained weights that cannot be had.
    """
    if name not in timm.list_models() and name.split(".")[0] not in timm.list_models():
        raise DanError(f"unknown backbone {name!r}: use a timm model name such as resnet18, resnet50")
    try:
        return timm.create_model(name, pretrained=pretrained, num_classes=0, global_pool="", in_chans=in_chans)
    except Exception as err:
        if not pretrained:
            raise
        msg = one_line(err)
        raise DanError(
            f"could not get timm's pretrained weights for {name!r} ({type(err).__name__}: {msg}); offline, "
            f"put them in the Hugging Face cache (HF_HOME) or pass a weights file as model.backbone_weights"
        ) from None


def state_dict_mismatch(own: dict[str, torch.Tensor], state: dict[str, torch.Tensor]) -> str | None:
    """Describe in one line how ``state`` fails to fit a module whose state dict is ``own``.

    Returns:
        None when every key matches in name and shape, else e.g.
        ``"1 tensors of wrong shape (e.g. fc.weight: (7, 100), model has (7, 512)); 2 missing (e.g. bn.bias)"``.
    """
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    parts = []
    if wrong:
        k = wrong[0]
        shapes = f"{tuple(state[k].shape)}, model has {tuple(own[k].shape)}"
        parts.append(f"{len(wrong)} tensors of wrong shape (e.g. {k}: {shapes})")
    if missing:
        parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
    return "; ".join(parts) or None


def _tensors(obj: object, path: Path) -> dict[str, torch.Tensor]:
    """The state dict of a weights file (``{'state_dict': {...}}`` or the bare dict), prefixes stripped."""
    state = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DanError(f"{path}: not a state dict of tensors (expected {{'state_dict': {{name: tensor}}}})")
    return _strip_prefix(state)


def _with_counters(own: dict[str, torch.Tensor], state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` with BatchNorm counters it lacks taken from ``own`` (as torch's strict load of an old file does)."""
    missing = {k: own[k] for k in own if k.endswith(_COUNTER) and k not in state}
    return {**state, **missing} if missing else state


def check_torchvision_layout(path: str | os.PathLike, architecture: str = "resnet18") -> None:
    """Check that a weights file holds every key and shape of a torchvision model (classifier included).

    The model is built on the meta device (no memory, no weights). BatchNorm's ``num_batches_tracked``
    counters may be absent, as a strict ``load_state_dict`` of an old file allows.

    Args:
        path: The file (a downloaded temporary file, or a cached file without a pin).
        architecture: A ``torchvision.models`` builder name.

    Raises:
        DanError: Unreadable, unsafe, not a state dict, or any key or shape that differs (one line).
    """
    import torchvision

    path = Path(path)
    state = _tensors(read_state_dict(path), path)
    with torch.device("meta"):
        own = getattr(torchvision.models, architecture)().state_dict()
    problem = state_dict_mismatch(own, _with_counters(own, state))
    if problem:
        raise DanError(f"{path}: not torchvision's {architecture} layout: {problem}")


def resolve_backbone_weights(spec: str | os.PathLike, progress: bool = True) -> Path:
    """The local file ``model.backbone_weights`` names: a path, or a released backbone's name (``msceleb``).

    A name is fetched once into the download cache (:func:`dan.hub.resolve_backbone`, with its progress
    bar), checked by :func:`check_torchvision_layout` before it enters, and read from there afterwards.

    Raises:
        DanError: A missing file (saying where to get the MS-Celeb file), or a failed download: one line
            naming the URL and the path to save the file as by hand.
    """
    from dan.hub import BACKBONES, resolve_backbone

    path = Path(spec)
    entry = BACKBONES.get(os.fspath(spec))
    if entry is not None and not path.is_file():
        check = functools.partial(check_torchvision_layout, architecture=entry.architecture)
        return resolve_backbone(entry.name, verify=check, progress=progress)
    if not path.is_file():
        raise DanError(f"{path}: backbone weights file not found: {MSCELEB_HELP}")
    return path


def _strip_prefix(state: dict, prefixes: tuple[str, ...] = ("module.", "backbone.")) -> dict:
    for p in prefixes:
        if state and all(k.startswith(p) for k in state):
            state = {k[len(p) :]: v for k, v in state.items()}
    return state


def load_backbone_weights(backbone: nn.Module, spec: str | os.PathLike) -> None:
    """Load the MS-Celeb ResNet-18 (or any torchvision/timm-layout state dict) into ``backbone``.

    The classifier (``fc.*``) is dropped; every other tensor must match the backbone exactly
    (BatchNorm counters the file lacks are kept).

    Args:
        backbone: A model from :func:`create_backbone`.
        spec: The weights file, or a released backbone's name (``msceleb``, fetched once into the cache:
            :func:`resolve_backbone_weights`).

    Raises:
        DanError: Missing file (with where to get it), failed download, unreadable file, or tensors that
            do not fit.
    """
    path = resolve_backbone_weights(spec)
    state = {k: v for k, v in _tensors(read_state_dict(path), path).items() if not k.startswith("fc.")}
    own = backbone.state_dict()
    state = _with_counters(own, state)
    problem = state_dict_mismatch(own, state)
    if problem:
        raise DanError(f"{path}: does not fit the backbone: {problem}")
    backbone.load_state_dict(state)
