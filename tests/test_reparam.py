"""Re-parameterisation (dan.models.reparam): the folded network computes the same function.

A plain per-head spatial/channel attention head is written here from the paper's equations (docs/design.md) in the
reference module layout; its weights go into the fused heads through ``per_head_to_fused``.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from dan import DAN
from dan.models.heads import GroupedLinear, MultiHeadCrossAttention, per_head_to_fused
from dan.models.reparam import (
    ReparameterizedDAN,
    ReparamMultiHeadCrossAttention,
    fold_backbone_batchnorms,
    fuse_conv_bn,
    is_reparameterized,
    reparameterize,
    to_channels_last,
)

from conftest import settle_batchnorm

torch.set_num_threads(2)


# ----------------------------------------------------------------------------- a plain reference head
class PlainHead(nn.Module):
    """One head as in the reference: cat_head{k}.sa.* and cat_head{k}.ca.attention.*."""

    def __init__(self, c: int) -> None:
        super().__init__()
        s, d = c // 2, c // 16
        self.sa = nn.Module()
        self.sa.conv1x1 = nn.Sequential(nn.Conv2d(c, s, 1), nn.BatchNorm2d(s))
        self.sa.conv_3x3 = nn.Sequential(nn.Conv2d(s, c, (3, 3), padding=(1, 1)), nn.BatchNorm2d(c))
        self.sa.conv_1x3 = nn.Sequential(nn.Conv2d(s, c, (1, 3), padding=(0, 1)), nn.BatchNorm2d(c))
        self.sa.conv_3x1 = nn.Sequential(nn.Conv2d(s, c, (3, 1), padding=(1, 0)), nn.BatchNorm2d(c))
        self.ca = nn.Module()
        self.ca.attention = nn.Sequential(nn.Linear(c, d), nn.BatchNorm1d(d), nn.ReLU(), nn.Linear(d, c), nn.Sigmoid())

    def forward(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.sa.conv1x1(f)
        s = torch.relu(self.sa.conv_3x3(y) + self.sa.conv_1x3(y) + self.sa.conv_3x1(y))
        a = s.sum(dim=1, keepdim=True)  # (B, 1, H, W)
        g = (f * a).mean(dim=(2, 3))  # (B, C)
        return g * self.ca.attention(g), a[:, 0]


def randomize_norms(model: nn.Module, seed: int) -> nn.Module:
    """Non-trivial BatchNorm affine parameters and running statistics (deterministic)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                m.weight.copy_(0.5 + torch.rand(n, generator=g))
                m.bias.copy_(0.2 * torch.randn(n, generator=g))
                m.running_mean.copy_(0.2 * torch.randn(n, generator=g))
                m.running_var.copy_(0.5 + torch.rand(n, generator=g))
    return model


def realistic_dan(num_heads: int, size: int, seed: int = 0) -> DAN:
    """A DAN whose BatchNorm statistics come from data (so activations stay O(1)), then perturbed."""
    torch.manual_seed(seed)
    model = DAN(num_classes=7, num_heads=num_heads)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (GroupedLinear, nn.Linear)):
                m.weight.normal_(0, 0.1, generator=g)
    return settle_batchnorm(model, size, seed)


# ----------------------------------------------------------------------------- heads
@pytest.mark.parametrize("num_heads", [1, 2, 4])
def test_reparam_heads_match_plain_per_head_heads(num_heads: int) -> None:
    c = 64
    torch.manual_seed(num_heads)
    plain = [randomize_norms(PlainHead(c), seed=k).eval() for k in range(num_heads)]
    for h in plain:  # the reference's Linear init (std 0.001) would hide channel-attention mistakes
        nn.init.normal_(h.ca.attention[0].weight, std=0.2)
        nn.init.normal_(h.ca.attention[3].weight, std=0.2)
    fused = MultiHeadCrossAttention(c, num_heads)
    fused.load_state_dict(per_head_to_fused([h.state_dict() for h in plain]))
    rep = ReparamMultiHeadCrossAttention.from_heads(fused.eval())
    assert isinstance(rep.conv3x3, nn.Conv2d) and rep.conv3x3.kernel_size == (3, 3) and rep.conv3x3.groups == num_heads
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in rep.modules())
    f = torch.randn(3, c, 7, 6)
    with torch.no_grad():
        outs = [h(f) for h in plain]
        want_h = torch.stack([o[0] for o in outs], 1)
        want_a = torch.stack([o[1] for o in outs], 1)
        got_h, got_a = rep(f, return_attention=True)
    torch.testing.assert_close(got_a, want_a, rtol=1e-4, atol=1e-4 * want_a.abs().max().item())
    torch.testing.assert_close(got_h, want_h, rtol=1e-4, atol=1e-5)
    assert want_h.std() > 1e-3  # the comparison is not trivially between zeros


# ----------------------------------------------------------------------------- whole network
@pytest.fixture(scope="module")
def dan4() -> DAN:
    return realistic_dan(4, 96, seed=5)


@pytest.mark.parametrize("num_heads,size", [(1, 64), (2, 96), (4, 112)])
def test_reparameterized_dan_matches_eval_model(num_heads: int, size: int) -> None:
    model = realistic_dan(num_heads, size, seed=size + num_heads)
    before = copy.deepcopy(model.state_dict())
    rep = reparameterize(model)
    x = torch.randn(3, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = model(x, return_attention=True)
        got = rep(x, return_attention=True)
    assert (got.logits - want.logits).abs().max().item() <= 1e-4
    assert want.logits.std() > 0.05  # non-trivial logits
    # heads are log-softmax values of sums over the map (hundreds): float32 rounding relative to the largest
    torch.testing.assert_close(got.heads, want.heads, rtol=1e-4, atol=2e-5 * want.heads.abs().max().item())
    torch.testing.assert_close(got.features, want.features, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(got.attention, want.attention, rtol=1e-4, atol=1e-4 * want.attention.abs().max().item())
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in rep.modules())
    # the original is untouched
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_reparameterize_keeps_labels_preprocessing_and_is_inference_only(dan4: DAN) -> None:
    model = copy.deepcopy(dan4)
    model.labels = tuple("abcdefg")
    model.train()
    rep = reparameterize(model)
    assert model.training  # the original's mode is not changed
    assert isinstance(rep, DAN) and isinstance(rep, ReparameterizedDAN) and is_reparameterized(rep)
    assert not is_reparameterized(model)
    assert rep.labels == model.labels and rep.preprocessing == model.preprocessing
    rep.train()
    assert not rep.training and not any(m.training for m in rep.modules())
    assert not any(p.requires_grad for p in rep.parameters())
    with pytest.raises(TypeError):
        reparameterize(nn.Linear(2, 2))


def test_backbone_batchnorms_are_all_folded_for_resnet18(dan4: DAN) -> None:
    model = dan4
    backbone = copy.deepcopy(model.backbone)
    assert fold_backbone_batchnorms(backbone) == 20  # stem + 8 blocks x 2 + 3 downsamples
    assert not any(isinstance(m, nn.BatchNorm2d) for m in backbone.modules())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(backbone.forward_features(x), model.forward_features(x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("stride,groups,kernel", [(1, 1, (3, 3)), (2, 2, (1, 3)), (1, 4, (3, 1))])
def test_fuse_conv_bn(stride: int, groups: int, kernel: tuple[int, int]) -> None:
    conv = nn.Conv2d(8, 16, kernel, stride=stride, padding=(kernel[0] // 2, kernel[1] // 2), groups=groups)
    bn = randomize_norms(nn.Sequential(nn.BatchNorm2d(16)), 3)[0].eval()
    x = torch.randn(2, 8, 9, 10)
    with torch.no_grad():
        torch.testing.assert_close(fuse_conv_bn(conv, bn)(x), bn(conv(x)), rtol=1e-5, atol=1e-5)


def test_channels_last_reparam_matches(dan4: DAN) -> None:
    model = dan4
    rep = reparameterize(model, channels_last=True)
    assert rep.heads.conv3x3.weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        want = model(x).logits
        got_cl = rep(x.to(memory_format=torch.channels_last)).logits
        got = rep(x).logits
    assert (got_cl - want).abs().max().item() <= 1e-4
    assert (got - want).abs().max().item() <= 1e-4


def test_channels_last_training_step_matches_contiguous() -> None:
    """Channels-last is an option for training too: same loss and gradients (to float rounding)."""
    from dan.models.losses import AffinityLoss, PartitionLoss

    torch.manual_seed(0)
    ref = DAN(num_classes=7, num_heads=2)
    cl = to_channels_last(copy.deepcopy(ref))
    x = torch.randn(4, 3, 64, 64)
    y = torch.tensor([0, 1, 2, 3])
    af, pt = AffinityLoss(7, 512), PartitionLoss()
    losses = []
    for model, inp in ((ref, x), (cl, x.to(memory_format=torch.channels_last))):
        model.train()
        out = model(inp)
        loss = nn.functional.cross_entropy(out.logits, y) + af(out.features, y) + pt(out.heads)
        loss.backward()
        losses.append(loss.detach())
    torch.testing.assert_close(losses[0], losses[1], rtol=1e-4, atol=1e-4)
    for (name, p), q in zip(ref.named_parameters(), cl.parameters()):
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-3, atol=1e-4, msg=name)
