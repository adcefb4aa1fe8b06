"""Textbook multi-head dot-product attention as an alternative to DAN's heads (``DAN(..., head="mha")``).

DAN ("Distract Your Attention", Wen et al., arXiv 2109.07270) computes each head's attention with
convolutions (:mod:`dan.models.heads`). This module swaps that for K heads of scaled dot-product
cross-attention ("Attention Is All You Need", Vaswani et al., arXiv 1706.03762) in which learned,
class-agnostic queries attend over the backbone's H x W feature tokens (one query per head, like the
object queries of DETR, arXiv 2005.12872). Everything downstream of the heads (log-softmax across
heads, sum, Linear + BatchNorm1d classifier, the partition loss) is unchanged: each head yields a
C-dimensional vector, and ``forward(x, return_attention=True)`` returns ``(heads (B, K, C),
attention (B, K, H, W))`` like :class:`~dan.models.heads.MultiHeadCrossAttention`.

For the backbone map F (B, C, H, W), N = H*W tokens and head k:

    X   = LN(F as tokens)                               (B, N, C)   one LayerNorm, shared
    P   = row[i] + col[j]                               (N, C)      learned 2-D position embedding
    K_k = (X + P) W_k^K + b_k^K                         (B, N, d)   position on the keys only
    V_k = X W_k^V + b_k^V                               (B, N, C)
    A_k = softmax(q_k K_k^T / sqrt(d))                  (B, N)      q_k in R^d, learned
    o_k = A_k V_k                                       (B, C)
    h_k = o_k + W_k^2 GELU(W_k^1 LN_k(o_k) + b_k^1) + b_k^2          (B, C)  per-head MLP, hidden r*C

Design choices:

- **One query per head**, so each head pools the tokens into exactly one C-vector, as a DAN head does.
- **d = 64** (``head_dim``) for queries and keys; values are **C wide per head** (not C/K): each head
  must give a C-vector and no head may see another's output (the fusion and the partition loss work
  on per-head vectors), so the textbook "concatenate heads and project with W^O" is left out. A per-head
  W^O after V_k would be redundant: A_k V_k W^O = A_k X (W_k^V W^O), one linear map.
- **Per-head pre-norm residual MLP** (ratio r = 4, GELU), the textbook transformer feed-forward, so
  the heads carry non-linear capacity and about as many parameters as DAN's heads (K = 4, C = 512:
  9,593,344 against 8,543,616).
- **Position embedding:** separate row and column tables of ``pos_grid`` = 7 entries (the 7 x 7 map of
  a stride-32 backbone at 224 px) that are linearly interpolated to H and W when the map has another
  size, so a position means the same place on the (aligned) face at any input size.
- **Fused kernels:** the C-wide value of a head is split into C/d sub-heads of width d that share the
  head's query and keys, so query, key and value all have width d and
  ``torch.nn.functional.scaled_dot_product_attention`` can take its flash kernels (CPU and GPU; flash
  needs equal widths). The result is the same function. If d does not divide C, one C-wide value per
  head is used (SDPA's other kernels).
- **Initialisation:** queries N(0, 1) (like DETR's query embeddings, so the heads start looking at
  different places); key and value projections Xavier-uniform per head with zero bias (as
  ``nn.MultiheadAttention``); position tables and MLP weights truncated normal, std 0.02, zero bias
  (as ViT); LayerNorms weight 1, bias 0.

SDPA returns no weights, so when the maps are asked for they are computed once more explicitly
(q_k K_k^T, softmax); the heads always come from SDPA, so logits do not depend on
``return_attention``. Each head's map sums to 1 over the H x W tokens.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dan.models.heads import GroupedLinear

__all__ = ["GroupedLayerNorm", "MultiHeadDotProductAttention"]


class GroupedLayerNorm(nn.Module):
    """LayerNorm over the last axis of a (B, K, C) tensor with a separate affine map per group k.

    Args:
        num_groups: Number of groups K.
        dim: Normalised size C.
        eps: Added to the variance.
    """

    def __init__(self, num_groups: int, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_groups, dim))
        self.bias = nn.Parameter(torch.zeros(num_groups, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, x.shape[-1:], eps=self.eps) * self.weight + self.bias  # (B, K, C)


def _resize_table(table: torch.Tensor, size: int) -> torch.Tensor:
    """A (R, C) position table linearly interpolated to (size, C) (the table itself when size == R)."""
    if table.shape[0] == size:
        return table
    resized = F.interpolate(table.t().unsqueeze(0), size=size, mode="linear", align_corners=False)  # (1, C, size)
    return resized.squeeze(0).t()  # (size, C)


class MultiHeadDotProductAttention(nn.Module):
    """K heads of scaled dot-product cross-attention from learned queries to the feature tokens.

    See the module docstring for the equations and the design choices.

    Args:
        in_chs: Channels C of the backbone feature map.
        num_heads: Number of heads K (>= 1).
        head_dim: Width d of queries and keys.
        mlp_ratio: Hidden width of each head's MLP, as a multiple of C (0 for no MLP).
        pos_grid: Entries of the row and column position tables (interpolated to other map sizes).
    """

    def __init__(
        self, in_chs: int, num_heads: int = 4, head_dim: int = 64, mlp_ratio: float = 4.0, pos_grid: int = 7
    ) -> None:
        super().__init__()
        if num_heads < 1:
            raise ValueError(f"num_heads must be >= 1, got {num_heads}")
        k, c, d = num_heads, in_chs, head_dim
        self.num_heads, self.in_chs, self.head_dim = k, c, d
        # value sub-heads of width d share their head's query and keys (equal widths: flash kernels)
        self.value_groups = c // d if c % d == 0 else 1
        self.norm = nn.LayerNorm(c, eps=1e-6)
        self.row_embed = nn.Parameter(torch.empty(pos_grid, c))
        self.col_embed = nn.Parameter(torch.empty(pos_grid, c))
        self.query = nn.Parameter(torch.empty(k, d))
        self.key = nn.Linear(c, k * d)
        self.value = nn.Linear(c, k * c)
        hidden = int(round(mlp_ratio * c))
        self.mlp_norm = GroupedLayerNorm(k, c) if hidden else None
        self.fc1 = GroupedLinear(k, c, hidden) if hidden else None
        self.fc2 = GroupedLinear(k, hidden, c) if hidden else None
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """The initialisation described in the module docstring."""
        k, c, d = self.num_heads, self.in_chs, self.head_dim
        nn.init.normal_(self.query, std=1.0)
        for i in range(k):  # Xavier bounds of ONE head's projection (fan_out d or C, not K*d or K*C)
            nn.init.xavier_uniform_(self.key.weight[i * d : (i + 1) * d])
            nn.init.xavier_uniform_(self.value.weight[i * c : (i + 1) * c])
        nn.init.zeros_(self.key.bias)
        nn.init.zeros_(self.value.bias)
        for table in (self.row_embed, self.col_embed):
            nn.init.trunc_normal_(table, std=0.02)
        if self.fc1 is not None and self.fc2 is not None:  # both or neither
            for fc in (self.fc1, self.fc2):
                nn.init.trunc_normal_(fc.weight, std=0.02)
                nn.init.zeros_(fc.bias)

    def position_embedding(self, h: int, w: int) -> torch.Tensor:
        """The learned position embedding of an h x w map, (h*w, C), row-major like the tokens."""
        rows = _resize_table(self.row_embed, h)  # (H, C)
        cols = _resize_table(self.col_embed, w)  # (W, C)
        return (rows[:, None, :] + cols[None, :, :]).reshape(h * w, self.in_chs)  # (H*W, C)

    def _queries_keys_values(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-head queries (K, d), keys (B, K, N, d) and values (B, K, N, C) of a map (B, C, H, W)."""
        b, c, h, w = x.shape
        k, d = self.num_heads, self.head_dim
        tokens = self.norm(x.flatten(2).transpose(1, 2))  # (B, N, C)
        keys = self.key(tokens + self.position_embedding(h, w).to(tokens.dtype))  # (B, N, K*d)
        values = self.value(tokens)  # (B, N, K*C)
        keys = keys.unflatten(2, (k, d)).transpose(1, 2)  # (B, K, N, d)
        values = values.unflatten(2, (k, c)).transpose(1, 2)  # (B, K, N, C)
        return self.query.to(keys.dtype), keys, values

    def _attend(self, query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """o_k = softmax(q_k K_k^T / sqrt(d)) V_k for every head through SDPA, (B, K, C)."""
        b, k, n, d = keys.shape
        c, g = self.in_chs, self.value_groups
        q = query.view(1, k, 1, 1, d).expand(b, k, g, 1, d).reshape(b, k * g, 1, d)  # (B, K*G, 1, d)
        kk = keys.unsqueeze(2).expand(b, k, g, n, d).reshape(b, k * g, n, d)  # (B, K*G, N, d)
        v = values.unflatten(3, (g, c // g)).transpose(2, 3).reshape(b, k * g, n, c // g)  # (B, K*G, N, C/G)
        out = F.scaled_dot_product_attention(q, kk, v)  # (B, K*G, 1, C/G)
        return out.reshape(b, k, c)  # (B, K, C): head k's G sub-vectors in channel order

    def attention_weights(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """A_k = softmax(q_k K_k^T / sqrt(d)) over the tokens, explicitly, float32 (B, K, N)."""
        scores = torch.einsum("bknd,kd->bkn", keys, query) * (self.head_dim**-0.5)  # (B, K, N)
        return scores.float().softmax(dim=-1)

    def forward(self, x: torch.Tensor, return_attention: bool = False):
        """Head outputs h_1..h_K.

        Args:
            x: Feature map, shape (B, C, H, W).
            return_attention: Also return each head's attention weights over the tokens (B, K, H, W);
                every map sums to 1.

        Returns:
            Tensor of shape (B, K, C), or a tuple (heads, attention) when ``return_attention``.
        """
        b, _, h, w = x.shape
        query, keys, values = self._queries_keys_values(x)
        out = self._attend(query, keys, values)  # (B, K, C)
        if self.mlp_norm is not None and self.fc1 is not None and self.fc2 is not None:  # all three or none
            out = out + self.fc2(F.gelu(self.fc1(self.mlp_norm(out))))  # (B, K, C)
        if not return_attention:
            return out
        attention = self.attention_weights(query, keys).view(b, self.num_heads, h, w)  # (B, K, H, W)
        return out, attention

    def extra_repr(self) -> str:
        hidden = 0 if self.fc1 is None else self.fc1.weight.shape[1]
        return (
            f"in_chs={self.in_chs}, num_heads={self.num_heads}, head_dim={self.head_dim}, "
            f"value_groups={self.value_groups}, mlp_hidden={hidden}, pos_grid={self.row_embed.shape[0]}"
        )
