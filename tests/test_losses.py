"""Affinity and partition losses against hand-computed values, and their gradients."""

from __future__ import annotations

import math
import sys

import pytest
import torch

from dan import DAN
from dan.models.losses import AffinityLoss, PartitionLoss


def test_affinity_loss_hand_computed() -> None:
    loss = AffinityLoss(num_classes=3, feat_dim=2)
    with torch.no_grad():
        loss.centers.copy_(torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 4.0]]))
    f = torch.tensor([[1.0, 1.0], [2.0, 3.0]])
    y = torch.tensor([0, 2])
    # distances to own centre: |(1,1)-(0,0)|^2 = 2, |(2,3)-(0,4)|^2 = 5
    # unbiased variance over classes: dim0 of (0,2,0) = 4/3, dim1 of (0,0,4) = 16/3 -> sum 20/3
    # masked-out entries are clamped up to 1e-12 each (4 of them)
    expected = (2 / (20 / 3) + 5 / (20 / 3) + 4e-12) / 2
    assert loss(f, y).item() == pytest.approx(expected, rel=1e-6)


def test_affinity_loss_pools_feature_maps() -> None:
    loss = AffinityLoss(num_classes=4, feat_dim=8)
    fmap = torch.randn(5, 8, 3, 3)
    y = torch.tensor([0, 1, 2, 3, 1])
    assert loss(fmap, y).item() == pytest.approx(loss(fmap.mean(dim=(2, 3)), y).item(), rel=1e-6)


def test_affinity_centres_shape_and_gradient() -> None:
    loss = AffinityLoss(num_classes=7, feat_dim=512)
    assert loss.centers.shape == (7, 512) and loss.centers.requires_grad
    fmap = torch.randn(4, 512, 2, 2, requires_grad=True)
    loss(fmap, torch.tensor([0, 3, 3, 6])).backward()
    assert loss.centers.grad is not None and loss.centers.grad.abs().sum() > 0
    assert fmap.grad.abs().sum() > 0


def test_partition_loss_hand_computed() -> None:
    heads = torch.tensor([[[1.0, 2.0], [3.0, 6.0]]])  # (B=1, K=2, C=2)
    # unbiased variance across the 2 heads: ((1-3)^2)/2 = 2 and ((2-6)^2)/2 = 8 -> mean 5
    expected = math.log(1 + 2 / (5 + sys.float_info.epsilon))
    assert PartitionLoss()(heads).item() == pytest.approx(expected, rel=1e-6)


def test_partition_loss_is_zero_for_one_head() -> None:
    assert PartitionLoss()(torch.randn(3, 1, 8)).item() == 0.0


def test_partition_loss_falls_as_heads_diverge() -> None:
    base = torch.randn(4, 3, 16)
    assert PartitionLoss()(base * 3) < PartitionLoss()(base)


def test_gradients_reach_every_head_and_the_centres() -> None:
    torch.manual_seed(0)
    model = DAN(num_classes=7, num_heads=4).train()
    affinity, partition = AffinityLoss(7, model.num_features), PartitionLoss()
    x, y = torch.randn(4, 3, 64, 64), torch.tensor([0, 1, 2, 3])
    out = model(x)
    total = torch.nn.functional.cross_entropy(out.logits, y) + affinity(out.features, y) + partition(out.heads)
    total.backward()
    assert affinity.centers.grad.abs().sum() > 0
    k, s, c = model.num_heads, model.heads.sa_dim, model.num_features
    per_head = {
        "conv1x1": model.heads.conv1x1.weight.grad.view(k, s, -1),  # (K, S, C*1*1)
        "conv3x3": model.heads.conv3x3.weight.grad.view(k, c, -1),  # (K, C, S*3*3)
        "fc1": model.heads.fc1.weight.grad,  # (K, D, C)
        "fc2": model.heads.fc2.weight.grad,  # (K, C, D)
    }
    for name, grad in per_head.items():
        assert torch.all(grad.flatten(1).abs().sum(1) > 0), f"a head got no gradient in {name}"
    assert model.backbone.conv1.weight.grad.abs().sum() > 0
