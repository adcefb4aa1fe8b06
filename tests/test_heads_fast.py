"""Per-tap products (dan.models.tapconv) compute what the convolutions they replace compute, values and gradients."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import dan.models.tapconv as tapconv
from dan.models.heads import MultiHeadCrossAttention
from dan.models.reparam import reparameterize
from dan.models.tapconv import TapConv2d, grouped_conv_taps, use_tap_convs
from dan.training.module import DANModule

CL = torch.channels_last


def _taps_off(model: nn.Module) -> nn.Module:
    for m in model.modules():
        if isinstance(m, TapConv2d):
            m.tap_max_hw = 0
    return model


@pytest.mark.parametrize("kernel", [(3, 3), (1, 3), (3, 1), (5, 3)])
@pytest.mark.parametrize("hw", [(1, 1), (2, 2), (2, 3), (7, 7)])
@pytest.mark.parametrize(("groups", "channels_last", "bias"), [(1, False, False), (3, False, True), (3, True, True)])
def test_grouped_conv_taps_equals_conv2d(kernel, hw, groups: int, channels_last: bool, bias: bool) -> None:
    g = torch.Generator().manual_seed(kernel[0] * 100 + hw[0] * 10 + hw[1])
    y = torch.randn(3, groups * 4, *hw, generator=g, dtype=torch.float64)
    w = torch.randn(groups * 5, 4, *kernel, generator=g, dtype=torch.float64)
    b = torch.randn(groups * 5, generator=g, dtype=torch.float64) if bias else None
    if channels_last:
        y, w = y.contiguous(memory_format=CL), w.contiguous(memory_format=CL)
    r = torch.randn(3, groups * 5, *hw, generator=g, dtype=torch.float64)
    results = []
    for fn in (
        lambda y, w, b: F.conv2d(y, w, b, padding=(kernel[0] // 2, kernel[1] // 2), groups=groups),
        lambda y, w, b: grouped_conv_taps(y, w, b, groups),
    ):
        leaves = [t.detach().clone().requires_grad_(True) for t in (y, w, b) if t is not None]
        out = fn(*leaves) if bias else fn(*leaves, None)
        (out * r).sum().backward()
        results.append([out.detach()] + [t.grad for t in leaves])
    for name, got, want in zip(("output", "dy", "dw", "db"), results[1], results[0]):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10, msg=name)
    if channels_last:  # the weight gradient comes out in the parameter's layout: no copy into it
        assert results[1][2].is_contiguous(memory_format=CL)


def _heads_pair(k: int, dtype: torch.dtype, seed: int) -> tuple[MultiHeadCrossAttention, MultiHeadCrossAttention]:
    """Two copies of randomised heads (C = 32): the F.conv2d path and the per-tap products."""
    torch.manual_seed(seed)
    taps = MultiHeadCrossAttention(32, k).to(dtype)
    with torch.no_grad():
        for t in [*taps.parameters(), *taps.buffers()]:
            if t.is_floating_point():
                t.add_(torch.rand_like(t) * 0.2)  # off the init: biases and statistics non-zero, variances > 0
    for m in taps.modules():
        if isinstance(m, TapConv2d):
            m.tap_max_hw = 64  # every test size
    return _taps_off(copy.deepcopy(taps)), taps


def _run(model: MultiHeadCrossAttention, x: torch.Tensor, r: torch.Tensor, train: bool):
    model.train(train)
    model.zero_grad(set_to_none=True)
    out, att = model(x, return_attention=True)
    ((out * r).sum() + att.square().sum()).backward()
    return out.detach(), att.detach(), {n: p.grad for n, p in model.named_parameters()}


@pytest.mark.parametrize(("k", "batch"), [(1, 3), (2, 2), (4, 5)])
@pytest.mark.parametrize("hw", [1, 2, 3, 7])
@pytest.mark.parametrize("train", [True, False])
def test_heads_match_the_conv_path_in_float64(k: int, hw: int, batch: int, train: bool) -> None:
    conv, taps = _heads_pair(k, torch.float64, seed=k * 100 + hw * 10 + batch)
    x = torch.randn(batch, 32, hw, hw, dtype=torch.float64)
    r = torch.randn(batch, k, 32, dtype=torch.float64)
    out_c, att_c, grads_c = _run(conv, x, r, train)
    out_t, att_t, grads_t = _run(taps, x, r, train)
    torch.testing.assert_close(out_t, out_c, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(att_t, att_c, rtol=1e-9, atol=1e-12)
    for name, g in grads_c.items():  # biases before a training BatchNorm: zero up to float64 rounding
        torch.testing.assert_close(grads_t[name], g, rtol=1e-7, atol=1e-9 * max(1.0, float(g.abs().max())), msg=name)
    for (name, a), b in zip(conv.named_buffers(), taps.buffers()):  # running statistics
        torch.testing.assert_close(b, a, rtol=1e-9, atol=1e-12, msg=name)


@pytest.mark.parametrize("k", [2, 4])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("train", [True, False])
def test_heads_match_the_conv_path_in_float32(k: int, channels_last: bool, train: bool) -> None:
    conv, taps = _heads_pair(k, torch.float32, seed=k)
    x = torch.randn(8, 32, 2, 2)
    if channels_last:
        conv, taps, x = conv.to(memory_format=CL), taps.to(memory_format=CL), x.contiguous(memory_format=CL)
    r = torch.randn(8, k, 32)
    out_c, att_c, grads_c = _run(conv, x, r, train)
    out_t, att_t, grads_t = _run(taps, x, r, train)
    torch.testing.assert_close(out_t, out_c, rtol=1e-4, atol=1e-4 * float(out_c.abs().max()))
    torch.testing.assert_close(att_t, att_c, rtol=1e-4, atol=1e-4 * float(att_c.abs().max()))
    for name, g in grads_c.items():
        if train and name.endswith(".bias") and not name.startswith(("bn", "fc2")):  # before a BatchNorm: 0
            g_scale = grads_c[name.replace(".bias", ".weight")]  # so only rounding: measured against its weight's
        else:
            g_scale = g
        torch.testing.assert_close(grads_t[name], g, rtol=1e-4, atol=1e-4 * float(g_scale.abs().max()), msg=name)


def test_tap_products_run_on_small_cpu_maps_only(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, int]] = []

    def counted(y, *args):
        calls.append(tuple(y.shape[-2:]))
        return grouped_conv_taps(y, *args)

    monkeypatch.setattr(tapconv, "grouped_conv_taps", counted)
    heads = MultiHeadCrossAttention(64, 2).eval()
    with torch.no_grad():
        heads(torch.randn(2, 64, 2, 2))  # ResNet-18 at 48 and 64 px
        assert calls == [(2, 2)] * 3  # the 3x3, 1x3 and 3x1 branches; not the 1x1 convolution
        heads(torch.randn(2, 64, 4, 4))  # 112 px
        heads(torch.randn(2, 64, 7, 7))  # 224 px: F.conv2d
        with torch.autocast("cpu", dtype=torch.bfloat16):
            heads(torch.randn(2, 64, 2, 2))  # bfloat16 autocast: F.conv2d, which sums in float32
        heads.to("meta")(torch.randn(2, 64, 2, 2, device="meta"))  # not on the CPU: F.conv2d
    assert calls == [(2, 2)] * 3 + [(4, 4)] * 3
    assert set(heads.state_dict()) == set(_taps_off(MultiHeadCrossAttention(64, 2)).state_dict())
    with pytest.raises(ValueError, match="stride 1"):
        TapConv2d(4, 4, 3, stride=2, padding=1)


def test_use_tap_convs_on_resnet18_keeps_its_function_and_state_dict() -> None:
    from dan.models.backbone import create_backbone

    torch.manual_seed(0)
    plain = create_backbone("resnet18").double().eval()
    taps = copy.deepcopy(plain)
    assert use_tap_convs(taps) == 13  # 3x3 stride-1 convolutions: 4 per stage, but the first of stages 2-4
    assert use_tap_convs(taps) == 0
    assert type(taps.conv1) is nn.Conv2d and type(taps.layer4[0].conv1) is nn.Conv2d  # strided: kept
    assert isinstance(taps.layer4[1].conv2, TapConv2d) and list(taps.state_dict()) == list(plain.state_dict())
    x = torch.randn(2, 3, 48, 48, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(taps.forward_features(x), plain.forward_features(x), rtol=1e-9, atol=1e-9)


def _module_pair() -> tuple[DANModule, DANModule]:
    """The quickstart's training module as configure_model prepares it, and the same on the F.conv2d path."""
    torch.manual_seed(0)
    old = DANModule(num_classes=7, num_heads=2, channels_last=True, lambda_af=3.0)
    new = copy.deepcopy(old)
    old.model.to(memory_format=CL)  # the previous configure_model
    _taps_off(old)
    new.configure_model()
    assert sum(isinstance(m, TapConv2d) for m in new.modules()) == 13 + 3
    return old, new


def test_training_step_at_48px_matches_the_conv_path() -> None:
    old, new = _module_pair()
    x = torch.randn(6, 3, 48, 48)
    y = torch.tensor([0, 1, 2, 3, 4, 5])
    losses = []
    for module in (old, new):
        module.train()
        loss = module._losses(x, y)[0]["loss"]
        loss.backward()
        losses.append(loss.detach())
    torch.testing.assert_close(losses[1], losses[0], rtol=1e-5, atol=1e-6)
    grads = {name: p.grad for name, p in old.named_parameters()}
    for (name, p), q in zip(old.named_parameters(), new.parameters()):
        assert p.grad is not None and q.grad is not None
        if q.dim() == 4:  # gradients in the parameters' channels-last layout
            assert q.grad.is_contiguous(memory_format=CL) == q.is_contiguous(memory_format=CL), name
        scale = p.grad
        if name.startswith(("model.heads.conv", "model.heads.fc1", "model.fc.")) and name.endswith(".bias"):
            scale = grads[name.replace(".bias", ".weight")]  # before a training BatchNorm: 0 but rounding
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-3, atol=1e-4 * float(scale.abs().max()), msg=name)


def test_reparameterized_copy_of_a_trained_module_matches_at_48px() -> None:
    _, new = _module_pair()
    model = new.model.eval()
    rep = reparameterize(model)
    assert not any(isinstance(m, TapConv2d) for m in rep.modules())  # folded into plain convolutions
    x = torch.randn(3, 3, 48, 48)
    with torch.no_grad():
        want, got = model(x, return_attention=True), rep(x, return_attention=True)
    torch.testing.assert_close(got.logits, want.logits, rtol=1e-4, atol=1e-4)
    assert want.attention is not None and got.attention is not None
    torch.testing.assert_close(got.attention, want.attention, rtol=1e-4, atol=1e-4 * float(want.attention.abs().max()))
