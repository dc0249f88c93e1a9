"""InfoNCE, the contrastive core every alignment loss here is built on, and a learnable temperature.

``L_cl(q, k+, N) = -log exp(q.k+/t) / sum_{k in {k+} U N} exp(q.k/t)``: one query, one positive key,
a set N of negative keys, temperature t.
"""

from __future__ import annotations

import torch
from torch import nn

from ..distributed import global_count


def at_least_fp32(x: torch.Tensor) -> torch.Tensor:
    """``x`` in float32 if it is in a half-precision type (autocast matmuls), else unchanged: the
    softmax over thousands of keys needs the range, and float64 tests keep their precision."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def info_nce(
    query: torch.Tensor,
    keys: torch.Tensor,
    positives: torch.Tensor,
    temperature: float | torch.Tensor,
    key_mask: torch.Tensor | None = None,
    global_mean: bool = False,
) -> torch.Tensor:
    """Mean of ``L_cl`` over queries (scalar).

    Args:
        query: (N, D) L2-normalised; keys: (M, D) L2-normalised. Not renormalised here: the dot
            product is taken as given, so unnormalised inputs silently change the logit scale.
        positives: (N,) long, the index of each query's positive key; or (N, M) bool, several
            positives per query. With several, each positive is scored against itself plus the
            query's negatives (the keys that are not its positives), exactly ``L_cl`` above, and the
            query's loss is the mean over its positives; this is TCL/AETNet's global-local form. A
            query without any positive is left out of the mean (0 when no query has one).
        temperature: t > 0, a float or a 0-d tensor (learnable: gradients flow into it).
        key_mask: (M,) or (N, M) bool, False = the key takes no part (padding, a query's own copy):
            it is neither positive nor negative, and its value cannot change the result.
        global_mean: under DDP, divide by the number of queries with a positive over all ranks (see
            ``distributed.global_count``), so that the ranks' average is the mean over the global batch
            even when ranks hold different numbers of such queries. A collective: every rank must call.
    """
    logits = at_least_fp32(query @ keys.T) / temperature  # (N, M)
    if positives.dtype != torch.bool:
        positives = torch.zeros_like(logits, dtype=torch.bool).scatter_(1, positives.long()[:, None], True)
    valid = torch.ones_like(positives) if key_mask is None else key_mask.expand_as(positives)
    positives = positives & valid
    negatives = valid & ~positives
    # Masked entries get the most negative finite value, not -inf: exp() makes them exactly 0 and a
    # query with no negatives at all still has finite gradients.
    floor = torch.finfo(logits.dtype).min
    negative_lse = logits.masked_fill(~negatives, floor).logsumexp(dim=1, keepdim=True)  # (N, 1)
    # -log(e^p / (e^p + sum_n e^n)) = log(1 + e^(lse_n - p)) = softplus(lse_n - p)
    pair_loss = nn.functional.softplus(negative_lse - logits).masked_fill(~positives, 0.0)
    n_pos = positives.sum(dim=1)
    per_query = pair_loss.sum(dim=1) / n_pos.clamp(min=1)  # 0 for queries without positives
    # Mean over the queries that have a positive, without boolean indexing (no host sync on GPU).
    count = (n_pos > 0).sum()
    count = global_count(count) if global_mean else count.clamp(min=1)
    return per_query.sum() / count


class Temperature(nn.Module):
    """A learnable softmax temperature, held as its raw value and read clamped to ``[low, high]``.

    ``forward()`` returns the clamped value (0-d) and has no side effect. The clamp alone gives zero
    gradient outside the range, so a value the optimiser pushed out would stay stuck: call
    ``project_()`` after each optimiser step (as ALBEF clamps its ``temp`` in place) to bring it back.
    """

    def __init__(self, init: float = 0.07, low: float = 0.001, high: float = 0.5, learnable: bool = True) -> None:
        super().__init__()
        if not 0 < low <= init <= high:
            raise ValueError(f"temperature init {init} must lie in [{low}, {high}] with low > 0")
        self.low, self.high = low, high
        self.value = nn.Parameter(torch.tensor(float(init)), requires_grad=learnable)

    def forward(self) -> torch.Tensor:
        return self.value.clamp(self.low, self.high)

    @torch.no_grad()
    def project_(self) -> None:
        """Clamp the stored value into ``[low, high]`` in place (call after the optimiser step)."""
        self.value.clamp_(self.low, self.high)
