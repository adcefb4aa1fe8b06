"""The package's DAN computes the same function as a plain per-head implementation of the paper's equations."""

from __future__ import annotations

import pytest
import torch

from dan import DAN
from dan.models.checkpoint import convert_reference_state_dict
from dan.models.reference import PlainDAN, randomize


def _pair(num_heads: int, num_classes: int = 7, seed: int = 0) -> tuple[PlainDAN, DAN]:
    torch.manual_seed(seed)
    plain = randomize(PlainDAN(num_classes, num_heads), seed)
    model = DAN(num_classes=num_classes, num_heads=num_heads)
    model.load_state_dict(convert_reference_state_dict(plain.state_dict()))
    return plain, model


def _close(a: torch.Tensor, b: torch.Tensor, rtol: float = 1e-5) -> None:
    # relative to the tensor's scale: float32 rounding of differently ordered sums
    torch.testing.assert_close(a, b, rtol=rtol, atol=rtol * float(b.abs().max()))


@pytest.mark.parametrize("num_heads", [1, 2, 4])
@pytest.mark.parametrize("size", [64, 112])
@pytest.mark.parametrize("train", [False, True])
def test_fused_model_matches_plain_per_head(num_heads: int, size: int, train: bool) -> None:
    plain, model = _pair(num_heads, seed=num_heads * 10 + size)
    plain.train(train)
    model.train(train)
    x = torch.randn(3, 3, size, size, generator=torch.Generator().manual_seed(size))
    with torch.no_grad():
        logits, feats, heads = plain(x)
        out = model(x)
    assert out.logits.shape == (3, 7) and out.heads.shape == (3, num_heads, 512)
    _close(out.features, feats)
    _close(out.heads, heads)
    # in training mode the classifier's BatchNorm divides by the spread of 3 samples, which magnifies
    # rounding: measured up to 1.5e-5 of the logits' scale on one CPU's kernels (2.3e-5 absolute)
    _close(out.logits, logits, rtol=1e-4 if train else 1e-5)
    if train:  # BatchNorm running statistics updated the same way
        fused = model.state_dict()
        ref = convert_reference_state_dict(plain.state_dict())
        for key in ("heads.bn3x3.running_var", "heads.bn_ca.running_mean", "bn.running_mean"):
            _close(fused[key], ref[key])


def test_fused_model_matches_plain_at_224() -> None:
    plain, model = _pair(4, num_classes=8, seed=3)
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits, _, heads = plain.eval()(x)
        out = model.eval()(x)
    assert out.features.shape == (2, 512, 7, 7)
    _close(out.heads, heads)
    _close(out.logits, logits)


def test_parameter_count_matches_the_paper() -> None:
    model = DAN(num_classes=7, num_heads=4)
    assert sum(p.numel() for p in model.parameters()) == 19_723_733
    assert sum(p.numel() for p in PlainDAN(7, 4).parameters()) == 19_723_733


def test_attention_maps_are_the_spatial_attention_of_each_head() -> None:
    plain, model = _pair(2)
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        out = model.eval()(x, return_attention=True)
        f = plain.eval().features(x)
        for k in range(2):
            sa = getattr(plain, f"cat_head{k}").sa
            y = sa.conv1x1(f)
            a = torch.relu(sa.conv_3x3(y) + sa.conv_1x3(y) + sa.conv_3x1(y)).sum(1)  # (B, H, W)
            _close(out.attention[:, k], a)
    assert model(x).attention is None


def test_other_timm_backbone_takes_its_channel_count() -> None:
    model = DAN(num_classes=5, num_heads=3, backbone="resnet34").eval()
    assert model.num_features == 512
    model = DAN(num_classes=5, num_heads=2, backbone="mobilenetv3_small_100").eval()
    out = model(torch.randn(2, 3, 64, 64))
    assert out.logits.shape == (2, 5)
    assert out.heads.shape == (2, 2, model.num_features)


def test_rejects_zero_heads() -> None:
    with pytest.raises(ValueError, match="num_heads"):
        DAN(num_heads=0)


def test_head_initialisation_follows_the_reference() -> None:
    heads = DAN(num_heads=4).heads
    # kaiming normal, fan_out of ONE head's conv: std = sqrt(2 / (512 * 9)) for the 3x3 branch
    assert heads.conv3x3.weight.std().item() == pytest.approx((2 / (512 * 9)) ** 0.5, rel=0.05)
    assert heads.conv1x1.weight.std().item() == pytest.approx((2 / 256) ** 0.5, rel=0.05)
    assert heads.fc1.weight.std().item() == pytest.approx(0.001, rel=0.05)
    assert torch.all(heads.conv3x3.bias == 0) and torch.all(heads.bn3x3.weight == 1)
