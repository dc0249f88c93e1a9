"""Concatenate a tensor across DDP ranks along dim 0, for in-batch negatives from every GPU.

On the ground floor (it imports nothing from docalign): the alignment losses and the momentum queues
(``models.momentum``) both gather through it.

In one process (torch.distributed not initialised, or world size 1) every function here is the
identity: no world dimension is added, unlike Lightning's ``all_gather``, which returns ``(W, ...)``
with several processes but the bare tensor with one. All ranks must call these functions in the same
order with the same dim-0 size (Lightning's DistributedSampler pads the last batch to make it so).
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def world_size() -> int:
    """Number of processes taking part in training (1 when torch.distributed is not initialised)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's rank (0 when torch.distributed is not initialised)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


class _GatherWithGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(x) for _ in range(world_size())]
        dist.all_gather(parts, x.contiguous())
        ctx.start, ctx.rows = rank() * x.shape[0], x.shape[0]
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        # Every rank's loss sends gradient to every rank's rows: sum them, keep our own rows.
        # (all_reduce works on every backend; gloo has no reduce_scatter.)
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad[ctx.start : ctx.start + ctx.rows]


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """``(N, ...)`` on each of W ranks -> ``(W*N, ...)``, rank r's rows at ``[r*N, (r+1)*N)``.

    Differentiable: the backward pass sums, over ranks, the gradients every rank's loss sends to each
    rank's rows and hands each rank the sum for its own rows. So the input gradient on rank r is
    ``d(sum_r' loss_r') / d x_r``; after DDP averages parameter gradients over the W ranks, the update
    is the gradient of the mean of the per-rank losses, i.e. of the loss on the whole global batch.
    """
    if world_size() == 1:
        return x
    return _GatherWithGrad.apply(x)


def global_count(count: torch.Tensor) -> torch.Tensor:
    """``count`` (a 0-d tensor) summed over ranks and divided by W, the sum taken as at least 1.

    For a loss that averages over a varying number of items (anchors that have a positive): dividing
    each rank's *sum* by this makes the mean over ranks, which is what DDP optimises, the exact mean
    over the global batch, however unevenly the items fall on the ranks. In one process: ``count``
    (at least 1). A collective under DDP: every rank must call it.
    """
    count = count.detach().clone()
    if world_size() > 1:
        dist.all_reduce(count)
    return count.clamp(min=1) / world_size()


@torch.no_grad()
def gather_no_grad(x: torch.Tensor) -> torch.Tensor:
    """``(N, ...)`` -> ``(W*N, ...)`` detached: for momentum features, labels and queue writes."""
    if world_size() == 1:
        return x.detach()
    parts = [torch.empty_like(x) for _ in range(world_size())]
    dist.all_gather(parts, x.detach().contiguous())
    return torch.cat(parts, dim=0)


def pad_across_ranks(x: torch.Tensor, dim: int, value: float | bool = 0) -> torch.Tensor:
    """Pad ``x`` along ``dim`` with ``value`` to the largest size that dim has on any rank.

    Batches are padded to their own longest document, so text lengths differ between ranks and a
    gather of ``(B, L, D)`` local features needs a common ``L`` first. Identity in one process.
    """
    if world_size() == 1:
        return x
    size = torch.tensor([x.shape[dim]], device=x.device)
    dist.all_reduce(size, op=dist.ReduceOp.MAX)
    missing = int(size) - x.shape[dim]
    if missing == 0:
        return x
    shape = list(x.shape)
    shape[dim] = missing
    return torch.cat([x, x.new_full(shape, value)], dim=dim)
