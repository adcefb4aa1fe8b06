"""The optimiser's parameter groups: the backbone at a fraction of the learning rate (``model.backbone_lr_scale``).

Any configured optimiser (``model.optimizer``, a LightningCLI ``OptimizerCallable``) is called with a
list of parameter-group dicts, so its own default learning rate (``init_args.lr``, or the class's
default) fills both groups. The backbone group's ``lr`` is then multiplied by the factor before any
scheduler sees the optimiser: a scheduler records each group's ``initial_lr`` from it and scales both
groups alike from then on (StepLR, ExponentialLR, CosineAnnealingLR, ReduceLROnPlateau,
:class:`dan.training.schedules.WarmupCosineLR`), so the ratio holds at every step. A scheduler that
sets absolute rates itself (OneCycleLR's ``max_lr``, CyclicLR) overrides the factor.

Frozen parameters (``requires_grad`` False, ``model.freeze``) are given to no group. Without a factor
(1.0) the optimiser gets one plain list of the trainable parameters, as before fine-tuning existed, so
checkpoints of earlier runs resume with the same optimiser layout.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

__all__ = ["BACKBONE_PREFIX", "build_optimizer", "param_groups"]

BACKBONE_PREFIX = "model.backbone."  # DANModule's names of the backbone's parameters


def param_groups(
    named: Iterable[tuple[str, nn.Parameter]], backbone_lr_scale: float = 1.0, prefix: str = BACKBONE_PREFIX
) -> list:
    """What the optimiser factory receives.

    Args:
        named: ``module.named_parameters()``.
        backbone_lr_scale: The backbone's learning rate as a fraction of the others'.
        prefix: Names starting with it are the backbone's.

    Returns:
        A list of the trainable parameters (factor 1, or nothing trainable in the backbone), else
        ``[{"params": backbone, "name": "backbone"}, {"params": rest, "name": "head"}]``.
    """
    trainable = [(n, p) for n, p in named if p.requires_grad]
    backbone = [p for n, p in trainable if n.startswith(prefix)]
    rest = [p for n, p in trainable if not n.startswith(prefix)]
    if backbone_lr_scale == 1.0 or not backbone or not rest:
        return [p for _, p in trainable]
    return [{"params": backbone, "name": "backbone"}, {"params": rest, "name": "head"}]


def build_optimizer(
    factory: Callable[[Iterable], torch.optim.Optimizer], groups: list, backbone_lr_scale: float = 1.0
) -> torch.optim.Optimizer:
    """Build the configured optimiser on ``groups`` and scale the backbone group's learning rate.

    Args:
        factory: The configured optimiser (takes the parameters, returns the optimiser).
        groups: :func:`param_groups`.
        backbone_lr_scale: Multiplies the ``backbone`` group's ``lr`` (and ``initial_lr`` if set).

    Returns:
        The optimiser, before any scheduler is attached.
    """
    optimizer = factory(groups)
    for group in optimizer.param_groups:
        if group.get("name") == "backbone":
            for key in ("lr", "initial_lr"):
                if key in group:
                    group[key] = group[key] * backbone_lr_scale
    return optimizer
