"""VLCDoC for document classification: the two-tower network (``models.vlcdoc``) trained with task cross-entropy
plus VLCDoC's supervised contrastive alignment (``losses.supcon``).

Objective, each term weighted, logged (``train/loss_task``, ``train/loss_inter``, ``train/loss_intra``, and the
total ``train/loss``) and not computed at weight 0 (the ablations ``*_vlcdoc_no_inter`` / ``_no_intra``):

- ``loss_task``: cross-entropy of the classifier on the joint representation (``pooled``: both CLS states);
- ``loss_inter``: vision <-> text supervised contrast, both directions (``supcon_inter``): a document's own other
  modality and every same-class document are positives;
- ``loss_intra``: vision <-> vision across two views of the page images (the batch's images and an augmented
  view, ``alignment.views.AlignmentViews``, made here and only in training) and text <-> text
  (``supcon_intra_views``), same-class positives, self excluded.

Negatives come from every process (the features are gathered with gradients). Evaluation (validation, test,
predict) runs ``forward`` only: no augmentation, no state changes; it is scored like ``DocumentClassification``.

The ``backbone`` argument describes the text tower and the page image (so the experiments share the overlays and
links of the other classifiers): ``text_init`` is the text tower's checkpoint (``bert-base-uncased``; ``minilm``
offline; None: random init with ``hidden_size`` / ``num_layers`` / ``num_heads`` / ``intermediate_size``), and
``image_size`` / ``patch_size`` the ViT's grid; ``arch`` and the layout settings do not apply, and ``pretrained``
(a complete fusion checkpoint) must be unset.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import nn

from ..alignment.views import AlignmentViews
from ..losses.supcon import supcon_inter, supcon_intra_views
from ..metrics.doc_accuracy import DocumentClassificationMetrics
from ..models import freezing
from ..models.alignment import ImageEncoderConfig, TextEncoderConfig
from ..models.backbone import BackboneConfig
from ..models.vlcdoc import VLCDocConfig, VLCDocModel
from .base import DocumentSystem, OptimizerFactory
from .doc_classification import DocumentClassification


class VLCDocClassification(DocumentClassification):
    """VLCDoC (Bakkali et al., 2023): ViT + text tower, InterMCA/IntraMSA blocks, inter/intra supervised contrast.

    Args:
        backbone: the text tower and the image grid (see the module docstring).
        vision: the ViT tower (``timm_checkpoint``, e.g. ``vit_base_patch16_224.augreg2_in21k_ft_in1k``; null: random
            init of ``hidden_size`` / ``num_layers`` / ``num_heads``).
        vlcdoc: the cross-modal blocks, width, depth, contrastive space and frozen towers (``VLCDocConfig``).
        task_weight, inter_weight, intra_weight: the objective's weights (0: the term is not computed).
        temperature: the supervised contrast's temperature (VLCDoC's is unverified; 0.07-0.1 are usual).
        view_crop_scale: RandomResizedCrop's area range of the augmented view (intra term).
        See ``DocumentClassification`` / ``DocumentSystem`` for the rest (no ``alignment``: VLCDoC is its own).
    """

    def __init__(
        self,
        backbone: BackboneConfig = BackboneConfig(),
        vision: ImageEncoderConfig = ImageEncoderConfig(),
        vlcdoc: VLCDocConfig = VLCDocConfig(),
        label_names: Optional[list[str]] = None,
        vocab_size: int = 30522,
        task_weight: float = 1.0,
        inter_weight: float = 1.0,
        intra_weight: float = 1.0,
        temperature: float = 0.07,
        view_crop_scale: tuple[float, float] = (0.5, 1.0),
        lr: float = 5e-5,
        new_lr: Optional[float] = None,
        weight_decay: float = 0.01,
        schedule: str = "cosine",
        warmup_ratio: float = 0.1,
        classifier_dropout: float = 0.1,
        optimizer: Optional[OptimizerFactory] = None,
        freeze: Optional[list[str]] = None,
    ) -> None:
        if backbone.pretrained:
            raise ValueError(
                f"model.backbone.pretrained={backbone.pretrained!r}: VLCDoC has no fusion backbone; its text tower is "
                f"model.backbone.text_init and its vision tower model.vision. Set model.backbone.pretrained: null."
            )
        if backbone.init_from:
            raise ValueError(
                "model.backbone.init_from does not apply to VLCDoC (its towers load with text_init/vision)"
            )
        if temperature <= 0 or min(task_weight, inter_weight, intra_weight) < 0:
            raise ValueError(
                f"model.temperature must be > 0 and the weights >= 0, got {temperature}, "
                f"{task_weight}, {inter_weight}, {intra_weight}"
            )
        if not (task_weight or inter_weight or intra_weight):
            raise ValueError("model.task_weight, inter_weight and intra_weight are all 0: nothing to train")
        text = TextEncoderConfig(
            pretrained=backbone.text_init,
            hidden_size=backbone.hidden_size,
            num_layers=backbone.num_layers,
            num_heads=backbone.num_heads,
            intermediate_size=backbone.intermediate_size,
            dropout=backbone.dropout,
        )
        network = VLCDocModel(vision, text, vlcdoc, vocab_size, backbone.image_size, backbone.patch_size)
        DocumentSystem.__init__(
            self,
            backbone,
            vocab_size,
            lr,
            new_lr,
            weight_decay,
            schedule,
            warmup_ratio,
            optimizer,
            freeze,
            backbone_module=network,
        )
        self.warm_started = {f"backbone.{n}" for n in network.warm_started}
        # zero-argument super(): it gives this frame the ``__class__`` cell that save_hyperparameters looks for
        super().build_classifier(label_names, classifier_dropout, network.hidden_size)
        self.save_hyperparameters(ignore=["optimizer"])
        self.metrics = nn.ModuleDict(
            {stage: DocumentClassificationMetrics(len(self.label_names)) for stage in ("val", "test")}
        )
        self.weights = {"loss_task": task_weight, "loss_inter": inter_weight, "loss_intra": intra_weight}
        self.views = AlignmentViews(backbone.image_size, crop_scale=tuple(view_crop_scale)) if intra_weight else None
        if self.freeze_patterns:
            freezing.freeze(self, self.freeze_patterns)

    def encode(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        return self.backbone(batch["input_ids"], batch.get("bbox"), batch["attention_mask"], batch.get("pixel_values"))

    def loss_terms(self, batch: dict[str, Any], out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The unweighted terms whose weight is not 0, from ``forward``'s output on ``batch`` (training only: the
        intra term draws an augmented view)."""
        labels, t = batch["doc_label"], self.hparams.temperature
        terms: dict[str, torch.Tensor] = {}
        if self.weights["loss_task"]:
            terms["loss_task"] = self.task_loss(out, batch)
        if self.weights["loss_inter"]:
            terms.update(supcon_inter(out["vision_embed"], out["text_embed"], labels, t))
        if self.weights["loss_intra"]:
            view = self.views(batch["pixel_values"])
            second = self.backbone(
                batch["input_ids"], None, batch["attention_mask"], view, text_states=out["text_tower"]
            )
            terms.update(supcon_intra_views(out["vision_embed"], second["vision_embed"], out["text_embed"], labels, t))
        return terms

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        out = self(batch)
        size = batch["input_ids"].shape[0]
        terms = self.loss_terms(batch, out)
        loss = sum(self.weights[name] * value for name, value in terms.items())
        for name, value in terms.items():
            self.log(f"train/{name}", value, batch_size=size)
        self.log("train/loss", loss, prog_bar=True, batch_size=size)
        return loss
