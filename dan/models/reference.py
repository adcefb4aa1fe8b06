"""The reference layout: a plain per-head DAN written straight from the paper's equations (docs/design.md).

This is the structure of the reference implementation (github.com/yaoing/DAN): a torchvision ResNet-18
trunk as ``nn.Sequential`` and K separate head modules run one after another. Its state-dict keys are
the reference's (``features.N.*``, ``cat_headK.sa.*``, ``cat_headK.ca.attention.*``, ``fc.*``, ``bn.*``),
so the tests build reference-layout checkpoints from it and compare the package's fused model
(:class:`dan.models.DAN`) against it, and ``scripts/bench/speed.py`` times it as the baseline. The
package itself never runs it: :func:`dan.models.checkpoint.convert_reference_state_dict` maps such
weights onto the fused model.
"""

from __future__ import annotations

import torch
import torchvision
from torch import nn

__all__ = ["ChannelAttention", "CrossAttentionHead", "PlainDAN", "SpatialAttention", "randomize"]


class SpatialAttention(nn.Module):
    def __init__(self, c: int = 512) -> None:
        super().__init__()
        s = c // 2
        self.conv1x1 = nn.Sequential(nn.Conv2d(c, s, 1), nn.BatchNorm2d(s))
        self.conv_3x3 = nn.Sequential(nn.Conv2d(s, c, (3, 3), padding=(1, 1)), nn.BatchNorm2d(c))
        self.conv_1x3 = nn.Sequential(nn.Conv2d(s, c, (1, 3), padding=(0, 1)), nn.BatchNorm2d(c))
        self.conv_3x1 = nn.Sequential(nn.Conv2d(s, c, (3, 1), padding=(1, 0)), nn.BatchNorm2d(c))

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        y = self.conv1x1(f)
        s = torch.relu(self.conv_3x3(y) + self.conv_1x3(y) + self.conv_3x1(y))
        a = s.sum(dim=1, keepdim=True)  # (B, 1, H, W)
        return f * a


class ChannelAttention(nn.Module):
    def __init__(self, c: int = 512) -> None:
        super().__init__()
        d = c // 16
        self.attention = nn.Sequential(nn.Linear(c, d), nn.BatchNorm1d(d), nn.ReLU(), nn.Linear(d, c), nn.Sigmoid())

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        g = f.mean(dim=(2, 3))  # (B, C)
        return g * self.attention(g)


class CrossAttentionHead(nn.Module):
    def __init__(self, c: int = 512) -> None:
        super().__init__()
        self.sa = SpatialAttention(c)
        self.ca = ChannelAttention(c)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self.ca(self.sa(f))


class PlainDAN(nn.Module):
    """Reference-layout DAN: torchvision ResNet-18 trunk as nn.Sequential, K separate heads."""

    def __init__(self, num_classes: int = 7, num_heads: int = 4) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.features = nn.Sequential(*list(torchvision.models.resnet18().children())[:-2])
        for k in range(num_heads):
            setattr(self, f"cat_head{k}", CrossAttentionHead())
        self.fc = nn.Linear(512, num_classes)
        self.bn = nn.BatchNorm1d(num_classes)

    def forward(self, x: torch.Tensor):
        f = self.features(x)
        heads = torch.stack([getattr(self, f"cat_head{k}")(f) for k in range(self.num_heads)], dim=1)  # (B, K, C)
        if self.num_heads > 1:
            heads = torch.log_softmax(heads, dim=1)
        return self.bn(self.fc(heads.sum(dim=1))), f, heads


def randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every parameter and BatchNorm statistic a non-trivial random value (deterministic)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name.endswith("num_batches_tracked"):
                t.fill_(7)
            elif name.endswith("running_var"):
                t.copy_(0.5 + torch.rand(t.shape, generator=g))
            elif name.endswith("running_mean"):
                t.copy_(0.1 * torch.randn(t.shape, generator=g))
            elif name.endswith(".weight") and t.dim() == 1:  # norm scale
                t.copy_(0.8 + 0.4 * torch.rand(t.shape, generator=g))
            elif t.dim() >= 2:
                fan_in = t[0].numel()
                t.copy_(torch.randn(t.shape, generator=g) * (2.0 / fan_in) ** 0.5)
            else:
                t.copy_(0.05 * torch.randn(t.shape, generator=g))
    return model
