"""Inference-time re-parameterisation of DAN: every BatchNorm folded away, the heads' branches merged.

In eval mode a BatchNorm is a per-channel affine map, so it folds into the convolution or linear
layer before it. The spatial attention's three branches (3x3, 1x3 and 3x1 convolutions, each with
its BatchNorm) are added before the ReLU, so RepVGG's trick merges them into ONE grouped 3x3
convolution: fold each BatchNorm, zero-pad the 1x3 and 3x1 kernels to 3x3 (their paddings (0, 1)
and (1, 0) line them up with the 3x3 kernel's (1, 1)), add kernels and biases.

:func:`reparameterize` returns an inference-only copy that computes the same function as the
model in eval mode (to float32 rounding) with about 40 % fewer multiply-adds in the heads and no
BatchNorm anywhere in the (timm ResNet) network. Only torch and timm are imported here.

For ``head="mha"`` (:mod:`dan.models.mha`) the backbone's and the classifier's BatchNorms are folded
the same way; the attention heads have no BatchNorm and no parallel branches, so they are kept as
they are (their LayerNorms normalise each input and cannot be folded).
"""

from __future__ import annotations

import copy
from typing import TypeVar, cast

import torch
import torch.nn.functional as F
from torch import nn

from dan.models.dan import DAN
from dan.models.heads import GroupedLinear, MultiHeadCrossAttention

__all__ = [
    "ReparamMultiHeadCrossAttention",
    "ReparameterizedDAN",
    "fold_backbone_batchnorms",
    "fuse_conv_bn",
    "is_reparameterized",
    "reparameterize",
    "to_channels_last",
]


def _bn_scale_shift(bn: nn.modules.batchnorm._BatchNorm) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, shift) with bn(x) == x * scale + shift in eval mode, per channel, in float64."""
    assert bn.running_var is not None and bn.running_mean is not None  # a BatchNorm with running statistics
    var = bn.running_var.double()
    mean = bn.running_mean.double()
    gamma = bn.weight.double() if bn.weight is not None else torch.ones_like(var)
    beta = bn.bias.double() if bn.bias is not None else torch.zeros_like(var)
    scale = gamma / torch.sqrt(var + bn.eps)
    return scale, beta - mean * scale


def _folded_conv_tensors(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias (float64) of ``bn(conv(x))`` as one convolution."""
    scale, shift = _bn_scale_shift(bn)
    w = conv.weight.double() * scale.view(-1, 1, 1, 1)
    b = shift if conv.bias is None else conv.bias.double() * scale + shift
    return w, b


def fuse_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A new convolution computing ``bn(conv(x))`` of the eval-mode BatchNorm (with a bias).

    Args:
        conv: The convolution (any kernel, stride, groups, dilation, padding).
        bn: The BatchNorm2d over its output channels.

    Returns:
        A fresh ``nn.Conv2d`` on the same device and dtype as ``conv``.
    """
    if bn.num_features != conv.out_channels or bn.running_var is None:
        raise ValueError(f"cannot fold {bn} into {conv}")
    w, b = _folded_conv_tensors(conv, bn)
    # a Conv2d's sizes are pairs; torch types them tuple[int, ...] on the base class of all convolutions
    fused = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        cast("tuple[int, int]", conv.kernel_size),
        stride=cast("tuple[int, int]", conv.stride),
        padding=cast("str | tuple[int, int]", conv.padding),
        dilation=cast("tuple[int, int]", conv.dilation),
        groups=conv.groups,
        bias=True,
        padding_mode=conv.padding_mode,
        device=conv.weight.device,
        dtype=conv.weight.dtype,
    )
    assert fused.bias is not None  # made with bias=True
    with torch.no_grad():
        fused.weight.copy_(w.to(conv.weight.dtype))
        fused.bias.copy_(b.to(conv.weight.dtype))
    return fused


def _resnet_types() -> tuple[type, ...]:
    try:
        from timm.models.resnet import BasicBlock, Bottleneck, ResNet
    except ImportError:  # pragma: no cover - timm without the ResNet module
        return ()
    return (ResNet, BasicBlock, Bottleneck)


def fold_backbone_batchnorms(module: nn.Module) -> int:
    """Fold, in place, every BatchNorm2d that directly follows a convolution, for inference.

    Folded are: consecutive ``(Conv2d, BatchNorm2d)`` pairs inside any ``nn.Sequential`` (e.g. a
    ResNet's ``downsample``), and the ``convN``/``bnN`` pairs of timm's ``ResNet`` stem and of its
    ``BasicBlock``/``Bottleneck`` blocks, where the BatchNorm is applied right after its convolution.
    Each folded BatchNorm is replaced by ``nn.Identity`` and its convolution gets a bias. Other
    layouts are left as they are (still correct, just not folded).

    Args:
        module: A backbone (or any module); its BatchNorms' running statistics are used.

    Returns:
        The number of BatchNorms folded.
    """
    count = 0
    resnet_types = _resnet_types()
    conv: nn.Module | None
    bn: nn.Module | None
    for parent in list(module.modules()):
        if isinstance(parent, nn.Sequential):
            names = list(parent._modules)
            for first, second in zip(names, names[1:]):
                conv, bn = parent._modules[first], parent._modules[second]
                if (
                    isinstance(conv, nn.Conv2d)
                    and isinstance(bn, nn.BatchNorm2d)
                    and bn.num_features == conv.out_channels
                ):
                    parent._modules[first] = fuse_conv_bn(conv, bn)
                    parent._modules[second] = nn.Identity()
                    count += 1
        elif resnet_types and type(parent) in resnet_types:
            for i in range(1, 4):
                conv, bn = getattr(parent, f"conv{i}", None), getattr(parent, f"bn{i}", None)
                if (
                    isinstance(conv, nn.Conv2d)
                    and isinstance(bn, nn.BatchNorm2d)
                    and bn.num_features == conv.out_channels
                ):
                    setattr(parent, f"conv{i}", fuse_conv_bn(conv, bn))
                    setattr(parent, f"bn{i}", nn.Identity())
                    count += 1
    return count


class ReparamMultiHeadCrossAttention(nn.Module):
    """The K heads of :class:`MultiHeadCrossAttention` with every BatchNorm folded (inference only).

    Spatial attention: one biased 1x1 convolution (its BatchNorm folded) and ONE grouped biased 3x3
    convolution (the 3x3, 1x3 and 3x1 branches and their BatchNorms merged). Channel attention: the
    BatchNorm1d folded into the first batched linear layer. Build it with :meth:`from_heads`.
    """

    def __init__(self, in_chs: int, num_heads: int, sa_dim: int, ca_dim: int) -> None:
        super().__init__()
        k, c, s, d = num_heads, in_chs, sa_dim, ca_dim
        self.num_heads, self.in_chs, self.sa_dim, self.ca_dim = k, c, s, d
        self.conv1x1 = nn.Conv2d(c, k * s, 1)
        self.conv3x3 = nn.Conv2d(k * s, k * c, 3, padding=1, groups=k)
        self.fc1 = GroupedLinear(k, c, d)
        self.fc2 = GroupedLinear(k, d, c)

    @classmethod
    @torch.no_grad()
    def from_heads(cls, heads: MultiHeadCrossAttention) -> ReparamMultiHeadCrossAttention:
        """Fold a trained :class:`MultiHeadCrossAttention` (its eval-mode statistics)."""
        k, c, s, d = heads.num_heads, heads.in_chs, heads.sa_dim, heads.ca_dim
        dev, dtype = heads.conv1x1.weight.device, heads.conv1x1.weight.dtype
        new = cls(c, k, s, d).to(device=dev, dtype=dtype)
        w1, b1 = _folded_conv_tensors(heads.conv1x1, heads.bn1x1)
        assert new.conv1x1.bias is not None and new.conv3x3.bias is not None  # made with biases
        new.conv1x1.weight.copy_(w1)
        new.conv1x1.bias.copy_(b1)
        w, b = _folded_conv_tensors(heads.conv3x3, heads.bn3x3)
        w13, b13 = _folded_conv_tensors(heads.conv1x3, heads.bn1x3)
        w31, b31 = _folded_conv_tensors(heads.conv3x1, heads.bn3x1)
        w = w + F.pad(w13, (0, 0, 1, 1)) + F.pad(w31, (1, 1, 0, 0))  # (1,3) -> rows 1; (3,1) -> column 1
        new.conv3x3.weight.copy_(w)
        new.conv3x3.bias.copy_(b + b13 + b31)
        scale, shift = _bn_scale_shift(heads.bn_ca)  # over K*D channels, head-major
        scale, shift = scale.view(k, d), shift.view(k, d)
        new.fc1.weight.copy_(heads.fc1.weight.double() * scale.unsqueeze(-1))
        new.fc1.bias.copy_(heads.fc1.bias.double() * scale + shift)
        new.fc2.load_state_dict(heads.fc2.state_dict())
        return new.eval()

    def spatial_attention(self, x: torch.Tensor) -> torch.Tensor:
        """Attention maps of all heads, (B, C, H, W) -> (B, K, H, W)."""
        s = F.relu(self.conv3x3(self.conv1x1(x)))  # (B, K*C, H, W)
        return s.unflatten(1, (self.num_heads, self.in_chs)).sum(2)

    def forward(self, x: torch.Tensor, return_attention: bool = False):
        """Same contract as :meth:`MultiHeadCrossAttention.forward`."""
        hw = x.shape[-2] * x.shape[-1]
        a = self.spatial_attention(x)  # (B, K, H, W)
        g = torch.bmm(a.flatten(2), x.flatten(2).transpose(1, 2)) / hw  # (B, K, C)
        out = g * torch.sigmoid(self.fc2(F.relu(self.fc1(g))))
        return (out, a) if return_attention else out


class ReparameterizedDAN(DAN):
    """A :class:`DAN` whose BatchNorms are folded: same forward and outputs, inference only.

    Made by :func:`reparameterize`. ``train()`` leaves it in eval mode and its parameters do not
    require gradients: the folded network would train a different (BatchNorm-free) function, so
    train the original model. Its state dict has its own keys: save the original model, not this.
    """

    def train(self, mode: bool = True) -> ReparameterizedDAN:
        """Stays in eval mode whatever ``mode`` is (exporters toggle modes; this must not change)."""
        return super().train(False)


def is_reparameterized(model: nn.Module) -> bool:
    """True for a model returned by :func:`reparameterize`."""
    return isinstance(model, ReparameterizedDAN)


@torch.no_grad()
def reparameterize(model: DAN, channels_last: bool = False) -> ReparameterizedDAN:
    """An inference-only copy of ``model`` with every BatchNorm folded and the head branches merged.

    With ``head="mha"`` only the backbone and classifier BatchNorms are folded; the heads are copied.

    The copy is a :class:`DAN` (a :class:`ReparameterizedDAN`) in eval mode: ``forward`` returns the
    same :class:`~dan.models.dan.DANOutput` (logits, features, heads and, when asked, attention maps)
    as ``model.eval()`` does, to float32 rounding. ``labels`` and ``preprocessing`` are kept. The
    original model is not changed.

    Args:
        model: A DAN (training or eval mode; its running statistics are what gets folded).
        channels_last: Also convert the copy to the channels-last memory format (faster convolutions
            on CPU with oneDNN; feed it inputs of either format).

    Returns:
        The re-parameterised copy.
    """
    new: DAN
    if isinstance(model, ReparameterizedDAN):
        new = copy.deepcopy(model)
    else:
        if not isinstance(model, DAN):
            raise TypeError(f"reparameterize takes a DAN, got {type(model).__name__}")
        new = copy.deepcopy(model).eval()
        fold_backbone_batchnorms(new.backbone)
        if isinstance(model.heads, MultiHeadCrossAttention):  # other head types (mha) stay as they are
            new.heads = ReparamMultiHeadCrossAttention.from_heads(model.heads)
        fc, bn = new.fc, new.bn
        assert isinstance(bn, nn.BatchNorm1d)  # a DAN's classifier BatchNorm (an Identity only once re-parameterised)
        scale, shift = _bn_scale_shift(bn)
        fc.weight.copy_(fc.weight.double() * scale.unsqueeze(1))
        fc.bias.copy_(fc.bias.double() * scale + shift)
        new.bn = nn.Identity()
        new.drop = nn.Identity()
        new.__class__ = ReparameterizedDAN
    new.eval()
    for p in new.parameters():
        p.requires_grad_(False)
    if channels_last:
        new = to_channels_last(new)
    return cast(ReparameterizedDAN, new)  # its class is set above


ModuleT = TypeVar("ModuleT", bound=nn.Module)


def to_channels_last(model: ModuleT) -> ModuleT:
    """Convert ``model`` in place to the channels-last (NHWC) memory format and return it.

    Convolutions then run on oneDNN's NHWC kernels on CPU (and tensor cores on GPU); feed inputs
    converted with ``x.to(memory_format=torch.channels_last)`` to avoid a layout change per call.
    Works for training too (DAN's heads and losses accept either layout).
    """
    return model.to(memory_format=torch.channels_last)
