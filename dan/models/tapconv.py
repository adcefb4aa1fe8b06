"""Stride-1 "same" convolutions on tiny maps as one batched matrix product per kernel tap (CPU).

At 48 to 64 px inputs ResNet-18's last stage and DAN's heads see 2 x 2 maps. A 3x3 convolution with
"same" padding there multiplies mostly padding (36 tap-positions, 16 of them real), and the CPU's
convolution backward on such maps is slow (oneDNN on AVX2: about 3x the time of the same products
as matrix multiplications, and the weight gradient is copied into a channels-last parameter). Here tap
(dy, dx) adds ``W[:, :, dy, dx] @ y`` only to the outputs it reaches: the same function (to float32
rounding), with the same parameters and state-dict keys, and no product with the padding.

:class:`TapConv2d` is an ``nn.Conv2d`` that takes this path for CPU inputs of at most
:data:`TAP_PRODUCTS_MAX_HW` positions outside autocast, and ``F.conv2d`` otherwise (GPUs, larger
maps, bfloat16 autocast);
:func:`use_tap_convs` turns the eligible convolutions of a network (a timm backbone) into it.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["TAP_PRODUCTS_MAX_HW", "TapConv2d", "grouped_conv_taps", "use_tap_convs"]

# Largest map (H * W) that runs as per-tap products: 4 x 4, ResNet-18's last stage for inputs up to 128 px.
# Measured on an AVX2 CPU, forward + backward, batch 64, one thread: a 512 -> 512 3x3 convolution 2.7x
# faster at 2 x 2, 2.0x at 4 x 4, 1.4x at 7 x 7; the heads' three grouped convolutions 3.5x at 2 x 2,
# 1.7x at 4 x 4, 1.1x at 7 x 7. The whole 112 px training step: 25 % less time than with 2 x 2 only.
TAP_PRODUCTS_MAX_HW = 16


class _SplitTaps(torch.autograd.Function):
    """``w.unbind(2)`` of a (K, C, T, S) weight, whose backward writes each tap's gradient in place.

    Unbind's own backward, ``torch.stack(grads, 2)``, is about 5x slower on the CPU for these sizes.
    """

    @staticmethod
    def forward(ctx, w: torch.Tensor) -> tuple[torch.Tensor, ...]:  # type: ignore[override]
        ctx.shape = w.shape
        return w.unbind(2)

    @staticmethod
    def backward(ctx, *grads: torch.Tensor | None) -> torch.Tensor:  # type: ignore[override]
        some = next(g for g in grads if g is not None)
        out = some.new_empty(ctx.shape)  # (K, C, T, S)
        for t, g in enumerate(grads):
            out[:, :, t] = 0 if g is None else g
        return out


def grouped_conv_taps(y: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, groups: int) -> torch.Tensor:
    """A grouped, stride-1, zero-padded "same" convolution as one batched matrix product per kernel tap.

    Equals ``F.conv2d(y, weight, bias, padding=(kh // 2, kw // 2), groups=groups)`` for odd kh, kw.

    Args:
        y: Input map, shape (B, K*S, H, W), K = ``groups``; no copy is made when it is channels-last.
        weight: Convolution weight, shape (K*C, S, kh, kw); no copy is made when it is channels-last.
        bias: Convolution bias, shape (K*C,), or None.
        groups: The number of groups K.

    Returns:
        Tensor of shape (B, K*C, H, W), channels-last.
    """
    b, _, h, w = y.shape
    k, kh, kw = groups, weight.shape[2], weight.shape[3]
    c, s = weight.shape[0] // k, weight.shape[1]
    y5 = y.permute(0, 2, 3, 1).reshape(b, h, w, k, s)  # (B, H, W, K, S)
    taps = _SplitTaps.apply(weight.permute(0, 2, 3, 1).reshape(k, c, kh * kw, s))  # kh*kw x (K, C, S)
    out: torch.Tensor | None = None
    for t, (dy, dx) in enumerate(itertools.product(range(kh), range(kw))):
        oy, ox = dy - kh // 2, dx - kw // 2  # this tap reads input (i + oy, j + ox) for output (i, j)
        i0, i1, j0, j1 = max(0, -oy), min(h, h - oy), max(0, -ox), min(w, w - ox)  # the outputs it reaches
        if i0 >= i1 or j0 >= j1:
            continue
        x = y5[:, i0 + oy : i1 + oy, j0 + ox : j1 + ox]  # (B, h', w', K, S)
        x = x.permute(3, 0, 1, 2, 4).reshape(k, -1, s)  # (K, B*h'*w', S)
        # W @ x^T rather than x @ W^T: the weight's gradient then comes out in its (C, S) row order
        r = torch.bmm(taps[t], x.transpose(1, 2)).view(k, c, b, i1 - i0, j1 - j0)  # (K, C, B, h', w')
        r = F.pad(r, (j0, w - j1, i0, h - i1))  # (K, C, B, H, W)
        out = r if out is None else out + r
    assert out is not None  # the centre tap reaches every output
    if bias is not None:
        out = out + bias.view(k, c, 1, 1, 1)  # (K, C, B, H, W)
    return out.permute(2, 3, 4, 0, 1).reshape(b, h, w, k * c).permute(0, 3, 1, 2)  # (B, K*C, H, W)


def _eligible(conv: nn.Conv2d) -> bool:
    """Stride 1, no dilation, odd kernel larger than 1x1, zero "same" padding."""
    kh, kw = conv.kernel_size
    return (
        conv.stride == (1, 1)
        and conv.dilation == (1, 1)
        and kh % 2 == 1
        and kw % 2 == 1
        and kh * kw > 1
        and conv.padding == (kh // 2, kw // 2)
        and conv.padding_mode == "zeros"
    )


class TapConv2d(nn.Conv2d):
    """An ``nn.Conv2d`` (same parameters, same state dict) that runs :func:`grouped_conv_taps` on small CPU maps.

    Only for stride 1, odd kernels and zero "same" padding. ``tap_max_hw`` (default
    :data:`TAP_PRODUCTS_MAX_HW`; 0 turns the products off) is the largest H * W that takes them.
    """

    tap_max_hw: int = TAP_PRODUCTS_MAX_HW

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not _eligible(self):
            raise ValueError(f"TapConv2d needs stride 1, an odd kernel and zero 'same' padding, got {self}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Same as ``nn.Conv2d.forward``."""
        if (
            x.is_cpu
            and x.dim() == 4
            and x.shape[-2] * x.shape[-1] <= self.tap_max_hw
            and not torch.is_autocast_enabled("cpu")  # bfloat16 products would be summed in bfloat16
        ):
            return grouped_conv_taps(x, self.weight, self.bias, self.groups)
        return super().forward(x)


def use_tap_convs(module: nn.Module) -> int:
    """Turn, in place, every eligible plain ``nn.Conv2d`` (groups 1) of ``module`` into a :class:`TapConv2d`.

    Parameters, state-dict keys and the function computed stay the same.

    Args:
        module: A network, e.g. a timm ResNet backbone.

    Returns:
        The number of convolutions changed.
    """
    count = 0
    for m in module.modules():
        if type(m) is nn.Conv2d and m.groups == 1 and _eligible(m):
            m.__class__ = TapConv2d
            count += 1
    return count
