"""Fine-tuning's training options: ``model.freeze`` (frozen stages stay bit-equal, their BatchNorms in eval
mode) and ``model.backbone_lr_scale`` (the backbone's parameter group at a fraction of any optimiser's rate,
at every step of any schedule)."""

from __future__ import annotations

import functools
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from dan.errors import DanError
from dan.training.module import DANModule
from dan.training.schedules import WarmupCosineLR


def _module(**options) -> DANModule:
    torch.manual_seed(0)
    return DANModule(num_classes=3, num_heads=2, label_names=["a", "b", "c"], **options)


def _steps(module: DANModule, n: int = 3) -> None:
    """A few training steps, with the optimiser the module configures."""
    optimizer = module.configure_optimizers()
    module.train()
    gen = torch.Generator().manual_seed(1)
    for _ in range(n):
        x, y = torch.randn(4, 3, 32, 32, generator=gen), torch.randint(0, 3, (4,), generator=gen)
        out = module(x)
        loss = F.cross_entropy(out.logits, y) + module.affinity(out.features, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def _backbone_state(module: DANModule) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.model.backbone.state_dict().items()}


STEM = ("conv1.", "bn1.")


@pytest.mark.parametrize(("freeze", "frozen", "trained"), [(1, STEM, "layer1."), (2, (*STEM, "layer1."), "layer2.")])
def test_frozen_stages_stay_bit_equal_and_their_norms_in_eval_mode(freeze: int, frozen: tuple, trained: str) -> None:
    module = _module(freeze=freeze, optimizer=functools.partial(torch.optim.SGD, lr=0.5, momentum=0.9))
    before = _backbone_state(module)
    params = dict(module.model.backbone.named_parameters())
    assert {n for n, p in params.items() if not p.requires_grad} == {n for n in params if n.startswith(frozen)}
    _steps(module)
    after = _backbone_state(module)
    for key in before:  # weights and BatchNorm statistics alike
        if key.startswith(frozen):
            assert torch.equal(before[key], after[key]), key
    assert not torch.equal(before[f"{trained}0.bn1.running_mean"], after[f"{trained}0.bn1.running_mean"])
    assert not torch.equal(before[f"{trained}0.conv1.weight"], after[f"{trained}0.conv1.weight"])
    bn1 = module.model.backbone.bn1  # the stem's BatchNorm
    assert not bn1.training and module.model.backbone.layer2[0].bn1.training
    module.eval()
    module.train()  # as Lightning does around validation
    assert not bn1.training and module.model.backbone.layer2[0].bn1.training and module.model.heads.training


def test_freeze_backbone_trains_only_the_heads_and_bad_values_are_one_line() -> None:
    module = _module(freeze="backbone", optimizer=functools.partial(torch.optim.AdamW, lr=0.01))
    before, heads = _backbone_state(module), module.model.heads.state_dict()["conv1x1.weight"].clone()
    optimizer = module.configure_optimizers()
    given = {id(p) for g in optimizer.param_groups for p in g["params"]}
    assert not any(id(p) in given for p in module.model.backbone.parameters())  # frozen: given to no group
    assert id(module.affinity.centers) in given
    _steps(module)
    assert all(torch.equal(before[k], v) for k, v in module.model.backbone.state_dict().items())
    assert not torch.equal(heads, module.model.heads.state_dict()["conv1x1.weight"])
    for bad, expected in (
        (6, "the backbone has 5 stages (1: conv1+bn1, 2: layer1,"),
        (-1, "expected 'backbone'"),
        ("head", "expected 'backbone'"),
    ):
        with pytest.raises(DanError) as err:
            _module(freeze=bad)
        assert expected in str(err.value) and str(err.value).startswith(f"model.freeze={bad!r}"), bad
    with pytest.raises(DanError, match=r"model.backbone_lr_scale=-0.1: expected a number >= 0"):
        _module(backbone_lr_scale=-0.1)


OPTIMIZERS = {
    "SGD": functools.partial(torch.optim.SGD, lr=0.1, momentum=0.9),
    "Adam": functools.partial(torch.optim.Adam, lr=1e-3),
    "AdamW": functools.partial(torch.optim.AdamW, lr=1e-3, weight_decay=0.05),
}
SCHEDULERS = {
    "warmup-cosine": functools.partial(WarmupCosineLR, warmup=3),
    "step": functools.partial(torch.optim.lr_scheduler.StepLR, step_size=2, gamma=0.5),
    "none": None,
}


@pytest.mark.parametrize("schedule", list(SCHEDULERS))
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_the_backbone_group_keeps_its_fraction_of_the_rate_at_every_step(name: str, schedule: str) -> None:
    module = _module(backbone_lr_scale=0.1, optimizer=OPTIMIZERS[name], scheduler=SCHEDULERS[schedule], freeze=1)
    module._trainer = SimpleNamespace(estimated_stepping_batches=10)  # WarmupCosineLR sizes itself from it
    configured = module.configure_optimizers()
    optimizer = configured["optimizer"] if isinstance(configured, dict) else configured
    scheduler = configured["lr_scheduler"]["scheduler"] if isinstance(configured, dict) else None
    backbone, head = optimizer.param_groups
    assert (backbone["name"], head["name"]) == ("backbone", "head")
    trainable = [p for p in module.model.backbone.parameters() if p.requires_grad]
    assert [id(p) for p in backbone["params"]] == [id(p) for p in trainable]  # the stem is frozen: in no group
    assert any(p is module.affinity.centers for p in head["params"])  # the centres learn at the full rate
    configured_lr = OPTIMIZERS[name].keywords["lr"]
    if scheduler is not None:
        assert backbone["initial_lr"] == pytest.approx(0.1 * configured_lr)
        assert head["initial_lr"] == pytest.approx(configured_lr)
    rates = []
    for _ in range(10):
        assert backbone["lr"] == pytest.approx(0.1 * head["lr"], rel=1e-9)
        rates.append(head["lr"])
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
    assert backbone["lr"] == pytest.approx(0.1 * head["lr"], rel=1e-9)
    assert (len(set(rates)) > 1) == (scheduler is not None)  # the schedule moved both groups


def test_without_a_factor_the_optimiser_gets_one_plain_group() -> None:
    module = _module(optimizer=OPTIMIZERS["SGD"])
    optimizer = module.configure_optimizers()
    assert len(optimizer.param_groups) == 1 and "name" not in optimizer.param_groups[0]
    assert [id(p) for p in optimizer.param_groups[0]["params"]] == [id(p) for p in module.parameters()]
