"""AETNet alignment-enriched tuning (Wang et al., AAAI 2023) for token and document classification.

The fusion model (LayoutLMv3) receives, added to its input embeddings, the full output sequences of
an alignment-aware image encoder (ViT) and text encoder; the joint objective is

    L = w_task L_task + w_ditc L_ditc + w_imc L_imc + w_glitc L_glitc + w_pita L_pita

A weight of 0 skips its term entirely (not computed, not logged). Per training step:
- the online encoders run once, on the clean image and the input ids; their outputs feed the fusion
  model (so the task loss trains them too) and the alignment losses;
- the key encoders run once, without gradients: the momentum ViT on an augmented second view
  (``data.views``), the momentum text encoder on the same ids (TCL's arrangement: the momentum side
  gives DITC's and IMC's positives and GLITC's locals, so the online ViT never runs twice);
- after the optimiser step (``on_train_batch_end``): EMA update of the momentum encoders, the
  temperature clamp, and the momentum CLS features into the queues (on every rank: they gather).
Validation, test and prediction run the fusion model and the online encoders on the clean image
only; momentum encoders, queues and augmentation are never touched there.

The machinery lives in ``AlignmentEnrichment``, a mixin put before a task system in the bases
(``AETTokenClassification(AlignmentEnrichment, TokenClassification)``): the task system keeps its head,
loss, metrics and evaluation; the AET subclass only names its head (``forward``) and ``task_loss``.
PITA reads the batch's token boxes and word ids, which every encoded batch has (classification too).
"""

from __future__ import annotations

from typing import Any, Optional

import torch

from ..data.views import AlignmentViews
from ..losses import (Temperature, ditc_loss, glitc_loss, imc_loss, patch_grid_side, pita_loss, pool_patch_regions,
                      token_patch_index)
from ..models.alignment import AdditiveFusion, AlignmentEncoders, ImageEncoderConfig, TextEncoderConfig
from ..models.backbone import BackboneConfig
from ..models.momentum import FeatureQueue, ema_update, make_momentum_copy
from .base import OptimizerFactory
from .doc_classification import DocumentClassification
from .token_classification import TokenClassification

GLITC_REGIONS = 3  # image locals: the patch grid average-pooled to 3x3 regions (the released code's choice)
CONTRASTIVE_TERMS = ("loss_ditc", "loss_imc", "loss_glitc")  # the terms that need key encoders and queues


def loss_weights(task: float, ditc: float, imc: float, glitc: float, pita: float) -> dict[str, float]:
    """The loss weights by logged term name."""
    return {"loss_task": task, "loss_ditc": ditc, "loss_imc": imc, "loss_glitc": glitc, "loss_pita": pita}


def check_alignment_args(backbone: BackboneConfig, weights: dict[str, float], momentum: float, pita_mode: str) -> None:
    """Refuse an AET configuration that cannot work, before anything is built."""
    if backbone.arch != "layoutlmv3" or not backbone.visual:
        raise ValueError(f"AET needs the layoutlmv3 backbone with visual tokens (its additive fusion points); got "
                         f"arch={backbone.arch!r}, visual={backbone.visual}")
    if any(w < 0 for w in weights.values()) or not any(w > 0 for w in weights.values()):
        raise ValueError(f"loss weights must be >= 0 with at least one positive, got {weights}")
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"model.momentum must lie in [0, 1) (m = 1 would never update the key encoders), got {momentum}")
    if pita_mode not in ("cosine", "contrastive"):
        raise ValueError(f"model.pita_mode must be 'cosine' or 'contrastive', got {pita_mode!r}")


class AlignmentEnrichment:
    """AETNet's alignment encoders, momentum encoders, queues, losses and training step, as a mixin.

    Put it first in the bases of a task system (a ``DocumentSystem`` subclass). A subclass's ``__init__``
    calls ``check_alignment_args``, the task system's ``__init__`` with ``freeze=None``,
    ``save_hyperparameters`` (in its own ``__init__``, so that it sees that method's arguments), then
    ``build_alignment``; it implements ``forward`` (``aligned_states`` + its head) and ``task_loss``.
    The constructor arguments are listed on ``AETTokenClassification``.
    """

    def build_alignment(self, backbone: BackboneConfig, vocab_size: int, image_encoder: ImageEncoderConfig,
                        text_encoder: TextEncoderConfig, embed_dim: int, weights: dict[str, float],
                        use_momentum: bool, queue_size: int, temperature: float, views: bool,
                        freeze: Optional[list[str]]) -> None:
        """Build the alignment modules, then apply ``freeze`` (its patterns may name them)."""
        self.freeze_patterns = list(freeze or [])
        self.weights = {name: float(w) for name, w in weights.items() if w > 0}
        self.contrastive = any(name in self.weights for name in CONTRASTIVE_TERMS)

        self.alignment = AlignmentEncoders(image_encoder, text_encoder, vocab_size, backbone.image_size,
                                           backbone.patch_size, embed_dim)
        self.fusion = AdditiveFusion(self.alignment.image.hidden_size, self.alignment.text.hidden_size,
                                     self.backbone.hidden_size)
        self.grid_side = patch_grid_side(backbone.image_size, backbone.patch_size)
        if text_encoder.pretrained:
            self.warm_started |= {f"alignment.text.{n}" for n, _ in self.alignment.text.named_parameters()}
        if image_encoder.timm_checkpoint:
            self.warm_started |= {f"alignment.image.{n}" for n, _ in self.alignment.image.named_parameters()}

        # Key side: built only when a contrastive term uses it (unused parameters would also trip DDP).
        self.alignment_m = make_momentum_copy(self.alignment) if self.contrastive and use_momentum else None
        self.temperature = Temperature(temperature) if self.contrastive else None
        self.image_queue = FeatureQueue(queue_size, embed_dim) if self.contrastive else None
        self.text_queue = FeatureQueue(queue_size, embed_dim) if self.contrastive else None
        self.views = AlignmentViews(backbone.image_size) if self.contrastive and views else None
        self._pending: Optional[dict[str, torch.Tensor]] = None  # this step's keys, enqueued after the step
        self._ema_step = -1
        self.apply_freeze()

    # --- model -------------------------------------------------------------------------------------
    def aligned_states(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The fusion backbone's states (the alignment encoders' outputs added to its input embeddings) and
        those outputs, ``align_image (B, 1+P, Hv)`` and ``align_text (B, L, Ht)``. No side effects."""
        aligned = self.alignment(batch["pixel_values"], batch["input_ids"], batch["attention_mask"])
        visual_extra, text_extra = self.fusion(aligned["image"], aligned["text"])
        out = self.backbone(batch["input_ids"], batch["bbox"], batch["attention_mask"], batch["pixel_values"],
                            text_extra=text_extra, visual_extra=visual_extra)
        out["align_image"], out["align_text"] = aligned["image"], aligned["text"]
        return out

    def task_loss(self, out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The task's loss from ``forward``'s output (implemented by the subclass)."""
        raise NotImplementedError

    def param_groups(self) -> list[dict[str, Any]]:
        """``DocumentSystem``'s groups without the momentum encoders (EMA-updated, never optimised)."""
        momentum = {id(p) for p in self.alignment_m.parameters()} if self.alignment_m is not None else set()
        groups = []
        for group in super().param_groups():
            params = [p for p in group["params"] if id(p) not in momentum]
            if params:
                groups.append({**group, "params": params})
        return groups

    # --- training ----------------------------------------------------------------------------------
    @torch.no_grad()
    def _keys(self, batch: dict[str, torch.Tensor], text_states: torch.Tensor) -> dict[str, torch.Tensor]:
        """Key features (no gradient), L2-normalised in the shared space: ``image_cls (B, D)`` of the
        augmented view, ``text_cls (B, D)``, and for GLITC ``image_locals (B, 9, D)``, ``text_locals (B, L, D)``."""
        view = self.views(batch["pixel_values"]) if self.views is not None else batch["pixel_values"]
        if self.alignment_m is not None:
            encoders = self.alignment_m
            image = encoders.image(view)
            text = encoders.text(batch["input_ids"], batch["attention_mask"])
        else:  # no momentum: the online encoders are the key encoders (m = 0, without a copy)
            encoders = self.alignment
            image = encoders.image(view)
            text = text_states.detach()
        keys = {"image_cls": encoders.project_image(image[:, 0]), "text_cls": encoders.project_text(text[:, 0])}
        if "loss_glitc" in self.weights:
            keys["image_locals"] = encoders.project_image(pool_patch_regions(image[:, 1:], GLITC_REGIONS))
            keys["text_locals"] = encoders.project_text(text)
        return keys

    def alignment_terms(self, batch: dict[str, torch.Tensor], out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The alignment losses with a positive weight, ``{"loss_ditc": scalar, ...}``, from ``forward``'s
        output. Leaves this step's key CLS features in ``self._pending`` for the queues."""
        terms: dict[str, torch.Tensor] = {}
        image_states, text_states = out["align_image"], out["align_text"]
        word_tokens = batch["word_ids"] >= 0  # not CLS/SEP/padding: their boxes are not words on the page
        enc = self.alignment
        if self.contrastive:
            image_cls, text_cls = enc.project_image(image_states[:, 0]), enc.project_text(text_states[:, 0])
            keys = self._keys(batch, text_states)
            t = self.temperature()
            image_queue, text_queue = self.image_queue.items(), self.text_queue.items()
            ids = {}
            if self.hparams.mask_same_document:
                ids = {"doc_ids": batch["doc_index"], "image_queue_ids": self.image_queue.item_ids(),
                       "text_queue_ids": self.text_queue.item_ids()}
            if "loss_ditc" in self.weights:
                terms.update(ditc_loss(image_cls, text_cls, keys["image_cls"], keys["text_cls"], image_queue,
                                       text_queue, t, **ids))
            if "loss_imc" in self.weights:
                terms.update(imc_loss(image_cls, keys["image_cls"], image_queue, text_cls, keys["text_cls"],
                                      text_queue, t, **ids))
            if "loss_glitc" in self.weights:
                terms.update(glitc_loss(image_cls, keys["image_locals"], text_cls, keys["text_locals"], word_tokens, t))
            self._pending = {"image": keys["image_cls"], "text": keys["text_cls"], "ids": batch.get("doc_index")}
        if "loss_pita" in self.weights:
            index = token_patch_index(batch["bbox"], word_tokens, self.grid_side)
            # Projected, not normalised: cosine mode normalises itself; contrastive mode uses raw dot products.
            terms.update(pita_loss(enc.project_image(image_states[:, 1:], normalise=False),
                                   enc.project_text(text_states, normalise=False), index, mode=self.hparams.pita_mode))
        return terms

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        out = self(batch)
        terms = {}
        if "loss_task" in self.weights:
            terms["loss_task"] = self.task_loss(out, batch)
        terms.update(self.alignment_terms(batch, out))
        loss = sum(self.weights[name] * value for name, value in terms.items())
        size = batch["input_ids"].shape[0]
        for name, value in terms.items():
            self.log(f"train/{name}", value, batch_size=size)
        self.log("train/loss", loss, prog_bar=True, batch_size=size)
        if self.temperature is not None:
            self.log("train/temperature", self.temperature().detach(), batch_size=size)
        return loss

    def on_train_start(self) -> None:
        self._ema_step = self.trainer.global_step

    def on_train_batch_end(self, outputs: Any, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        """After the optimiser step: EMA and temperature clamp (only when the optimiser did step, so
        gradient accumulation does not over-update), then this batch's keys into the queues."""
        pending, self._pending = self._pending, None
        if self.trainer.global_step != self._ema_step:
            self._ema_step = self.trainer.global_step
            if self.alignment_m is not None:
                ema_update(self.alignment, self.alignment_m, self.hparams.momentum)
            if self.temperature is not None:
                self.temperature.project_()
        if pending is not None:  # a collective under DDP: every rank gets here with its keys
            self.image_queue.enqueue(pending["image"], pending["ids"])
            self.text_queue.enqueue(pending["text"], pending["ids"])


class AETTokenClassification(AlignmentEnrichment, TokenClassification):
    """``TokenClassification`` with AETNet's alignment encoders, momentum encoders, queues and losses.

    Args:
        image_encoder, text_encoder: the alignment-aware encoders (``ImageEncoderConfig``, ``TextEncoderConfig``).
        embed_dim: D, the shared contrastive space of the projection heads.
        task_weight, ditc_weight, imc_weight, glitc_weight, pita_weight: loss weights (>= 0; 0 skips the term).
        pita_mode: ``cosine`` (the paper) or ``contrastive`` (the released code), see ``losses.pita_loss``.
        momentum: EMA momentum m of the key encoders, 0 <= m < 1 (0: a copy of the online encoders after
            every step).
        use_momentum: False for the ``*_no_momentum`` ablation: no momentum copies; the key encoder is the
            online encoder run without gradients (m = 0 without the copy), i.e. the text keys are the
            online text features detached and the image keys the online ViT's features of the
            augmented view; queues are kept (filled with those keys).
        queue_size: K, features per queue (image and text CLS).
        temperature: initial contrastive temperature (learnable, clamped to [0.001, 0.5]).
        views: augment the key encoder's image (second view for IMC); False: the clean image.
        mask_same_document: leave the queue's and the batch's other copies of a query's own document (earlier
            epochs' keys, other windows of a long page) out of its DITC and IMC negatives. Off: every key but
            the positive is a negative, as in ALBEF's pre-training and AETNet; on a small dataset the queue then
            holds older copies of each current document as negatives once an epoch has passed.
        See ``TokenClassification`` and ``DocumentSystem`` for the rest.
    """

    def __init__(self, backbone: BackboneConfig = BackboneConfig(), label_names: Optional[list[str]] = None,
                 vocab_size: int = 30522, lr: float = 5e-5, new_lr: Optional[float] = None,
                 weight_decay: float = 0.01, schedule: str = "cosine", warmup_ratio: float = 0.1,
                 classifier_dropout: float = 0.1, optimizer: Optional[OptimizerFactory] = None,
                 freeze: Optional[list[str]] = None,
                 image_encoder: ImageEncoderConfig = ImageEncoderConfig(),
                 text_encoder: TextEncoderConfig = TextEncoderConfig(), embed_dim: int = 256,
                 task_weight: float = 1.0, ditc_weight: float = 1.0, imc_weight: float = 1.0,
                 glitc_weight: float = 1.0, pita_weight: float = 1.0, pita_mode: str = "cosine",
                 momentum: float = 0.995, use_momentum: bool = True, queue_size: int = 65536,
                 temperature: float = 0.07, views: bool = True, mask_same_document: bool = False,
                 segment_decoding: bool = False) -> None:
        weights = loss_weights(task_weight, ditc_weight, imc_weight, glitc_weight, pita_weight)
        check_alignment_args(backbone, weights, momentum, pita_mode)
        # freeze is applied by build_alignment, once the alignment modules exist (patterns may name them).
        super().__init__(backbone, label_names, vocab_size, lr, new_lr, weight_decay, schedule, warmup_ratio,
                         classifier_dropout, optimizer, freeze=None, segment_decoding=segment_decoding)
        self.save_hyperparameters(ignore=["optimizer"])  # this class's arguments too (loss weights -> HParams tab)
        self.build_alignment(backbone, vocab_size, image_encoder, text_encoder, embed_dim, weights, use_momentum,
                             queue_size, temperature, views, freeze)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``logits (B, L, num_labels)``, the backbone's states, and the online alignment encoders' outputs
        ``align_image (B, 1+P, Hv)``, ``align_text (B, L, Ht)``. No side effects (no momentum, no queue)."""
        out = self.aligned_states(batch)
        out["logits"] = self.classifier(self.dropout(out["text"]))
        return out

    def task_loss(self, out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self._loss(out["logits"], batch["labels"])


class AETDocumentClassification(AlignmentEnrichment, DocumentClassification):
    """``DocumentClassification`` with AETNet's alignment machinery: the same encoders, momentum encoders,
    queues, terms, weights and logged names as ``AETTokenClassification`` (see it for the arguments);
    the task loss is the window-level cross-entropy against the document class.
    """

    def __init__(self, backbone: BackboneConfig = BackboneConfig(), label_names: Optional[list[str]] = None,
                 vocab_size: int = 30522, lr: float = 5e-5, new_lr: Optional[float] = None,
                 weight_decay: float = 0.01, schedule: str = "cosine", warmup_ratio: float = 0.1,
                 classifier_dropout: float = 0.1, optimizer: Optional[OptimizerFactory] = None,
                 freeze: Optional[list[str]] = None,
                 image_encoder: ImageEncoderConfig = ImageEncoderConfig(),
                 text_encoder: TextEncoderConfig = TextEncoderConfig(), embed_dim: int = 256,
                 task_weight: float = 1.0, ditc_weight: float = 1.0, imc_weight: float = 1.0,
                 glitc_weight: float = 1.0, pita_weight: float = 1.0, pita_mode: str = "cosine",
                 momentum: float = 0.995, use_momentum: bool = True, queue_size: int = 65536,
                 temperature: float = 0.07, views: bool = True, mask_same_document: bool = False) -> None:
        weights = loss_weights(task_weight, ditc_weight, imc_weight, glitc_weight, pita_weight)
        check_alignment_args(backbone, weights, momentum, pita_mode)
        super().__init__(backbone, label_names, vocab_size, lr, new_lr, weight_decay, schedule, warmup_ratio,
                         classifier_dropout, optimizer, freeze=None)
        self.save_hyperparameters(ignore=["optimizer"])
        self.build_alignment(backbone, vocab_size, image_encoder, text_encoder, embed_dim, weights, use_momentum,
                             queue_size, temperature, views, freeze)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``logits (B, num_classes)`` (one row per window), the backbone's states, and the online alignment
        encoders' outputs ``align_image (B, 1+P, Hv)``, ``align_text (B, L, Ht)``. No side effects."""
        out = self.aligned_states(batch)
        out["logits"] = self.classifier(self.dropout(out["pooled"]))
        return out

    def task_loss(self, out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self._loss(out["logits"], batch["doc_label"])
