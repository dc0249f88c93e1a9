"""AETNet's alignment losses (Wang et al., AAAI 2023): DITC, IMC, GLITC, PITA, and their helpers.

Every loss is a pure function of embeddings returning ``{"loss_<name>": scalar}``; the system weights
and sums the terms, and skips the call when a weight is 0. Conventions:
- ``*_cls`` are online features (gradients flow), ``*_m`` momentum features (constants), all
  L2-normalised and already projected to the shared space (D = 256 in the paper).
- Queues come from ``FeatureQueue.items()``: ``(K, D)`` detached momentum features of earlier
  batches, or None for batch negatives only.
- Under DDP each rank passes its own batch; momentum keys are gathered from every rank (no gradient
  is needed: they are constants), so the negatives span the global batch and the result equals the
  one-process loss on the whole batch.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..conventions import PAGE_SCALE
from ..distributed import gather_no_grad, pad_across_ranks, rank, world_size
from .contrastive import at_least_fp32, info_nce

# ---- momentum-key contrast (DITC, IMC) ----------------------------------------------------------


def _contrast_with_queue(
    query: torch.Tensor,
    keys_m: torch.Tensor,
    queue: torch.Tensor | None,
    temperature: float | torch.Tensor,
    doc_ids: torch.Tensor | None = None,
    queue_ids: torch.Tensor | None = None,
) -> torch.Tensor:
    """``L_cl`` of ``query[i]`` with positive ``keys_m[i]``, negatives = the other batch keys + queue.

    We keep ALBEF's choice of adding the batch's momentum keys (from every rank) to the queue: they
    are the freshest negatives, they cost nothing, and they keep the loss meaningful while the queue
    is still filling. The caller enqueues this batch's momentum features only after the loss, so the
    queue never holds a copy of this step's keys. It does hold earlier copies of the same documents
    once an epoch has passed (a 65,536 queue on a dataset of a few hundred pages holds each one many
    times): with ``doc_ids (B,)`` (and ``queue_ids (K,)``, the queue's document ids, -1 = unknown) the
    keys of the query's own document other than its positive are left out, neither positive nor negative.
    """
    batch = query.shape[0]
    keys = gather_no_grad(keys_m)  # (W*B, D)
    if queue is not None:
        keys = torch.cat([keys, queue.to(keys.dtype)], dim=0)  # (W*B + K, D)
    positive = torch.arange(batch, device=query.device) + rank() * batch
    key_mask = None
    if doc_ids is not None:
        key_ids = gather_no_grad(doc_ids.long())
        if queue is not None:
            unknown = torch.full((queue.shape[0],), -1, dtype=torch.long, device=key_ids.device)
            key_ids = torch.cat([key_ids, unknown if queue_ids is None else queue_ids.long().to(key_ids.device)])
        key_mask = key_ids[None, :] != doc_ids.long()[:, None]  # (B, W*B + K)
        key_mask[torch.arange(batch, device=query.device), positive] = True
    return info_nce(query, keys, positive, temperature, key_mask=key_mask)


def ditc_loss(
    image_cls: torch.Tensor,
    text_cls: torch.Tensor,
    image_cls_m: torch.Tensor,
    text_cls_m: torch.Tensor,
    image_queue: torch.Tensor | None,
    text_queue: torch.Tensor | None,
    temperature: float | torch.Tensor,
    doc_ids: torch.Tensor | None = None,
    image_queue_ids: torch.Tensor | None = None,
    text_queue_ids: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Document-level image-text contrast, mean of the image->text and text->image directions.

    Args:
        image_cls, text_cls: (B, D) online CLS features; image_cls_m, text_cls_m: (B, D) momentum CLS
            features of the same documents (the positives).
        image_queue, text_queue: (K, D) momentum features of earlier batches (negatives) or None.
        doc_ids, image_queue_ids, text_queue_ids: optional document ids of the batch and the queues' rows:
            other keys of a query's own document are then not its negatives (see ``_contrast_with_queue``).
    """
    i2t = _contrast_with_queue(image_cls, text_cls_m, text_queue, temperature, doc_ids, text_queue_ids)
    t2i = _contrast_with_queue(text_cls, image_cls_m, image_queue, temperature, doc_ids, image_queue_ids)
    return {"loss_ditc": (i2t + t2i) / 2}


def imc_loss(
    image_cls: torch.Tensor,
    image_view_cls_m: torch.Tensor,
    image_queue: torch.Tensor | None,
    text_cls: torch.Tensor,
    text_cls_m: torch.Tensor,
    text_queue: torch.Tensor | None,
    temperature: float | torch.Tensor,
    doc_ids: torch.Tensor | None = None,
    image_queue_ids: torch.Tensor | None = None,
    text_queue_ids: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Intra-modal contrast, mean of the image and text terms.

    Args:
        image_cls: (B, D) online CLS of the first view; image_view_cls_m: (B, D) momentum CLS of a
            second augmented view of the same pages (positives); image_queue: (K, D) or None.
        text_cls: (B, D) online text CLS; text_cls_m: (B, D) momentum text CLS; text_queue: (K, D).
        doc_ids, image_queue_ids, text_queue_ids: as in ``ditc_loss``.
    """
    image = _contrast_with_queue(image_cls, image_view_cls_m, image_queue, temperature, doc_ids, image_queue_ids)
    text = _contrast_with_queue(text_cls, text_cls_m, text_queue, temperature, doc_ids, text_queue_ids)
    return {"loss_imc": (image + text) / 2}


# ---- global-local contrast (GLITC) --------------------------------------------------------------


def pool_patch_regions(patches: torch.Tensor, regions: int = 3) -> torch.Tensor:
    """(B, P, H) patch states of a square grid (P = g*g, no CLS) -> (B, regions**2, H) region means.

    Adaptive average pooling, so any grid works (14 -> bins of 5, 6, 5 patches; the released code's
    ``avg_pool2d(5, stride=4)`` only fits 14). Pool before the projection and normalise after it.
    """
    batch, n_patches, hidden = patches.shape
    side = int(round(n_patches**0.5))
    if side * side != n_patches:
        raise ValueError(f"{n_patches} patches do not form a square grid")
    grid = patches.transpose(1, 2).reshape(batch, hidden, side, side)
    return F.adaptive_avg_pool2d(grid, regions).flatten(2).transpose(1, 2)


def _global_local(
    cls: torch.Tensor, locals_m: torch.Tensor, mask: torch.Tensor | None, temperature: float | torch.Tensor
) -> torch.Tensor:
    """Each valid local of document d is a positive of ``cls[d]``; the other documents' locals are negatives."""
    batch, n_locals, _ = locals_m.shape
    if mask is None:
        mask = torch.ones(batch, n_locals, dtype=torch.bool, device=locals_m.device)
    # Ranks pad text to different lengths: align them before gathering.
    locals_m = pad_across_ranks(locals_m, dim=1)
    mask = pad_across_ranks(mask.to(torch.uint8), dim=1)
    n_locals = locals_m.shape[1]
    keys = gather_no_grad(locals_m).flatten(0, 1)  # (W*B*R, D)
    valid = gather_no_grad(mask).flatten().bool()  # (W*B*R,)
    owner = torch.arange(keys.shape[0] // n_locals, device=cls.device).repeat_interleave(n_locals)
    mine = torch.arange(batch, device=cls.device) + rank() * batch
    positives = owner[None, :] == mine[:, None]  # (B, W*B*R)
    # A document without valid locals has no positive: the global mean keeps DDP exact then too.
    return info_nce(cls, keys, positives, temperature, key_mask=valid, global_mean=True)


def glitc_loss(
    image_cls: torch.Tensor,
    image_locals_m: torch.Tensor,
    text_cls: torch.Tensor,
    text_locals_m: torch.Tensor,
    text_mask: torch.Tensor,
    temperature: float | torch.Tensor,
) -> dict[str, torch.Tensor]:
    """Global-local contrast within each modality, mean of the image and text terms.

    For document d, each of its momentum locals k+ gives ``L_cl(cls_d, k+, N)`` with N the locals of
    every other document of the global batch; d's loss is the mean over its locals (so long documents
    do not outweigh short ones), the total the mean over documents (as TCL's ``in_batch_g2l_loss``).

    Args:
        image_cls: (B, D) online image CLS; image_locals_m: (B, R, D) momentum region features, e.g.
            ``pool_patch_regions`` of the patch states (R = 9), projected and normalised.
        text_cls: (B, D) online text CLS; text_locals_m: (B, L, D) momentum token features;
            text_mask: (B, L) bool or 0/1, True for the tokens that count as locals (at least the
            padding must be False). Masked tokens change nothing.
    """
    image = _global_local(image_cls, image_locals_m, None, temperature)
    text = _global_local(text_cls, text_locals_m, text_mask.bool(), temperature)
    return {"loss_glitc": (image + text) / 2}


# ---- patch-level image-text alignment (PITA) ----------------------------------------------------


def patch_grid_side(image_size: int, patch_size: int) -> int:
    """Patches per side of the square grid (224 px / 16 px -> 14)."""
    if image_size % patch_size:
        raise ValueError(f"image size {image_size} is not a multiple of the patch size {patch_size}")
    return image_size // patch_size


def token_patch_index(boxes: torch.Tensor, token_mask: torch.Tensor, grid_side: int) -> torch.Tensor:
    """The patch holding each token's box, row-major (``row * grid_side + col``), or -1.

    Args:
        boxes: (B, L, 4) int, (x0, y0, x1, y1) in 0-``PAGE_SCALE`` page units.
        token_mask: (B, L) bool, True for word tokens. Must exclude padding *and* special tokens: their
            boxes, (0, 0, 0, 0) and (1000, 1000, 1000, 1000), would otherwise fall into corner patches.
        grid_side: patches per side (``patch_grid_side``).
    Returns:
        (B, L) long; -1 for masked tokens and for boxes that are inverted or cross a patch border.
        Patch edges are closed: a box ending exactly on a border still counts.
    """
    x0, y0, x1, y1 = boxes.long().unbind(-1)
    # Integer arithmetic: patch c spans [c * PAGE_SCALE / g, (c+1) * PAGE_SCALE / g] page units.
    col = (x0 * grid_side // PAGE_SCALE).clamp(0, grid_side - 1)
    row = (y0 * grid_side // PAGE_SCALE).clamp(0, grid_side - 1)
    inside = (
        (x1 * grid_side <= (col + 1) * PAGE_SCALE)
        & (y1 * grid_side <= (row + 1) * PAGE_SCALE)
        & (x0 <= x1)
        & (y0 <= y1)
        & (x0 >= 0)
        & (y0 >= 0)
    )
    return torch.where(token_mask.bool() & inside, row * grid_side + col, -1)


def patch_text_features(
    token_states: torch.Tensor, patch_index: torch.Tensor, num_patches: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean token state per patch.

    Args:
        token_states: (B, L, H); patch_index: (B, L) long from ``token_patch_index`` (-1 = ignored).
    Returns:
        ``(features (B, P, H), has_text (B, P) bool)``; patches without tokens get zeros.
    """
    onehot = patch_index[..., None] == torch.arange(num_patches, device=patch_index.device)  # (B, L, P)
    onehot = onehot.to(token_states.dtype)
    counts = onehot.sum(dim=1)  # (B, P)
    sums = onehot.transpose(1, 2) @ token_states  # (B, P, H)
    return sums / counts.clamp(min=1)[..., None], counts > 0


def pita_loss(
    patch_visual: torch.Tensor, token_states: torch.Tensor, patch_index: torch.Tensor, mode: str = "cosine"
) -> dict[str, torch.Tensor]:
    """Align each patch's visual feature with the mean state of the tokens inside it.

    Args:
        patch_visual: (B, P, H) patch states (no CLS), row-major like ``token_patch_index``.
        token_states: (B, L, H); patch_index: (B, L) long, -1 = token takes no part.
        mode: ``cosine`` (the paper): minus the mean cosine similarity over the patches that hold
            tokens, in [-1, 1]. ``contrastive`` (the released code): cross-entropy over raw dot
            products within each document, text -> all P visual patches and visual -> the text
            features of the patches that hold tokens, averaged; only patches holding tokens are
            queries. The released code also scores empty patches (zero text features, uniform rows)
            and keeps their zero vectors as keys; those carry no alignment signal, so we drop them.
    """
    n_patches = patch_visual.shape[1]
    text, has_text = patch_text_features(token_states, patch_index, n_patches)
    n_text = has_text.sum().clamp(min=1)
    if mode == "cosine":
        cos = F.cosine_similarity(at_least_fp32(patch_visual), at_least_fp32(text), dim=-1)  # (B, P)
        return {"loss_pita": -torch.where(has_text, cos, 0.0).sum() / n_text}
    if mode != "contrastive":
        raise ValueError(f"unknown PITA mode {mode!r}; known: cosine, contrastive")
    logits = at_least_fp32(text @ patch_visual.transpose(1, 2))  # (B, P text, P visual)
    t2v = -logits.log_softmax(dim=-1).diagonal(dim1=1, dim2=2)  # (B, P)
    floor = torch.finfo(logits.dtype).min
    v2t_logits = logits.transpose(1, 2).masked_fill(~has_text[:, None, :], floor)
    v2t = -v2t_logits.log_softmax(dim=-1).diagonal(dim1=1, dim2=2)
    per_patch = torch.where(has_text, (t2v + v2t) / 2, 0.0)
    return {"loss_pita": per_patch.sum() / n_text}


# ---- collapse diagnostics (no gradient; logged beside the terms, never optimised) ----------------------------


@torch.no_grad()
def mean_cross_cosine(features: torch.Tensor, doc_ids: torch.Tensor | None = None) -> torch.Tensor | None:
    """Mean cosine similarity between the features of *different* documents of a batch (the off-diagonal of the
    batch's cosine matrix; pairs of two windows of one document are left out when ``doc_ids (B,)`` is given).

    Near 1: the encoder gives every page about the same feature (collapse; a random ViT on FUNSD reads 0.999).
    None when the batch holds fewer than two documents."""
    x = F.normalize(features.detach().float(), dim=-1)
    ids = torch.arange(x.shape[0], device=x.device) if doc_ids is None else doc_ids.to(x.device)
    pairs = ids[:, None] != ids[None, :]
    if not bool(pairs.any()):
        return None
    return (x @ x.T)[pairs].mean()


@torch.no_grad()
def pita_similarity(
    patch_visual: torch.Tensor, token_states: torch.Tensor, patch_index: torch.Tensor
) -> dict[str, torch.Tensor]:
    """PITA's matched and mismatched cosine similarity, in the features PITA compares.

    ``pita_matched``: mean cosine of a patch's visual feature with the mean text feature of the tokens inside it, over
    the patches that hold tokens; ``pita_mismatched``: the same with the text of *another* patch of the same document
    that holds tokens. Matched near mismatched (both near 1 when collapsed) means PITA's features ignore where the
    text is. ``pita_tokens_in_one_patch``: the fraction of the batch's word tokens (``patch_index`` >= 0 or masked:
    pass only word tokens as >= 0 or -1) that PITA can use. Empty dict when no patch holds a token."""
    n_patches = patch_visual.shape[1]
    text, has_text = patch_text_features(token_states.detach().float(), patch_index, n_patches)
    visual = F.normalize(patch_visual.detach().float(), dim=-1)
    sim = F.normalize(text, dim=-1) @ visual.transpose(1, 2)  # (B, P text, P visual)
    if not bool(has_text.any()):
        return {}
    out = {"pita_matched": sim.diagonal(dim1=1, dim2=2)[has_text].mean()}
    eye = torch.eye(n_patches, dtype=torch.bool, device=sim.device)
    other = has_text[:, :, None] & has_text[:, None, :] & ~eye
    if bool(other.any()):
        out["pita_mismatched"] = sim[other].mean()
    return out


def contrast_chance(
    batch_size: int,
    queue_size: int,
    doc_ids: torch.Tensor | None = None,
    queue_ids: torch.Tensor | None = None,
) -> torch.Tensor:
    """The chance level of DITC's and IMC's ``L_cl`` this step, in nats: ``log(K + 1)`` for K negatives (a query that
    cannot tell its positive from the negatives scores exactly this), i.e. the log of the number of candidate keys
    (the global batch's keys + the queue), averaged over queries when ``mask_same_document`` leaves some out (pass
    ``doc_ids`` and ``queue_ids`` as to ``ditc_loss``). A collective under DDP when ``doc_ids`` is given."""
    n_batch = batch_size * world_size()
    if doc_ids is None:
        return torch.tensor(math.log(n_batch + queue_size))
    key_ids = gather_no_grad(doc_ids.long())
    if queue_size:
        queued = torch.full((queue_size,), -1, dtype=torch.long, device=key_ids.device)
        key_ids = torch.cat([key_ids, queued if queue_ids is None else queue_ids.long().to(key_ids.device)])
    candidates = (key_ids[None, :] != doc_ids.long()[:, None]).sum(dim=1) + 1  # the other documents' + the positive
    return candidates.float().log().mean()


@torch.no_grad()
def batch_contrast(
    image_cls: torch.Tensor,
    text_cls: torch.Tensor,
    temperature: float | torch.Tensor,
    doc_ids: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """For evaluation, where no momentum encoder or queue may be used: DITC's ``L_cl`` between the *online* image and
    text CLS features (L2-normalised, (B, D)) with the other documents of this process's batch as the only negatives
    (other windows of a query's own document are left out), both directions averaged, and its chance level
    (``ditc_batch``, ``ditc_batch_chance``, nats). Empty dict with fewer than two documents."""
    ids = torch.arange(image_cls.shape[0], device=image_cls.device) if doc_ids is None else doc_ids.to(image_cls.device)
    keep = ids[:, None] != ids[None, :]
    if not bool(keep.any()):
        return {}
    keep = keep | torch.eye(len(ids), dtype=torch.bool, device=keep.device)
    positive = torch.arange(len(ids), device=ids.device)
    loss = (
        info_nce(image_cls.float(), text_cls.float(), positive, temperature, key_mask=keep)
        + info_nce(text_cls.float(), image_cls.float(), positive, temperature, key_mask=keep)
    ) / 2
    return {"ditc_batch": loss, "ditc_batch_chance": keep.sum(dim=1).float().log().mean()}
