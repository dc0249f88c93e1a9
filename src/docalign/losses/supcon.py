"""VLCDoC's alignment losses (Bakkali et al., 2023): supervised contrast between and within modalities.

Supervised contrastive loss (Khosla et al., 2020, the ``L_out`` form): for anchor i with positives
P(i) among the contrast set A(i) (everything but the anchor itself),
``-1/|P(i)| sum_{p in P(i)} log( exp(z_i.z_p/t) / sum_{a in A(i)} exp(z_i.z_a/t) )``, averaged over
the anchors that have a positive. Positives are the documents of the same class. Features come from
the online towers on both sides, so under DDP the contrast set is gathered *with* gradients.
"""

from __future__ import annotations

import torch

from ..distributed import gather_no_grad, gather_with_grad, global_count, rank
from .contrastive import at_least_fp32


def sup_contrastive(
    anchors: torch.Tensor,
    contrast: torch.Tensor,
    anchor_labels: torch.Tensor,
    contrast_labels: torch.Tensor,
    temperature: float | torch.Tensor,
    self_index: torch.Tensor | None = None,
    global_mean: bool = False,
) -> torch.Tensor:
    """Supervised contrastive loss of ``anchors`` against ``contrast`` (scalar).

    Args:
        anchors: (N, D), contrast: (M, D), both L2-normalised (not renormalised here).
        anchor_labels: (N,) long class ids; contrast_labels: (M,) long.
        temperature: t > 0, float or 0-d tensor.
        self_index: (N,) long, the column of each anchor's own copy in ``contrast`` (intra-modality),
            removed from both its positives and its denominator; None when the anchor is not there.
        global_mean: divide by the global number of anchors with a positive (``distributed.global_count``):
            ranks hold different numbers of them, and DDP averages the ranks equally.
    """
    logits = at_least_fp32(anchors @ contrast.T) / temperature  # (N, M)
    valid = torch.ones_like(logits, dtype=torch.bool)
    if self_index is not None:
        valid = valid.scatter(1, self_index.long()[:, None], False)
    positives = (anchor_labels[:, None] == contrast_labels[None, :]) & valid
    log_prob = logits.masked_fill(~valid, torch.finfo(logits.dtype).min).log_softmax(dim=1)
    n_pos = positives.sum(dim=1)
    per_anchor = -log_prob.masked_fill(~positives, 0.0).sum(dim=1) / n_pos.clamp(min=1)
    count = (n_pos > 0).sum()
    count = global_count(count) if global_mean else count.clamp(min=1)
    return per_anchor.sum() / count


def supcon_inter(
    vision: torch.Tensor, text: torch.Tensor, labels: torch.Tensor, temperature: float | torch.Tensor
) -> dict[str, torch.Tensor]:
    """Vision <-> text supervised contrast, mean of both directions.

    The anchor's own document in the other modality is a positive (its paired view, as in CLIP); so
    is every same-class document. Args: vision, text (B, D) L2-normalised; labels (B,) long.
    """
    labels_all = gather_no_grad(labels)
    v2t = sup_contrastive(vision, gather_with_grad(text), labels, labels_all, temperature, global_mean=True)
    t2v = sup_contrastive(text, gather_with_grad(vision), labels, labels_all, temperature, global_mean=True)
    return {"loss_inter": (v2t + t2v) / 2}


def supcon_intra(
    vision: torch.Tensor, text: torch.Tensor, labels: torch.Tensor, temperature: float | torch.Tensor
) -> dict[str, torch.Tensor]:
    """Vision <-> vision and text <-> text supervised contrast (self excluded), mean of both.

    Args: vision, text (B, D) L2-normalised; labels (B,) long.
    """
    labels_all = gather_no_grad(labels)
    own = torch.arange(labels.shape[0], device=labels.device) + rank() * labels.shape[0]
    v2v = sup_contrastive(vision, gather_with_grad(vision), labels, labels_all, temperature, own, True)
    t2t = sup_contrastive(text, gather_with_grad(text), labels, labels_all, temperature, own, True)
    return {"loss_intra": (v2v + t2t) / 2}


def supcon_intra_views(
    vision: torch.Tensor,
    vision_view: torch.Tensor,
    text: torch.Tensor,
    labels: torch.Tensor,
    temperature: float | torch.Tensor,
) -> dict[str, torch.Tensor]:
    """VLCDoC's intra-modality term with two image views: vision <-> vision over both views, text <-> text.

    Vision: the 2B features of the two views are one contrast set (SupCon's multi-view batch, Khosla et al.):
    each anchor's positives are its own other view and every same-class feature of either view, itself
    excluded. Text (one view): as ``supcon_intra``. The term is the mean of the two.

    Args: vision, vision_view, text (B, D) L2-normalised (``vision_view``: the augmented images'); labels (B,) long.
    """
    views = torch.cat([vision, vision_view])  # (2B, D)
    view_labels = torch.cat([labels, labels])
    labels_all, view_labels_all = gather_no_grad(labels), gather_no_grad(view_labels)
    own = torch.arange(labels.shape[0], device=labels.device) + rank() * labels.shape[0]
    own_views = torch.arange(views.shape[0], device=labels.device) + rank() * views.shape[0]
    v2v = sup_contrastive(views, gather_with_grad(views), view_labels, view_labels_all, temperature, own_views, True)
    t2t = sup_contrastive(text, gather_with_grad(text), labels, labels_all, temperature, own, True)
    return {"loss_intra": (v2v + t2t) / 2}
