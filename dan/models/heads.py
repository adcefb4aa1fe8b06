"""Multi-head cross Attention Network (MAN) of DAN, with the K heads computed together.

Paper: "Distract Your Attention: Multi-head Cross Attention Network for Facial Expression
Recognition", Wen et al., 2021 (arXiv 2109.07270), section 3.2.

Each head k does spatial attention then channel attention on the backbone map F (B, C, H, W):

    y   = BN(Conv1x1 C->S)(F)
    s   = ReLU(BN(Conv3x3 S->C)(y) + BN(Conv1x3 S->C)(y) + BN(Conv3x1 S->C)(y))
    a   = sum_c s                          (B, 1, H, W)
    g   = GAP(F * a)                       (B, C)
    h_k = g * Sigmoid(Linear D->C(ReLU(BN1d(Linear C->D(g)))))

with S = C/2 and D = C/16 (256 and 32 for ResNet-18). Instead of K separate modules, the heads
share one 1x1 convolution with K*S outputs, grouped (groups=K) 3x3 / 1x3 / 3x1 convolutions,
BatchNorms over the concatenated channels and batched per-head linear layers. BatchNorm is per
channel, so this is the same function with the same parameters; :func:`per_head_to_fused` maps
the per-head (reference) state-dict layout onto it. The grouped convolutions are
:class:`~dan.models.tapconv.TapConv2d`: on small maps (up to 4 x 4: inputs up to 128 px) they run on
the CPU as per-tap matrix products (no products with the padding, no slow grouped-convolution backward).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from dan.models.tapconv import TapConv2d

__all__ = ["GroupedLinear", "MultiHeadCrossAttention", "per_head_to_fused"]


class GroupedLinear(nn.Module):
    """K independent linear layers applied to a (B, K, in_features) tensor in one batched matmul.

    Args:
        num_groups: Number of independent layers K.
        in_features: Input size of each layer.
        out_features: Output size of each layer.
    """

    def __init__(self, num_groups: int, in_features: int, out_features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_groups, out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(num_groups, out_features))
        nn.init.normal_(self.weight, std=0.001)  # the reference's Linear init

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, K, I) x (K, O, I) -> (B, K, O)
        return torch.einsum("bki,koi->bko", x, self.weight) + self.bias


class MultiHeadCrossAttention(nn.Module):
    """K spatial-then-channel attention heads over one feature map.

    Args:
        in_chs: Channels C of the backbone feature map.
        num_heads: Number of heads K (>= 1).
        sa_dim: Hidden channels S of the spatial attention (default C // 2).
        ca_dim: Hidden size D of the channel attention (default C // 16).
    """

    def __init__(self, in_chs: int, num_heads: int = 4, sa_dim: int | None = None, ca_dim: int | None = None) -> None:
        super().__init__()
        if num_heads < 1:
            raise ValueError(f"num_heads must be >= 1, got {num_heads}")
        k, c = num_heads, in_chs
        s = sa_dim or max(c // 2, 1)
        d = ca_dim or max(c // 16, 1)
        self.num_heads, self.in_chs, self.sa_dim, self.ca_dim = k, c, s, d

        # spatial attention
        self.conv1x1 = nn.Conv2d(c, k * s, 1)
        self.bn1x1 = nn.BatchNorm2d(k * s)
        self.conv3x3 = TapConv2d(k * s, k * c, (3, 3), padding=(1, 1), groups=k)
        self.bn3x3 = nn.BatchNorm2d(k * c)
        self.conv1x3 = TapConv2d(k * s, k * c, (1, 3), padding=(0, 1), groups=k)
        self.bn1x3 = nn.BatchNorm2d(k * c)
        self.conv3x1 = TapConv2d(k * s, k * c, (3, 1), padding=(1, 0), groups=k)
        self.bn3x1 = nn.BatchNorm2d(k * c)
        # channel attention
        self.fc1 = GroupedLinear(k, c, d)
        self.bn_ca = nn.BatchNorm1d(k * d)
        self.fc2 = GroupedLinear(k, d, c)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The reference initialisation, computed per head (kaiming fan_out of one head's conv)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                per_head_out = m.out_channels // self.num_heads
                fan_out = per_head_out * m.kernel_size[0] * m.kernel_size[1]
                nn.init.normal_(m.weight, std=math.sqrt(2.0 / fan_out))
                assert m.bias is not None  # every head convolution has a bias
                nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def spatial_attention(self, x: torch.Tensor) -> torch.Tensor:
        """Attention maps a_k of all heads.

        Args:
            x: Feature map, shape (B, C, H, W).

        Returns:
            Tensor of shape (B, K, H, W).
        """
        b, _, h, w = x.shape
        y = self.bn1x1(self.conv1x1(x))  # (B, K*S, H, W)
        s = self.bn3x3(self.conv3x3(y)) + self.bn1x3(self.conv1x3(y)) + self.bn3x1(self.conv3x1(y))
        s = F.relu(s)  # (B, K*C, H, W)
        return s.view(b, self.num_heads, self.in_chs, h, w).sum(2)  # (B, K, H, W)

    def forward(self, x: torch.Tensor, return_attention: bool = False):
        """Head outputs h_1..h_K.

        Args:
            x: Feature map, shape (B, C, H, W).
            return_attention: Also return the spatial attention maps (B, K, H, W).

        Returns:
            Tensor of shape (B, K, C), or a tuple (heads, attention) when ``return_attention``.
        """
        b, c, h, w = x.shape
        a = self.spatial_attention(x)  # (B, K, H, W)
        # GAP(F * a_k) for every head at once: (B, K, HW) @ (B, HW, C) -> (B, K, C)
        g = torch.bmm(a.flatten(2), x.flatten(2).transpose(1, 2)) / (h * w)
        z = self.fc1(g)  # (B, K, D)
        z = F.relu(self.bn_ca(z.reshape(b, -1)).view(b, self.num_heads, self.ca_dim))  # (B, K, D)
        out = g * torch.sigmoid(self.fc2(z))  # (B, K, C)
        return (out, a) if return_attention else out


# Reference per-head names (cat_head{k}.<name>) -> (fused module, kind). kind "conv"/"bn" slices dim 0,
# "lin" stacks along a new head axis.
_PER_HEAD_MAP = {
    "sa.conv1x1.0": ("conv1x1", "slice"),
    "sa.conv1x1.1": ("bn1x1", "slice"),
    "sa.conv_3x3.0": ("conv3x3", "slice"),
    "sa.conv_3x3.1": ("bn3x3", "slice"),
    "sa.conv_1x3.0": ("conv1x3", "slice"),
    "sa.conv_1x3.1": ("bn1x3", "slice"),
    "sa.conv_3x1.0": ("conv3x1", "slice"),
    "sa.conv_3x1.1": ("bn3x1", "slice"),
    "ca.attention.0": ("fc1", "stack"),
    "ca.attention.1": ("bn_ca", "slice"),
    "ca.attention.3": ("fc2", "stack"),
}


def per_head_to_fused(heads: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Convert K per-head state dicts (the reference ``CrossAttentionHead`` layout) to the fused one.

    Args:
        heads: One state dict per head, keys like ``sa.conv_3x3.0.weight`` (prefix removed).

    Returns:
        A state dict for :class:`MultiHeadCrossAttention` (keys like ``conv3x3.weight``). Keys the
        first head lacks are left out, so a strict ``load_state_dict`` names them as missing.
    """
    out: dict[str, torch.Tensor] = {}
    for src, (dst, kind) in _PER_HEAD_MAP.items():
        for leaf in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
            key = f"{src}.{leaf}"
            if key not in heads[0]:
                continue
            tensors = [h[key] for h in heads]
            if leaf == "num_batches_tracked":
                out[f"{dst}.{leaf}"] = tensors[0].clone()
            elif kind == "stack":
                out[f"{dst}.{leaf}"] = torch.stack(tensors)  # (K, O, I) or (K, O)
            else:
                out[f"{dst}.{leaf}"] = torch.cat(tensors)  # (K*O, ...)
    return out
