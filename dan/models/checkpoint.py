"""Reading and writing DAN checkpoint files: this project's and the reference implementation's, local files only.

A spec (a released name, a URL, an ``hf://`` path) becomes a local file in :mod:`dan.models.loading`, which
builds the model with :func:`read_model_file` and :func:`build_model`; nothing here downloads, and an
exported ``.onnx`` file is the runtime's to read. The formats, all read without unpickling arbitrary objects:

- this project's weights file (``.pt``, written by :func:`save_model`) and Lightning checkpoints
  (``.ckpt``): a dict with a ``"dan"`` entry (model settings, label names, preprocessing) and a
  ``"state_dict"`` (Lightning's keys carry a ``model.`` prefix);
- the same as ``.safetensors``, the ``"dan"`` entry stored as JSON in the file's metadata;
- the reference implementation's ``.pth`` files (``{'iter', 'model_state_dict', ...}``, keys
  ``features.N.*``, ``cat_headK.*``, ``fc.*``, ``bn.*``), mapped onto this model's layout. They carry
  no class names (8 classes default to ``affectnet8``; 7 classes need ``labels``) and no
  preprocessing: a released model named by its name (``rafdb``, ``affectnet7``...) gets the
  catalogue's (:attr:`dan.hub.ReleasedModel.preprocessing`, passed in by :mod:`dan.models.loading`), any
  other file the defaults.

Every file's ``dan`` entry goes through :meth:`dan.models.metadata.ModelMetadata.read`, the record every
runtime reads too.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import torch

from dan.errors import DanError, one_line
from dan.fileio import atomic_path
from dan.models.backbone import read_state_dict, state_dict_mismatch
from dan.models.dan import DAN
from dan.models.heads import per_head_to_fused
from dan.models.metadata import FORMAT_VERSION, ModelMetadata
from dan.preprocess import Preprocessing

__all__ = [
    "FORMAT_VERSION",
    "build_model",
    "check_checkpoint_file",
    "check_reference_file",
    "convert_reference_state_dict",
    "read_checkpoint_file",
    "read_model_file",
    "save_model",
]

# reference nn.Sequential index of a torchvision ResNet child -> timm/torchvision attribute name
_FEATURE_NAMES = {"0": "conv1", "1": "bn1", "4": "layer1", "5": "layer2", "6": "layer3", "7": "layer4"}
_HEAD_KEY = re.compile(r"^cat_head(\d+)\.(.+)$")


def save_model(model: DAN, path: str | os.PathLike) -> Path:
    """Write a self-contained weights file (``.pt`` or ``.safetensors``) for :func:`dan.models.loading.load_model`.

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
    meta = ModelMetadata.of_model(model, state).to_dict()
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


def read_model_file(
    path: Path, preprocessing: Preprocessing | None = None
) -> tuple[ModelMetadata, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """A local checkpoint file's record and weights in :class:`DAN`'s layout, checked, no model built.

    Args:
        path: A ``.pt``/``.ckpt``/``.pth``/``.safetensors`` file.
        preprocessing: A reference file's preprocessing (it stores none): a released model's, from the
            catalogue; default the record's defaults.

    Returns:
        ``(record, network, rest)``: a reference file's record is inferred from its weights (no labels),
        its weights converted; ``rest`` as :func:`read_checkpoint_file` gives it.

    Raises:
        DanError: What :func:`read_checkpoint_file` refuses, a stored value out of range, or neither a
            ``dan`` entry nor the reference layout.
    """
    meta, state, rest = read_checkpoint_file(path)
    record = ModelMetadata.read(meta, f"{path}: ")  # every stored value checked before a model is built
    if record is None:
        if not _is_reference(state):
            raise DanError(
                f"{path}: not a DAN checkpoint: no 'dan' settings and not the reference layout (features.*, cat_head*)"
            )
        config = _infer_reference_config(state, path)
        state = convert_reference_state_dict(state)
        record = ModelMetadata(config, preprocessing=preprocessing or Preprocessing())
    return record, state, rest


def build_model(record: ModelMetadata, state: dict[str, torch.Tensor], path: Path) -> DAN:
    """The :class:`DAN` a file's record describes, its weights loaded and checked (labels not yet applied).

    Raises:
        DanError: An unknown model setting, weights that do not fit, or a checksum that does not match.
    """
    try:
        model = DAN(**record.model_config)
    except (TypeError, ValueError) as err:  # an unknown key, or a value such as head="xyz"
        raise DanError(f"{path}: unknown model setting in checkpoint: {err}") from None
    problem = state_dict_mismatch(model.state_dict(), state)  # names and shapes first: the plainer message
    if problem:
        raise DanError(f"{path}: does not fit the model: {problem}")
    model.load_state_dict(state)
    record.verify(state, f"{path}: ")
    return model


def check_reference_file(path: Path, num_classes: int) -> None:
    """A released file must be the reference layout of ``DAN(num_classes, 4)``, every key and shape.

    Raises:
        DanError: It is not.
    """
    meta, state, _ = read_checkpoint_file(path)
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


def check_checkpoint_file(path: Path) -> None:
    """A file must read as :func:`read_model_file` reads it: a ``dan`` entry or the reference layout.

    Raises:
        DanError: It does not.
    """
    meta, state, _ = read_checkpoint_file(path)
    if meta is None and not _is_reference(state):
        raise DanError(f"{path}: not a DAN checkpoint: no 'dan' settings and not the reference layout")
