"""Momentum (EMA) copies of encoders and the queues of their features (MoCo / ALBEF mechanics).

Both are updated by the system *after* the optimiser step (``on_train_batch_end``), never inside
``forward``, and only while training: evaluation must not move momentum weights or queues.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..distributed import gather_no_grad


def make_momentum_copy(module: nn.Module) -> nn.Module:
    """A deep copy of ``module`` with every parameter frozen (``requires_grad=False``).

    Frozen parameters are skipped by the optimiser's parameter groups and never receive gradients;
    they still live in the state dict, so a resumed run restores the momentum encoder too.
    """
    twin = copy.deepcopy(module)
    twin.requires_grad_(False)
    return twin


@torch.no_grad()
def ema_update(online: nn.Module, momentum: nn.Module, m: float) -> None:
    """``momentum <- m * momentum + (1 - m) * online`` for every parameter; buffers are copied.

    ``m = 0`` copies the online weights exactly, ``m = 1`` leaves the momentum weights unchanged
    (``lerp`` is exact at both ends). The two modules must have the same parameter names.
    """
    if not 0.0 <= m <= 1.0:
        raise ValueError(f"momentum {m} must lie in [0, 1]")
    online_params = dict(online.named_parameters())
    momentum_params = dict(momentum.named_parameters())
    if online_params.keys() != momentum_params.keys():
        raise ValueError(
            "online and momentum modules have different parameters: "
            f"{sorted(online_params.keys() ^ momentum_params.keys())[:5]}"
        )
    for name, target in momentum_params.items():
        target.lerp_(online_params[name].detach().to(target.dtype), 1.0 - m)
    online_buffers = dict(online.named_buffers())
    for name, buffer in momentum.named_buffers():
        buffer.copy_(online_buffers[name])


class FeatureQueue(nn.Module):
    """A ring buffer of the last K feature vectors, the negatives of MoCo-style contrastive losses.

    Buffers (saved in checkpoints): ``features (K, D)``, ``ids (K,)`` (the document each row came from,
    -1 when not given), ``pointer`` (next row to write) and ``filled`` (rows written so far, at most K).
    Writes of any size wrap around the end, so K need not be a multiple of the global batch (ALBEF
    asserts that it is); a write larger than K keeps its last K rows. Rows never written are not
    returned by ``items()``: they are not features of any document.

    Args:
        size: K, the number of stored features; dim: D, the feature size.
    """

    def __init__(self, size: int, dim: int) -> None:
        super().__init__()
        if size < 1:
            raise ValueError(f"queue size must be positive, got {size}")
        self.size = size
        self.register_buffer("features", torch.zeros(size, dim))
        self.register_buffer("ids", torch.full((size,), -1, dtype=torch.long))
        self.register_buffer("pointer", torch.zeros((), dtype=torch.long))
        self.register_buffer("filled", torch.zeros((), dtype=torch.long))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Checkpoints written before the queue kept document ids: their rows' documents are unknown (-1).
        state_dict.setdefault(prefix + "ids", torch.full((self.size,), -1, dtype=torch.long))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @torch.no_grad()
    def enqueue(self, features: torch.Tensor, ids: torch.Tensor | None = None) -> None:
        """Write (N, D) features of this rank's batch, and the (N,) ids of their documents if given; they
        are gathered from every rank first, so all ranks' queues stay identical (rank order, then batch order)."""
        features = gather_no_grad(features).to(self.features.dtype)
        n = features.shape[0]
        if ids is None:
            ids = torch.full((n,), -1, dtype=torch.long, device=features.device)
        else:
            ids = gather_no_grad(ids.long())
        if n > self.size:
            features, ids, skipped = features[n - self.size :], ids[n - self.size :], n - self.size
            self.pointer.add_(skipped).remainder_(self.size)
            n = self.size
        rows = (self.pointer + torch.arange(n, device=self.features.device)) % self.size
        self.features[rows] = features
        self.ids[rows] = ids.to(self.ids.device)
        self.pointer.add_(n).remainder_(self.size)
        self.filled.add_(n).clamp_(max=self.size)

    def items(self) -> torch.Tensor:
        """(min(filled, K), D): a detached copy of the rows written so far. A copy, because the next
        ``enqueue`` writes in place while autograd may still hold the tensor for the backward pass."""
        return self.features[: int(self.filled)].detach().clone()

    def item_ids(self) -> torch.Tensor:
        """(min(filled, K),): the document ids of ``items()``'s rows (-1: not known)."""
        return self.ids[: int(self.filled)].clone()
