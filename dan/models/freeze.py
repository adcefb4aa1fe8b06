"""Freezing the first stages of the backbone for fine-tuning (``model.freeze``).

A *stage* is one of timm's coarse parameter groups, in the order the input meets them
(``backbone.group_matcher(coarse=True)``, the grouping timm's layer-wise learning-rate decay uses):
for a timm ResNet, stage 0 is the stem (``conv1``, ``bn1``) and stages 1..4 are ``layer1``..``layer4``;
for ConvNeXt, ``stem`` then ``stages.0``..``stages.3``; for EfficientNet, ``conv_stem``/``bn1`` then
``blocks.0``.. and last ``conv_head``/``bn2``. ``freeze = n`` freezes stages ``0 .. n-1`` (0: none,
1: the stem, 2: the stem and ``layer1``, ...); ``freeze = "backbone"`` freezes all of it. The DAN
heads and the classifier are never frozen.

Frozen parameters get ``requires_grad = False``; the BatchNorms among them are returned so training can
keep them in eval mode (their running statistics stay those of the source model).
"""

from __future__ import annotations

from collections.abc import Iterator

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from dan.errors import DanError

__all__ = ["FreezeSpec", "backbone_stages", "freeze_backbone", "stage_names"]

FreezeSpec = int | str | None  # None or 0: nothing; n: the first n stages; "backbone": all of it


def backbone_stages(backbone: nn.Module) -> dict[str, int]:
    """The stage index (0 = stem) of every state-dict entry of a timm backbone.

    Returns:
        ``{name: stage}`` for parameters and buffers; empty for a model without timm's
        ``group_matcher`` (only ``freeze: backbone`` works for those).
    """
    matcher = getattr(backbone, "group_matcher", None)
    if not callable(matcher):
        return {}
    from timm.models._manipulate import group_with_matcher

    names = ((k, None) for k in backbone.state_dict())
    return dict(group_with_matcher(names, matcher(coarse=True), reverse=True))


def stage_names(stages: dict[str, int]) -> list[str]:
    """A readable name per stage (``conv1+bn1``, ``layer1``, ...), for messages."""
    out: dict[int, list[str]] = {}
    for key, stage in stages.items():
        parts = key.split(".")
        indexed = len(parts) > 2 and parts[1].isdigit() and not parts[0][-1].isdigit()  # stages.0, not layer1.0
        label = parts[0] + (f".{parts[1]}" if indexed else "")
        if label not in out.setdefault(stage, []):
            out[stage].append(label)
    return ["+".join(out[s]) for s in sorted(out)]


def _frozen_names(backbone: nn.Module, freeze: FreezeSpec, option: str) -> set[str]:
    names = set(backbone.state_dict())
    if freeze is None or freeze == 0:
        return set()
    if freeze == "backbone":
        return names
    stages = backbone_stages(backbone)
    count = len(set(stages.values()))
    if isinstance(freeze, bool) or not isinstance(freeze, int) or freeze < 0:
        raise DanError(f"{option}={freeze!r}: expected 'backbone' or a number of stages from 0 to {count}")
    if not stages:
        raise DanError(f"{option}={freeze}: this backbone has no timm stage grouping; use 'backbone' or 0")
    if freeze > count:
        listed = ", ".join(f"{i + 1}: {n}" for i, n in enumerate(stage_names(stages)))
        raise DanError(
            f"{option}={freeze}: the backbone has {count} stages ({listed}); choose 0 to {count} or backbone"
        )
    return {k for k, s in stages.items() if s < freeze}


def _norms(backbone: nn.Module, frozen: set[str]) -> Iterator[nn.Module]:
    for name, module in backbone.named_modules():
        if isinstance(module, _BatchNorm):
            keys = [f"{name}.{k}" for k in module.state_dict()]
            if keys and all(k in frozen for k in keys):
                yield module


def freeze_backbone(backbone: nn.Module, freeze: FreezeSpec, option: str = "model.freeze") -> list[nn.Module]:
    """Freeze the first stages of ``backbone`` (see the module docstring).

    Args:
        backbone: A timm CNN (:func:`dan.models.backbone.create_backbone`).
        freeze: None or 0, a number of stages, or ``"backbone"``.
        option: The option's name, for messages.

    Returns:
        The frozen BatchNorm modules, which training keeps in eval mode.

    Raises:
        DanError: A value that is not ``backbone`` nor a number of stages this backbone has.
    """
    frozen = _frozen_names(backbone, freeze, option)
    for name, param in backbone.named_parameters():
        if name in frozen:
            param.requires_grad_(False)
    return list(_norms(backbone, frozen))
