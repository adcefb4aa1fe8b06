"""``head="mha"``: textbook multi-head dot-product attention heads (dan.models.mha) in place of DAN's.

The heads are checked against the module docstring's equations written out one head at a time, and
the model through everything the ``dan`` heads go through: checkpoints, re-parameterisation, ONNX
(float32 and int8) and a training step of the LightningModule.
"""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

import dan
from dan import DAN, DanError, Preprocessing, load_model, save_model
from dan.export import export_checkpoint, quantize_onnx
from dan.models.metadata import ModelMetadata
from dan.models.mha import MultiHeadDotProductAttention
from dan.models.reparam import reparameterize
from dan.runtime.onnx import OnnxBackend
from dan.training.module import DANModule

from conftest import settle_batchnorm

torch.set_num_threads(2)
SIZE = 96  # a 3 x 3 feature map: the 7-entry position tables are interpolated


def plain_heads(m: MultiHeadDotProductAttention, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The module docstring's equations, one head at a time: heads (B, K, C) and maps (B, K, H, W)."""
    b, c, h, w = f.shape
    d = m.head_dim
    x = F.layer_norm(f.flatten(2).transpose(1, 2), (c,), m.norm.weight, m.norm.bias, 1e-6)  # (B, N, C)
    rows = F.interpolate(m.row_embed.t()[None], size=h, mode="linear", align_corners=False)[0].t()  # (H, C)
    cols = F.interpolate(m.col_embed.t()[None], size=w, mode="linear", align_corners=False)[0].t()  # (W, C)
    pos = (rows[:, None] + cols[None]).reshape(h * w, c)  # (N, C)
    heads, maps = [], []
    for k in range(m.num_heads):
        keys = (x + pos) @ m.key.weight[k * d : (k + 1) * d].t() + m.key.bias[k * d : (k + 1) * d]  # (B, N, d)
        values = x @ m.value.weight[k * c : (k + 1) * c].t() + m.value.bias[k * c : (k + 1) * c]  # (B, N, C)
        a = torch.softmax(keys @ m.query[k] / d**0.5, dim=-1)  # (B, N)
        o = (a.unsqueeze(-1) * values).sum(1)  # (B, C)
        z = F.layer_norm(o, (c,), eps=1e-6) * m.mlp_norm.weight[k] + m.mlp_norm.bias[k]
        o = o + F.gelu(z @ m.fc1.weight[k].t() + m.fc1.bias[k]) @ m.fc2.weight[k].t() + m.fc2.bias[k]
        heads.append(o)
        maps.append(a.view(b, h, w))
    return torch.stack(heads, 1), torch.stack(maps, 1)


@pytest.mark.parametrize("c,d,hw", [(64, 16, (3, 3)), (40, 16, (2, 5)), (64, 16, (7, 7))])
def test_heads_follow_the_equations_and_maps_sum_to_one(c: int, d: int, hw: tuple[int, int]) -> None:
    torch.manual_seed(c + hw[1])
    m = MultiHeadDotProductAttention(c, num_heads=3, head_dim=d)
    with torch.no_grad():  # larger than the init so that the MLP and the position embedding matter
        for p in (m.fc1.weight, m.fc2.weight, m.row_embed, m.col_embed, m.norm.bias):
            p.normal_(0, 0.3)
    assert m.value_groups == (c // d if c % d == 0 else 1)
    f = torch.relu(torch.randn(2, c, *hw))
    heads, maps = m(f, return_attention=True)
    want_h, want_a = plain_heads(m, f)
    assert heads.shape == (2, 3, c) and maps.shape == (2, 3, *hw)
    torch.testing.assert_close(heads, want_h, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(maps, want_a, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(maps.sum((2, 3)), torch.ones(2, 3))
    assert torch.equal(m(f), heads)  # the heads do not depend on return_attention
    assert (maps[:, 0] - maps[:, 1]).abs().max() > 1e-3  # the heads look at different places
    if m.value_groups > 1:  # equal query / key / value widths: SDPA's flash kernel takes it
        with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):
            torch.testing.assert_close(m(f), heads, rtol=1e-4, atol=1e-5)


def test_model_settings_parameters_and_outputs() -> None:
    model = DAN(num_classes=7, num_heads=4, head="mha")
    assert model.model_config["head"] == "mha" and DAN().model_config["head"] == "dan"
    count = sum(p.numel() for p in model.heads.parameters())
    assert count == 9_593_344  # DAN's heads: 8,543,616
    assert sum(p.numel() for p in model.parameters()) == 19_723_733 - 8_543_616 + 9_593_344
    out = model.eval()(torch.randn(2, 3, 64, 64), return_attention=True)
    assert out.logits.shape == (2, 7) and out.heads.shape == (2, 4, 512) and out.attention.shape == (2, 4, 2, 2)
    with pytest.raises(ValueError, match="head must be one of dan, mha"):
        DAN(head="transformer")
    with pytest.raises(ValueError, match="num_heads"):
        DAN(num_heads=0, head="mha")


def _trained_like(head: str = "mha", num_heads: int = 2) -> DAN:
    """A model whose BatchNorm statistics come from data, with labels and preprocessing."""
    torch.manual_seed(0)
    model = settle_batchnorm(DAN(num_classes=7, num_heads=num_heads, head=head), SIZE)
    model.labels = dan.LABEL_SETS["rafdb"]
    model.preprocessing = Preprocessing(input_size=SIZE)
    return model.eval()


@pytest.fixture(scope="module")
def mha() -> DAN:
    return _trained_like()


def test_checkpoint_roundtrip_and_files_without_head_load_as_dan(mha: DAN, tmp_path) -> None:
    x = torch.randn(2, 3, SIZE, SIZE)
    for suffix in (".pt", ".safetensors"):
        loaded = load_model(save_model(mha, tmp_path / f"m{suffix}"))
        assert loaded.head_type == "mha" and isinstance(loaded.heads, MultiHeadDotProductAttention)
        with torch.no_grad():
            want, got = mha(x, return_attention=True), loaded(x, return_attention=True)
        assert torch.equal(got.logits, want.logits) and torch.equal(got.attention, want.attention)
    for model, name in ((_trained_like("dan"), "dan.pt"), (mha, "mha.pt")):  # an older file: no "head" key
        blob = {"dan": ModelMetadata.of_model(model).to_dict(), "state_dict": model.state_dict()}
        del blob["dan"]["model_config"]["head"]
        torch.save(blob, tmp_path / name)
    assert load_model(tmp_path / "dan.pt").head_type == "dan"
    with pytest.raises(DanError, match="mha.pt: does not fit the model"):
        load_model(tmp_path / "mha.pt")
    blob["dan"]["model_config"]["head"] = "xyz"
    torch.save(blob, tmp_path / "xyz.pt")
    with pytest.raises(DanError, match="xyz.pt: model_config.head='xyz': choose one of dan, mha"):
        load_model(tmp_path / "xyz.pt")


def test_reparameterize_folds_the_backbone_and_keeps_the_heads(mha: DAN) -> None:
    rep = reparameterize(mha)
    assert isinstance(rep.heads, MultiHeadDotProductAttention) and rep.heads is not mha.heads
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in rep.modules())
    x = torch.randn(3, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want, got = mha(x, return_attention=True), rep(x, return_attention=True)
    assert want.logits.std() > 0.05
    assert (got.logits - want.logits).abs().max().item() <= 1e-4
    torch.testing.assert_close(got.attention, want.attention, rtol=1e-4, atol=1e-5)


def test_onnx_float32_and_int8_match_pytorch(mha: DAN, tmp_path) -> None:
    path = tmp_path / "mha.onnx"
    report = export_checkpoint(mha, path, "onnx", verify=True)
    assert report.ok and report.max_abs_diff_random <= 1e-4
    backend = OnnxBackend(path, threads=2, spinning=False)
    assert backend.metadata.model_config["head"] == "mha"
    x = np.random.default_rng(1).standard_normal((5, 3, SIZE, SIZE)).astype(np.float32)
    logits, attention, _ = backend.outputs(x, attention=True)
    with torch.no_grad():
        want = mha(torch.from_numpy(x), return_attention=True)
    assert attention.shape == (5, 2, 3, 3)
    np.testing.assert_allclose(logits, want.logits.numpy(), rtol=1e-4, atol=1e-4 * float(want.logits.abs().max()))
    np.testing.assert_allclose(attention, want.attention.numpy(), rtol=1e-4, atol=1e-6)
    int8 = quantize_onnx(path, tmp_path / "int8.onnx", calib=x[:3])
    graph = onnx.load(str(int8)).graph
    producers = {out: n.op_type for n in graph.node for out in n.output}
    for node in graph.node:  # the attention head after its token LayerNorm stays float32
        if node.op_type in ("Softmax", "MatMul", "Einsum", "Erf"):
            assert all(producers.get(i) != "DequantizeLinear" for i in node.input), node.name
    got = OnnxBackend(int8)(x)
    assert "QuantizeLinear" in producers.values()
    assert np.corrcoef(got.ravel(), logits.ravel())[0, 1] > 0.9


def test_training_step_reaches_every_head_parameter() -> None:
    torch.manual_seed(0)
    module = DANModule(num_classes=7, num_heads=2, head="mha", preprocessing={"input_size": 64})
    assert (
        module.hparams.head == "mha" and ModelMetadata.of_model(module.model).to_dict()["model_config"]["head"] == "mha"
    )
    x, y = torch.randn(4, 3, 64, 64), torch.tensor([0, 1, 2, 3])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # self.log without a Trainer
        loss = module.training_step((x, y), 0)
    loss.backward()
    assert torch.isfinite(loss)
    for name, p in module.model.heads.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
