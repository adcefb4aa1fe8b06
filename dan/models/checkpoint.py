"""Reading and writing DAN checkpoints: this project's files and the reference implementation's.

Formats :func:`load_model` reads, all without unpickling arbitrary objects:

- this project's weights file (``.pt``, written by :func:`save_model`) and Lightning checkpoints
  (``.ckpt``): a dict with a ``"dan"`` entry (model settings, label names, preprocessing) and a
  ``"state_dict"`` (Lightning's keys carry a ``model.`` prefix);
- the same as ``.safetensors``, the ``"dan"`` entry stored as JSON in the file's metadata;
- the reference implementation's ``.pth`` files (``{'iter', 'model_state_dict', ...}``, keys
  ``features.N.*``, ``cat_headK.*``, ``fc.*``, ``bn.*``), mapped onto this model's layout. They carry
  no class names (8 classes default to ``affectnet8``; 7 classes need ``labels``) and no
  preprocessing: a released model named by its name (``rafdb``, ``affectnet7``...) gets the
  catalogue's (:attr:`dan.hub.ReleasedModel.preprocessing`), any other file the defaults.

Every file's ``dan`` entry goes through :meth:`dan.models.metadata.ModelMetadata.read`, the record every
runtime reads too.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from dan.common import DanError, Preprocessing, one_line
from dan.fileio import atomic_path
from dan.hub import released_model, resolve_checkpoint
from dan.models.backbone import read_state_dict, state_dict_mismatch
from dan.models.dan import DAN
from dan.models.heads import per_head_to_fused
from dan.models.metadata import FORMAT_VERSION, ModelMetadata, tensor_checksum
from dan.system import torch_device

__all__ = [
    "FORMAT_VERSION",
    "StoredWeights",
    "checkpoint_metadata",
    "checkpoint_verifier",
    "convert_reference_state_dict",
    "load_model",
    "read_checkpoint_file",
    "read_weights",
    "save_model",
]

# reference nn.Sequential index of a torchvision ResNet child -> timm/torchvision attribute name
_FEATURE_NAMES = {"0": "conv1", "1": "bn1", "4": "layer1", "5": "layer2", "6": "layer3", "7": "layer4"}
_HEAD_KEY = re.compile(r"^cat_head(\d+)\.(.+)$")


def checkpoint_metadata(model: DAN, state: dict[str, torch.Tensor] | None = None) -> dict:
    """The ``"dan"`` entry a file carries so that it alone rebuilds and uses the model.

    Args:
        model: The model; its ``labels`` should be set.
        state: The weights the file will hold (default the model's state dict), checksummed.

    Returns:
        :meth:`dan.models.metadata.ModelMetadata.to_dict`: plain types only.
    """
    return ModelMetadata.of_model(model, state).to_dict()


def save_model(model: DAN, path: str | os.PathLike) -> Path:
    """Write a self-contained weights file (``.pt`` or ``.safetensors``) for :func:`load_model`.

    The file is written next to its destination and renamed into place, so an interrupted save
    never leaves a half-written file behind.

    Args:
        model: The model to save.
        path: Destination; the suffix picks the format.

    Returns:
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = checkpoint_metadata(model, state)
    with atomic_path(path, "model file") as tmp:
        if path.suffix == ".safetensors":
            from safetensors.torch import save_file

            save_file(state, str(tmp), metadata={"dan": json.dumps(meta)})
        else:
            torch.save({"dan": meta, "state_dict": state}, tmp)
    return path


def convert_reference_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map the reference implementation's keys onto :class:`DAN`'s (per-head heads -> fused).

    Args:
        state: The reference ``model_state_dict`` (a ``module.`` prefix from DataParallel is allowed).

    Returns:
        A state dict for :class:`DAN` with a ResNet-18 backbone.
    """
    if all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    out: dict[str, torch.Tensor] = {}
    heads: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        if key.startswith("features."):
            _, idx, rest = key.split(".", 2)
            name = _FEATURE_NAMES.get(idx)
            out[f"backbone.{name or 'features.' + idx}.{rest}"] = value
        elif m := _HEAD_KEY.match(key):
            heads.setdefault(int(m.group(1)), {})[m.group(2)] = value
        else:  # fc.*, bn.*
            out[key] = value
    if heads:
        ordered = [heads[i] for i in sorted(heads)]
        out.update({f"heads.{k}": v for k, v in per_head_to_fused(ordered).items()})
    return out


def _is_reference(state: dict) -> bool:
    return any(k.split(".", 1)[-1].startswith("cat_head") or k.startswith("cat_head") for k in state) and any(
        "features.0.weight" in k for k in state
    )


def _read(path: Path) -> tuple[dict | None, dict]:
    """(metadata or None, state dict) from any supported file."""
    meta, state, _ = read_checkpoint_file(path)
    return meta, state


def read_checkpoint_file(path: str | os.PathLike) -> tuple[dict | None, dict, dict]:
    """Read a local checkpoint file weights-only, without building a model.

    Args:
        path: A ``.pt``/``.ckpt``/``.pth``/``.safetensors`` file.

    Returns:
        ``(metadata, network, rest)``: the stored ``"dan"`` entry (None for files without one, such as
        the reference's), the network's state dict (a Lightning checkpoint's ``model.`` prefix removed;
        a reference file's keys as they are) and a Lightning checkpoint's other module entries, such as
        the affinity loss's ``affinity.centers`` (empty for other files).

    Raises:
        DanError: Missing, unreadable or unsafe file, or no state dict of tensors in it.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        if not path.is_file():
            raise DanError(f"{path}: no such file")
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                meta = json.loads((f.metadata() or {}).get("dan", "null"))
                state = {k: f.get_tensor(k) for k in f.keys()}
        except Exception as err:
            raise DanError(f"{path}: not a readable safetensors file: {one_line(err)}") from None
        return meta, state, {}
    obj = read_state_dict(path)
    if not isinstance(obj, dict):
        raise DanError(f"{path}: not a checkpoint: it holds a {type(obj).__name__}, not a dict")
    if "dan" in obj:
        state, rest = obj.get("state_dict", {}), {}
        if any(k.startswith("model.") for k in state):  # a Lightning checkpoint: the network, and the rest apart
            rest = {k: v for k, v in state.items() if not k.startswith("model.")}
            state = {k[len("model.") :]: v for k, v in state.items() if k.startswith("model.")}
        return obj["dan"], state, rest
    state = obj.get("model_state_dict", obj.get("state_dict", obj))
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DanError(f"{path}: not a DAN checkpoint: found no state dict of tensors (keys: {list(obj)[:5]})")
    return None, state, {}


def _infer_reference_config(state: dict[str, torch.Tensor], path: Path) -> dict:
    state = {k.removeprefix("module."): v for k, v in state.items()}
    if "fc.weight" not in state:
        raise DanError(f"{path}: not a DAN checkpoint: no classifier weight 'fc.weight'")
    num_heads = len({int(m.group(1)) for k in state if (m := _HEAD_KEY.match(k))})
    return {"num_classes": int(state["fc.weight"].shape[0]), "num_heads": num_heads, "backbone": "resnet18"}


def _load_into(model: DAN, state: dict[str, torch.Tensor], path: Path) -> None:
    problem = state_dict_mismatch(model.state_dict(), state)
    if problem:
        raise DanError(f"{path}: does not fit the model: {problem}")
    model.load_state_dict(state)


def _verify_released(path: Path, num_classes: int) -> None:
    """A released file must be the reference layout of ``DAN(num_classes, 4)``, every key and shape."""
    meta, state = _read(path)
    if meta is not None or not _is_reference(state):
        raise DanError(f"{path}: not the reference DAN layout (features.*, cat_head*)")
    config = _infer_reference_config(state, path)
    if (config["num_classes"], config["num_heads"]) != (num_classes, 4):
        raise DanError(
            f"{path}: {config['num_classes']} classes and {config['num_heads']} heads, not {num_classes} and 4"
        )
    with torch.device("meta"):  # shapes only: no memory, no initialisation
        own = DAN(num_classes=num_classes, num_heads=4).state_dict()
    problem = state_dict_mismatch(own, convert_reference_state_dict(state))
    if problem:
        raise DanError(f"{path}: does not fit the model: {problem}")


def _verify_file(path: Path) -> None:
    """A downloaded file must read as a normal load reads it (an ONNX file must parse)."""
    if path.suffix.lower() == ".onnx":
        try:
            import onnx
        except ImportError:
            return  # dan.hub already refused an empty file and a web page
        try:
            onnx.load(str(path), load_external_data=False)
        except Exception as err:
            raise DanError(f"{path}: not a readable ONNX file: {one_line(err, 160)}") from None
        return
    meta, state = _read(path)
    if meta is None and not _is_reference(state):
        raise DanError(f"{path}: not a DAN checkpoint: no 'dan' settings and not the reference layout")


def checkpoint_verifier(spec: str | os.PathLike) -> Callable[[Path], None]:
    """The check a downloaded file must pass before :func:`dan.hub.resolve_checkpoint` caches it.

    The same check accepts a file found in the cache with no SHA-256 pin (put there by hand) before
    its hash is recorded; the SHA-256 itself is :mod:`dan.hub`'s to check.

    Args:
        spec: What the user named: a released model name, a URL or an ``hf://`` path.

    Returns:
        A callback raising :class:`DanError` for a file that is not the expected checkpoint.
    """
    released = released_model(spec)
    if released is not None:
        return functools.partial(_verify_released, num_classes=released.num_classes)
    return _verify_file


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
            cached download does not match its SHA-256 pin (:mod:`dan.hub.cache`); or a GPU is asked
            for where there is none (checked first).
    """
    target, _ = torch_device(device)
    released = released_model(path)
    if released is not None and labels is None:
        labels = released.labels
    path = resolve_checkpoint(path, verify=checkpoint_verifier(path))
    meta, state = _read(path)
    where = f"{path}: "
    record = ModelMetadata.read(meta, where)  # every stored value checked before a model is built
    if record is None:
        if not _is_reference(state):
            raise DanError(
                f"{path}: not a DAN checkpoint: no 'dan' settings and not the reference layout (features.*, cat_head*)"
            )
        config = _infer_reference_config(state, path)
        state = convert_reference_state_dict(state)
        # the catalogue says how a released model's faces were cut out (AffectNet's: boxes); others: defaults
        record = ModelMetadata(config, preprocessing=released.preprocessing if released else Preprocessing())
    try:
        model = DAN(**record.model_config)
    except (TypeError, ValueError) as err:  # an unknown key, or a value such as head="xyz"
        raise DanError(f"{path}: unknown model setting in checkpoint: {err}") from None
    _load_into(model, state, path)  # names and shapes first: the plainer message for a file of another model
    record.verify(state, where)
    record.with_labels(labels, where, model.num_classes).apply_to(model)
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
            (:class:`dan.common.MissingLabelsError`).
    """
    released = released_model(spec)
    if released is not None and labels is None:
        labels = released.labels
    path = resolve_checkpoint(spec, verify=checkpoint_verifier(spec))
    if path.suffix.lower() in (".onnx", ".pt2"):
        raise DanError(
            f"{path}: an exported model has no trainable weights: start from a .ckpt, .pt, .safetensors or .pth"
        )
    meta, state, rest = read_checkpoint_file(path)
    where = f"{path}: "
    record = ModelMetadata.read(meta, where)
    if record is None:
        if not _is_reference(state):
            raise DanError(f"{path}: not a DAN checkpoint: no 'dan' settings and not the reference layout")
        config = _infer_reference_config(state, path)
        state = convert_reference_state_dict(state)
        record = ModelMetadata(config, preprocessing=released.preprocessing if released else Preprocessing())
    record.verify(state, where)
    record = record.with_labels(labels, where, int(record.model_config.get("num_classes", 7)))
    names, config, preprocessing = tuple(record.labels or ()), dict(record.model_config), record.preprocessing
    return StoredWeights(path, config, names, state, rest, preprocessing, tensor_checksum(state))
