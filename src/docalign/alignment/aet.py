"""AETNet's alignment-enriched tuning (Wang et al., AAAI 2023) as one component that any task system takes.

The fusion model (LayoutLMv3) receives, added to its input embeddings, the full output sequences of an
alignment-aware image encoder (ViT) and text encoder; the joint objective is

    L = w_task L_task + w_ditc L_ditc + w_imc L_imc + w_glitc L_glitc + w_pita L_pita

A weight of 0 skips its term entirely (not computed, not logged). ``AETAlignment`` owns the encoders, the
fusion adapters, the momentum copies, the queues, the temperature, the augmented views and the four terms.
A task system (``TokenClassification``, ``DocumentClassification``, ``ExtractiveQA``) takes it as its optional
``alignment`` argument, injected the way LightningCLI injects optimisers (a callable given ``class_path`` and
``init_args``; the system calls it with what only it knows: the backbone's configuration and width and the
vocabulary size). The system's side of the contract is four calls:

- ``fusion_inputs(batch)``: the online encoders' outputs and the ``text_extra``/``visual_extra`` the backbone
  adds to its embeddings (no side effects; the only call made at evaluation);
- ``loss_terms(batch, out)`` in ``training_step``: the weighted alignment terms and this step's key features,
  which the system returns from ``training_step`` (``outputs["alignment_keys"]``);
- ``after_optimizer_step(global_step, keys)`` in ``on_train_batch_end``: the EMA update of the momentum encoders
  and the temperature clamp (once per optimiser step, so gradient accumulation does not over-update), then the
  keys into the queues (on every rank: they gather);
- ``ema_parameters()``: the parameters that are EMA-updated and never optimised.

Per training step the online encoders run once, on the clean image and the input ids; their outputs feed the
fusion model (so the task loss trains them too) and the terms. The key encoders run once, without gradients:
the momentum ViT on an augmented second view, the momentum text encoder on the same ids (TCL's arrangement:
the momentum side gives DITC's and IMC's positives and GLITC's locals). Validation, test and prediction call
``fusion_inputs`` only: momentum encoders, queues and augmentation are never touched there.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

import torch
from torch import nn

from ..losses import (
    Temperature,
    batch_contrast,
    contrast_chance,
    ditc_loss,
    glitc_loss,
    imc_loss,
    mean_cross_cosine,
    patch_grid_side,
    pita_loss,
    pita_similarity,
    pool_patch_regions,
    token_patch_index,
)
from ..models.alignment import AdditiveFusion, AlignmentEncoders, ImageEncoderConfig, TextEncoderConfig
from ..models.backbone import BackboneConfig
from ..models.momentum import FeatureQueue, ema_update, make_momentum_copy
from .views import AlignmentViews, ViewAugmentation

GLITC_REGIONS = 3  # image locals: the patch grid average-pooled to 3x3 regions (the released code's choice)
CONTRASTIVE_TERMS = ("loss_ditc", "loss_imc", "loss_glitc")  # the terms that need key encoders and queues
TERM_NAMES = ("loss_task", "loss_ditc", "loss_imc", "loss_glitc", "loss_pita")


class AETAlignment(nn.Module):
    """AETNet's alignment encoders, fusion, momentum encoders, queues, views and loss terms.

    The first three arguments come from the system (LightningCLI leaves them out of ``init_args``).

    Args:
        backbone: the fusion backbone's configuration (AET needs LayoutLMv3 with visual tokens).
        fusion_width: H, the fusion backbone's hidden size (the fusion adapters map to it).
        vocab_size: the fusion tokenizer's size (the text encoder reads the same ids).
        image_encoder, text_encoder: the alignment-aware encoders (``ImageEncoderConfig``, ``TextEncoderConfig``).
        embed_dim: D, the shared contrastive space of the projection heads.
        task_weight, ditc_weight, imc_weight, glitc_weight, pita_weight: loss weights (>= 0; 0 skips the term;
            ``task_weight`` scales the system's own task loss).
        pita_mode: ``cosine`` (the paper) or ``contrastive`` (the released code), see ``losses.pita_loss``.
        momentum: EMA momentum m of the key encoders, 0 <= m < 1 (0: a copy of the online encoders after
            every step).
        use_momentum: False for the ``*_no_momentum`` ablation: no momentum copies; the key encoder is the
            online encoder run without gradients (m = 0 without the copy), i.e. the text keys are the online
            text features detached and the image keys the online ViT's features of the augmented view;
            queues are kept (filled with those keys).
        queue_size: K, features per queue (image and text CLS).
        temperature: initial contrastive temperature (learnable, clamped to [0.001, 0.5]).
        views: augment the key encoder's image (second view for IMC); False: the clean image.
        mask_same_document: leave the queue's and the batch's other copies of a query's own document (earlier
            epochs' keys, other windows of a long page) out of its DITC and IMC negatives. Off: every key but
            the positive is a negative, as in ALBEF's pre-training and AETNet; on a small dataset the queue then
            holds older copies of each current document as negatives once an epoch has passed.
        view_augmentation: the second view's augmentation strengths, RandAugment included (``ViewAugmentation``;
            the defaults are AETNet's).
        fusion_gate: multiply the image stream by a learnable scale, initialised at 0, before it is added into the
            fusion model's patch embeddings: the fusion starts as plain fine-tuning and lets the image stream in as far
            as the task gains from it (a random ViT's stream is otherwise as large as the embeddings it is added to).
            Off (the paper adds the stream as it is).
        pita_features: what PITA compares. ``projection`` (the paper's and released code's): the projection heads
            shared with DITC/IMC/GLITC (heads that ignore their input reach cosine PITA's optimum); ``raw``: the
            encoders' states themselves (needs equal image and text encoder widths); ``own_projection``: PITA's own
            pair of linear heads, so PITA cannot collapse the contrastive terms' space.
        pita_boxes: which boxes place a token in a patch. ``input`` (the paper's): the boxes the model reads (segment
            boxes with ``data.segment_boxes``: on FUNSD's 7x7 grid 12.9% of training words lie inside one patch);
            ``words``: each word's own box (the batch's ``word_bbox``, kept by the FUNSD folder reader beside segment
            boxes: 56.9%). Data without ``word_bbox`` (word-level boxes, or readers that keep none) uses the input boxes.
        encoder_lr: a learning rate of its own for the alignment encoders and their projection heads (the online
            ones; the momentum copies are never optimised); None: the system's ``lr`` for warm-started encoder
            parameters and ``new_lr`` for the rest, as for every other parameter.
    """

    def __init__(
        self,
        backbone: BackboneConfig,
        fusion_width: int,
        vocab_size: int,
        image_encoder: ImageEncoderConfig = ImageEncoderConfig(),
        text_encoder: TextEncoderConfig = TextEncoderConfig(),
        embed_dim: int = 256,
        task_weight: float = 1.0,
        ditc_weight: float = 1.0,
        imc_weight: float = 1.0,
        glitc_weight: float = 1.0,
        pita_weight: float = 1.0,
        pita_mode: str = "cosine",
        momentum: float = 0.995,
        use_momentum: bool = True,
        queue_size: int = 65536,
        temperature: float = 0.07,
        views: bool = True,
        mask_same_document: bool = False,
        view_augmentation: ViewAugmentation = ViewAugmentation(),
        fusion_gate: bool = False,
        pita_features: str = "projection",
        pita_boxes: str = "input",
        encoder_lr: Optional[float] = None,
    ) -> None:
        super().__init__()
        weights = dict(zip(TERM_NAMES, (task_weight, ditc_weight, imc_weight, glitc_weight, pita_weight)))
        _check(backbone, weights, momentum, pita_mode)
        _check_options(pita_features, pita_boxes, encoder_lr)
        # What a checkpoint's hparams record of this component (the injected arguments are the system's own).
        self.config = dict(
            image_encoder=_plain(image_encoder),
            text_encoder=_plain(text_encoder),
            embed_dim=embed_dim,
            task_weight=task_weight,
            ditc_weight=ditc_weight,
            imc_weight=imc_weight,
            glitc_weight=glitc_weight,
            pita_weight=pita_weight,
            pita_mode=pita_mode,
            momentum=momentum,
            use_momentum=use_momentum,
            queue_size=queue_size,
            temperature=temperature,
            views=views,
            mask_same_document=mask_same_document,
            view_augmentation=_plain(view_augmentation),
            fusion_gate=fusion_gate,
            pita_features=pita_features,
            pita_boxes=pita_boxes,
            encoder_lr=encoder_lr,
        )
        self.weights = {name: float(w) for name, w in weights.items() if w > 0}
        self.contrastive = any(name in self.weights for name in CONTRASTIVE_TERMS)
        self.momentum, self.pita_mode, self.mask_same_document = momentum, pita_mode, mask_same_document
        self.pita_features, self.pita_boxes, self.encoder_lr = pita_features, pita_boxes, encoder_lr

        self.encoders = AlignmentEncoders(
            image_encoder, text_encoder, vocab_size, backbone.image_size, backbone.patch_size, embed_dim
        )
        self.fusion = AdditiveFusion(self.encoders.image.hidden_size, self.encoders.text.hidden_size, fusion_width)
        self.grid_side = patch_grid_side(backbone.image_size, backbone.patch_size)
        self.warm_started: set[str] = set()  # parameter names (relative to this module) loaded from checkpoints
        if text_encoder.pretrained:
            self.warm_started |= {f"encoders.text.{n}" for n, _ in self.encoders.text.named_parameters()}
        if image_encoder.timm_checkpoint:
            self.warm_started |= {f"encoders.image.{n}" for n, _ in self.encoders.image.named_parameters()}
        self.warm_started |= {f"encoders.image.{n}" for n in self.encoders.image.stem_parameter_names()}

        # Key side: built only when a contrastive term uses it (unused parameters would also trip DDP).
        self.encoders_m = make_momentum_copy(self.encoders) if self.contrastive and use_momentum else None
        self.temperature = Temperature(temperature) if self.contrastive else None
        self.image_queue = FeatureQueue(queue_size, embed_dim) if self.contrastive else None
        self.text_queue = FeatureQueue(queue_size, embed_dim) if self.contrastive else None
        if isinstance(view_augmentation, dict):  # a checkpoint's hparams or a plain mapping
            view_augmentation = ViewAugmentation(**view_augmentation)
        use_views = self.contrastive and views
        self.views = AlignmentViews.from_config(backbone.image_size, view_augmentation) if use_views else None
        self._ema_step = -1
        # Options built last, and only when on, so that a seed gives the same weights as before they existed.
        if fusion_gate:
            self.fusion.add_image_gate()
        self.pita_image_proj = self.pita_text_proj = None
        if pita_features == "own_projection":
            self.pita_image_proj = nn.Linear(self.encoders.image.hidden_size, embed_dim)
            self.pita_text_proj = nn.Linear(self.encoders.text.hidden_size, embed_dim)
        if pita_features == "raw" and self.encoders.image.hidden_size != self.encoders.text.hidden_size:
            raise ValueError(
                f"alignment pita_features 'raw' compares the encoders' states directly, but the image encoder is "
                f"{self.encoders.image.hidden_size} wide and the text encoder {self.encoders.text.hidden_size}: use "
                f"'own_projection' (PITA's own heads) or encoders of one width"
            )

    # --- the system's interface ------------------------------------------------------------------------
    def fusion_inputs(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The online encoders' outputs ``align_image (B, 1+P, Hv)``, ``align_text (B, L, Ht)`` and what the
        backbone adds to its embeddings, ``visual_extra (B, 1+P, H)``, ``text_extra (B, L, H)``. No side effects."""
        aligned = self.encoders(batch["pixel_values"], batch["input_ids"], batch["attention_mask"])
        visual_extra, text_extra = self.fusion(aligned["image"], aligned["text"])
        return {
            "align_image": aligned["image"],
            "align_text": aligned["text"],
            "visual_extra": visual_extra,
            "text_extra": text_extra,
        }

    def loss_terms(
        self, batch: dict[str, torch.Tensor], out: dict[str, torch.Tensor]
    ) -> tuple[dict[str, torch.Tensor], Optional[dict[str, torch.Tensor]]]:
        """The alignment terms with a positive weight, ``{"loss_ditc": scalar, ...}``, from the system's forward
        output (which holds ``fusion_inputs``'s), and this step's key features for ``after_optimizer_step``
        (None without contrastive terms). Writes nothing."""
        terms: dict[str, torch.Tensor] = {}
        keys_out = None
        image_states, text_states = out["align_image"], out["align_text"]
        word_tokens = batch["word_ids"] >= 0  # not CLS/SEP/padding/question: their boxes are not words on the page
        enc = self.encoders
        if self.contrastive:
            image_cls, text_cls = enc.project_image(image_states[:, 0]), enc.project_text(text_states[:, 0])
            keys = self._keys(batch, text_states)
            t = self.temperature()
            image_queue, text_queue = self.image_queue.items(), self.text_queue.items()
            ids = {}
            if self.mask_same_document:
                ids = {
                    "doc_ids": batch["doc_index"],
                    "image_queue_ids": self.image_queue.item_ids(),
                    "text_queue_ids": self.text_queue.item_ids(),
                }
            if "loss_ditc" in self.weights:
                terms.update(
                    ditc_loss(
                        image_cls, text_cls, keys["image_cls"], keys["text_cls"], image_queue, text_queue, t, **ids
                    )
                )
            if "loss_imc" in self.weights:
                terms.update(
                    imc_loss(
                        image_cls, keys["image_cls"], image_queue, text_cls, keys["text_cls"], text_queue, t, **ids
                    )
                )
            if "loss_glitc" in self.weights:
                terms.update(glitc_loss(image_cls, keys["image_locals"], text_cls, keys["text_locals"], word_tokens, t))
            keys_out = {"image": keys["image_cls"], "text": keys["text_cls"], "ids": batch.get("doc_index")}
        if "loss_pita" in self.weights:
            terms.update(pita_loss(*self._pita_inputs(batch, image_states, text_states), mode=self.pita_mode))
        return terms, keys_out

    @torch.no_grad()
    def diagnostics(
        self,
        batch: dict[str, torch.Tensor],
        out: dict[str, torch.Tensor],
        terms: Optional[dict[str, torch.Tensor]] = None,
    ) -> dict[str, torch.Tensor]:
        """Collapse diagnostics of this batch, no gradient, nothing written (logged as ``train/diag/*`` and
        ``val/diag/*``); from the online encoders' outputs in ``out`` (``fusion_inputs``'s), so evaluation runs nothing
        more than it does anyway:

        - ``image_cls_cos``, ``text_cls_cos`` (the encoders' CLS states) and ``*_proj`` (projected to the shared
          space): mean cosine between different documents of the batch; near 1 = every page looks the same.
        - ``pita_matched``, ``pita_mismatched``: PITA's cosine of a patch with its own text and with another patch's
          text (``losses.pita_similarity``), in the features PITA compares, whether or not PITA is weighted; and
          ``pita_tokens_in_one_patch``, the fraction of word tokens whose box lies inside one patch.
        - training (``terms`` given): ``contrast_chance`` = log(K + 1) for K negatives, and ``ditc_under_chance``,
          ``imc_under_chance`` = chance - loss (nats; 0 = the term cannot tell documents apart). The keys are the
          ones the loss used (the queue is written after this call). A loss can fall under chance by as much as
          log((B + K) / B) without telling documents apart: when the momentum encoder has drifted, this step's B
          fresh keys stand out from the K older queued ones. ``contrast_batch_chance`` = log(B) (the batch's
          candidates) and ``ditc_under_batch_chance``, ``imc_under_batch_chance`` = log(B) - loss: above 0 only
          when the term tells this batch's documents apart.
        - evaluation (no ``terms``; with a contrastive term): ``ditc_batch`` and ``ditc_batch_chance``, online image
          vs text CLS with the batch's other documents as negatives (``losses.batch_contrast``).
        """
        image_states, text_states = out["align_image"], out["align_text"]
        doc = batch.get("doc_index")
        enc = self.encoders
        image_cls, text_cls = enc.project_image(image_states[:, 0]), enc.project_text(text_states[:, 0])
        diag: dict[str, torch.Tensor] = {}
        for name, features in (
            ("image_cls_cos", image_states[:, 0]),
            ("text_cls_cos", text_states[:, 0]),
            ("image_cls_cos_proj", image_cls),
            ("text_cls_cos_proj", text_cls),
        ):
            value = mean_cross_cosine(features, doc)
            if value is not None:
                diag[name] = value
        patch_visual, token_features, index = self._pita_inputs(batch, image_states, text_states)
        diag.update(pita_similarity(patch_visual, token_features, index))
        words = (batch["word_ids"] >= 0).sum()
        if int(words):
            diag["pita_tokens_in_one_patch"] = (index >= 0).sum().float() / words
        if terms is not None and self.contrastive:
            ids = {}
            if self.mask_same_document:
                ids = {"doc_ids": batch["doc_index"], "queue_ids": self.image_queue.item_ids()}
            chance = contrast_chance(image_cls.shape[0], self.image_queue.items().shape[0], **ids).to(image_cls.device)
            # without the queue: what a loss reaches by telling this step's fresh keys from the queued ones only
            batch_ids = {"doc_ids": batch["doc_index"]} if self.mask_same_document else {}
            batch_chance = contrast_chance(image_cls.shape[0], 0, **batch_ids).to(image_cls.device)
            diag["contrast_chance"], diag["contrast_batch_chance"] = chance, batch_chance
            for term in ("ditc", "imc"):
                if f"loss_{term}" in terms:
                    loss = terms[f"loss_{term}"].detach().float()
                    diag[f"{term}_under_chance"] = chance - loss
                    diag[f"{term}_under_batch_chance"] = batch_chance - loss
        elif terms is None and self.temperature is not None:
            diag.update(batch_contrast(image_cls, text_cls, self.temperature(), doc))
        return diag

    def total(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        """The weighted sum of the terms (the task's ``loss_task`` included)."""
        return sum(self.weights[name] * value for name, value in terms.items())

    def on_train_start(self, global_step: int) -> None:
        self._ema_step = global_step

    @torch.no_grad()
    def after_optimizer_step(self, global_step: int, keys: Optional[dict[str, torch.Tensor]]) -> None:
        """EMA and temperature clamp when the optimiser did step (``global_step`` moved), then ``keys`` into the
        queues (a collective under DDP: every rank calls it with its keys)."""
        if global_step != self._ema_step:
            self._ema_step = global_step
            if self.encoders_m is not None:
                ema_update(self.encoders, self.encoders_m, self.momentum)
            if self.temperature is not None:
                self.temperature.project_()
        if keys is not None:
            self.image_queue.enqueue(keys["image"], keys["ids"])
            self.text_queue.enqueue(keys["text"], keys["ids"])

    def ema_parameters(self) -> list[nn.Parameter]:
        """The momentum encoders' parameters: EMA-updated, never optimised."""
        return list(self.encoders_m.parameters()) if self.encoders_m is not None else []

    # --- internals -------------------------------------------------------------------------------------
    def _pita_inputs(
        self, batch: dict[str, torch.Tensor], image_states: torch.Tensor, text_states: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """PITA's ``(patch_visual (B, P, D), token_features (B, L, D), patch_index (B, L))``: the projected patch and
        token states (not normalised: cosine mode normalises itself, contrastive mode uses raw dot products) and the
        patch holding each word token's box (-1: none, or not a word token)."""
        word_tokens = batch["word_ids"] >= 0  # not CLS/SEP/padding/question: their boxes are not words on the page
        boxes = batch["word_bbox"] if self.pita_boxes == "words" and "word_bbox" in batch else batch["bbox"]
        index = token_patch_index(boxes, word_tokens, self.grid_side)
        patches = image_states[:, 1:]
        if self.pita_features == "raw":
            return patches, text_states, index
        if self.pita_features == "own_projection":
            return self.pita_image_proj(patches), self.pita_text_proj(text_states), index
        enc = self.encoders
        return enc.project_image(patches, normalise=False), enc.project_text(text_states, normalise=False), index

    @torch.no_grad()
    def _keys(self, batch: dict[str, torch.Tensor], text_states: torch.Tensor) -> dict[str, torch.Tensor]:
        """Key features (no gradient), L2-normalised in the shared space: ``image_cls (B, D)`` of the
        augmented view, ``text_cls (B, D)``, and for GLITC ``image_locals (B, 9, D)``, ``text_locals (B, L, D)``."""
        view = self.views(batch["pixel_values"]) if self.views is not None else batch["pixel_values"]
        if self.encoders_m is not None:
            encoders = self.encoders_m
            image = encoders.image(view)
            text = encoders.text(batch["input_ids"], batch["attention_mask"])
        else:  # no momentum: the online encoders are the key encoders (m = 0, without a copy)
            encoders = self.encoders
            image = encoders.image(view)
            text = text_states.detach()
        keys = {"image_cls": encoders.project_image(image[:, 0]), "text_cls": encoders.project_text(text[:, 0])}
        if "loss_glitc" in self.weights:
            keys["image_locals"] = encoders.project_image(pool_patch_regions(image[:, 1:], GLITC_REGIONS))
            keys["text_locals"] = encoders.project_text(text)
        return keys


def _plain(value: Any) -> Any:
    return dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value


def _check(backbone: BackboneConfig, weights: dict[str, float], momentum: float, pita_mode: str) -> None:
    """Refuse an AET configuration that cannot work, before anything is built."""
    if backbone.arch != "layoutlmv3" or not backbone.visual:
        raise ValueError(
            f"AET needs the layoutlmv3 backbone with visual tokens (its additive fusion points); got "
            f"arch={backbone.arch!r}, visual={backbone.visual}"
        )
    if any(w < 0 for w in weights.values()) or not any(w > 0 for w in weights.values()):
        raise ValueError(f"alignment loss weights must be >= 0 with at least one positive, got {weights}")
    if not 0.0 <= momentum < 1.0:
        raise ValueError(
            f"alignment momentum must lie in [0, 1) (m = 1 would never update the key encoders), got {momentum}"
        )
    if pita_mode not in ("cosine", "contrastive"):
        raise ValueError(f"alignment pita_mode must be 'cosine' or 'contrastive', got {pita_mode!r}")


def _check_options(pita_features: str, pita_boxes: str, encoder_lr: Optional[float]) -> None:
    if pita_features not in ("projection", "raw", "own_projection"):
        raise ValueError(
            f"alignment pita_features must be 'projection', 'raw' or 'own_projection', got {pita_features!r}"
        )
    if pita_boxes not in ("input", "words"):
        raise ValueError(f"alignment pita_boxes must be 'input' or 'words', got {pita_boxes!r}")
    if encoder_lr is not None and not encoder_lr > 0:
        raise ValueError(f"alignment encoder_lr must be > 0 (or null: the system's learning rates), got {encoder_lr}")


# Old checkpoints (``AETTokenClassification`` / ``AETDocumentClassification``, before the component): their
# state-dict prefixes and their flat constructor arguments, mapped onto the component.
_OLD_PREFIXES = {
    "alignment_m.": "alignment.encoders_m.",
    "fusion.": "alignment.fusion.",
    "temperature.": "alignment.temperature.",
    "image_queue.": "alignment.image_queue.",
    "text_queue.": "alignment.text_queue.",
}
_OLD_CLASSES = {
    "AETTokenClassification": "docalign.systems.TokenClassification",
    "AETDocumentClassification": "docalign.systems.DocumentClassification",
}
COMPONENT_PATH = f"{__name__}.AETAlignment"


def upgrade_state_dict(state: dict[str, Any]) -> dict[str, Any]:
    """A state dict written by the old AET subclasses with the component's key names (others unchanged)."""
    if not any(
        k.startswith(tuple(_OLD_PREFIXES))
        or k.startswith(("alignment.image.", "alignment.text.", "alignment.image_proj.", "alignment.text_proj."))
        for k in state
    ):
        return state
    out = {}
    for key, value in state.items():
        for old, new in _OLD_PREFIXES.items():
            if key.startswith(old):
                key = new + key[len(old) :]
                break
        else:
            if key.startswith("alignment.") and not key.startswith("alignment.encoders"):
                key = "alignment.encoders." + key[len("alignment.") :]
        out[key] = value
    return out


def upgrade_checkpoint(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """An old AET checkpoint (state dict and hyperparameters) in the component's form, in place; a new one as is.

    The hyperparameters' ``_class_path`` becomes the plain task system and AET's flat arguments move into
    ``alignment: {class_path, init_args}``, so ``load_from_checkpoint`` rebuilds the same model."""
    checkpoint["state_dict"] = upgrade_state_dict(checkpoint.get("state_dict", {}))
    hparams = checkpoint.get("hyper_parameters") or {}
    old = str(hparams.get("_class_path", "")).rsplit(".", 1)[-1]
    if old in _OLD_CLASSES:
        names = set(AETAlignment.__init__.__code__.co_varnames[4 : AETAlignment.__init__.__code__.co_argcount])
        init_args = {k: hparams.pop(k) for k in list(hparams) if k in names}
        hparams["_class_path"] = _OLD_CLASSES[old]
        hparams["alignment"] = {"class_path": COMPONENT_PATH, "init_args": init_args}
    return checkpoint
