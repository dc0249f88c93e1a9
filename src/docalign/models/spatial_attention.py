"""Spatial-aware self-attention (LayoutLMv2): post-LN transformer layers with shared relative-position biases.

``a'_ij = a_ij + b1D[bucket(j - i)] + b2Dx[bucket(x_j - x_i)] + b2Dy[bucket(y_j - y_i)]``: one learnable
bias per head and bucket, the same tables for every layer, T5's bidirectional log buckets. The
lookups keep the autograd graph (Hugging Face's run under ``no_grad``, so its tables never learn).
Parameter names follow ``transformers``' LayoutLMv2 encoder (``layer.{i}.attention.self.qkv_linear``,
``rel_pos_bias``, ``rel_pos_x_bias``, ``rel_pos_y_bias``); sizes come from a ``LayoutLMv2Config``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from transformers import LayoutLMv2Config
from transformers.activations import ACT2FN


def relative_position_bucket(
    relative_position: torch.Tensor, bidirectional: bool = True, num_buckets: int = 32, max_distance: int = 128
) -> torch.Tensor:
    """T5's bucketing of relative positions (``j - i``) into ``num_buckets`` ids.

    Bidirectional: half the buckets for ``j <= i``, half (offset by ``num_buckets // 2``) for ``j > i``.
    Within a half of ``n`` buckets, distances below ``n // 2`` get one bucket each (exact); larger
    distances share buckets that grow logarithmically up to ``max_distance``; everything at or beyond
    ``max_distance`` falls in the half's last bucket. Unidirectional: only ``j <= i`` is bucketed
    (positive offsets go to bucket 0).

    Args:
        relative_position: int tensor of any shape. Returns: a long tensor of the same shape.
    """
    relative_position = relative_position.long()
    if bidirectional:
        num_buckets //= 2
        offset = (relative_position > 0).long() * num_buckets
        distance = relative_position.abs()
    else:
        offset = torch.zeros_like(relative_position)
        distance = (-relative_position).clamp(min=0)
    max_exact = num_buckets // 2
    # log-spaced: bucket max_exact at distance max_exact, bucket num_buckets at max_distance. The
    # float32 operations and their order are T5's, so that pre-trained tables see the same buckets
    # (at exact powers of two, float32 rounding decides the bucket).
    fraction = torch.log(distance.clamp(min=1).float() / max_exact) / math.log(max_distance / max_exact)
    log_bucket = (max_exact + (fraction * (num_buckets - max_exact)).long()).clamp(max=num_buckets - 1)
    return offset + torch.where(distance < max_exact, distance, log_bucket)


class SelfAttention(nn.Module):
    """Multi-head attention with an additive (B, heads or 1, T, T) bias (relative positions + mask)."""

    def __init__(self, c: LayoutLMv2Config) -> None:
        super().__init__()
        if c.hidden_size % c.num_attention_heads:
            raise ValueError(f"hidden_size {c.hidden_size} is not a multiple of num_heads {c.num_attention_heads}")
        self.heads = c.num_attention_heads
        self.qkv_linear = nn.Linear(c.hidden_size, 3 * c.hidden_size, bias=False)
        # (H,) where Hugging Face has (1, 1, H): 1-D, so that parameter grouping treats them as biases
        # (no weight decay); fuse_qkv flattens checkpoint tensors on load
        self.q_bias = nn.Parameter(torch.zeros(c.hidden_size))
        self.v_bias = nn.Parameter(torch.zeros(c.hidden_size))
        self.dropout = c.attention_probs_dropout_prob

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        batch, length, hidden = x.shape
        q, k, v = self.qkv_linear(x).chunk(3, dim=-1)
        q, k, v = [t.view(batch, length, self.heads, -1).transpose(1, 2) for t in (q + self.q_bias, k, v + self.v_bias)]
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=bias.to(q.dtype), dropout_p=self.dropout if self.training else 0.0
        )
        return out.transpose(1, 2).reshape(batch, length, hidden)


class DenseResidualNorm(nn.Module):
    """``LayerNorm(dropout(dense(x)) + residual)``: the output block of BERT's sublayers."""

    def __init__(self, d_in: int, d_out: int, c: LayoutLMv2Config) -> None:
        super().__init__()
        self.dense = nn.Linear(d_in, d_out)
        self.LayerNorm = nn.LayerNorm(d_out, eps=c.layer_norm_eps)
        self.dropout = nn.Dropout(c.hidden_dropout_prob)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(x)) + residual)


class Attention(nn.Module):
    def __init__(self, c: LayoutLMv2Config) -> None:
        super().__init__()
        self.self = SelfAttention(c)
        self.output = DenseResidualNorm(c.hidden_size, c.hidden_size, c)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return self.output(self.self(x, bias), x)


class Intermediate(nn.Module):
    def __init__(self, c: LayoutLMv2Config) -> None:
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.intermediate_size)
        self.act = ACT2FN[c.hidden_act]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.dense(x))


class Layer(nn.Module):
    """A post-LN transformer layer (BERT's)."""

    def __init__(self, c: LayoutLMv2Config) -> None:
        super().__init__()
        self.attention = Attention(c)
        self.intermediate = Intermediate(c)
        self.output = DenseResidualNorm(c.intermediate_size, c.hidden_size, c)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        x = self.attention(x, bias)
        return self.output(self.intermediate(x), x)


class SpatialEncoder(nn.Module):
    """The layers plus the 1-D and 2-D relative position bias tables they share.

    A table is an ``nn.Linear(buckets, heads, bias=False)`` (Hugging Face's layout): ``weight`` is
    (heads, buckets) and ``weight[h, b]`` is head h's bias for bucket b.
    """

    def __init__(self, c: LayoutLMv2Config) -> None:
        super().__init__()
        self.layer = nn.ModuleList(Layer(c) for _ in range(c.num_hidden_layers))
        self.buckets_1d = (c.rel_pos_bins, c.max_rel_pos)
        self.buckets_2d = (c.rel_2d_pos_bins, c.max_rel_2d_pos)
        self.has_1d, self.has_2d = c.has_relative_attention_bias, c.has_spatial_attention_bias
        if self.has_1d:
            self.rel_pos_bias = nn.Linear(c.rel_pos_bins, c.num_attention_heads, bias=False)
        if self.has_2d:
            self.rel_pos_x_bias = nn.Linear(c.rel_2d_pos_bins, c.num_attention_heads, bias=False)
            self.rel_pos_y_bias = nn.Linear(c.rel_2d_pos_bins, c.num_attention_heads, bias=False)

    @staticmethod
    def _lookup(table: nn.Linear, coords: torch.Tensor, num_buckets: int, max_distance: int) -> torch.Tensor:
        """coords: (B, T) -> biases (B, heads, T, T) for offsets ``coords_j - coords_i`` (differentiable)."""
        # Beyond max_distance every offset shares the last bucket: clamp, then bucket the
        # 2*max_distance+1 possible offsets once instead of all B*T*T pairs.
        offsets = torch.arange(-max_distance, max_distance + 1, device=coords.device)
        bucket_of = relative_position_bucket(offsets, True, num_buckets, max_distance)
        coords = coords.long()
        pair = (coords.unsqueeze(1) - coords.unsqueeze(2)).clamp(-max_distance, max_distance)
        return F.embedding(bucket_of[pair + max_distance], table.weight.t()).permute(0, 3, 1, 2)

    def attention_bias(
        self, mask: torch.Tensor, positions: torch.Tensor, bbox: torch.Tensor, dtype: torch.dtype
    ) -> torch.Tensor:
        """mask (B, T) 1 = attend, positions (B, T), bbox (B, T, 4) -> (B, heads or 1, T, T) additive bias."""
        bias = ((1.0 - mask.to(dtype)) * torch.finfo(dtype).min)[:, None, None, :]
        if self.has_1d:
            bias = bias + self._lookup(self.rel_pos_bias, positions, *self.buckets_1d)
        if self.has_2d:
            bias = bias + self._lookup(self.rel_pos_x_bias, bbox[..., 0], *self.buckets_2d)
            bias = bias + self._lookup(self.rel_pos_y_bias, bbox[..., 3], *self.buckets_2d)
        return bias

    def forward(
        self, hidden: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, bbox: torch.Tensor
    ) -> torch.Tensor:
        """hidden (B, T, H); mask (B, T); positions (B, T) 1-D ids; bbox (B, T, 4) 0-1000 -> (B, T, H)."""
        bias = self.attention_bias(mask, positions, bbox, hidden.dtype)
        for layer in self.layer:
            hidden = layer(hidden, bias)
        return hidden
