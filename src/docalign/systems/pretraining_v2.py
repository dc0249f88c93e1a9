"""LayoutLMv2's pre-training (Xu et al., 2021): MVLM, TIA and TIM on unlabelled pages (images + OCR words).

Any DataModule's documents serve; their labels are ignored. Each step corrupts the collated batch
(``data.corruption``) with a ``torch.Generator`` seeded from the step, then runs the backbone once:

- MVLM (masked visual-language modelling): 15% of word tokens masked 80/10/10, their boxes kept; an LM
  head predicts the original ids. The head is BERT's (dense, GELU, LayerNorm) with its output matrix
  *tied* to the backbone's word embeddings (plus an output bias), so a MiniLM/BERT warm start gives it a
  meaningful start and it adds only H*H + V parameters.
- TIA (text-image alignment): 15% of the text lines (``data.corruption.text_lines``) are covered in the
  image (filled with the normalised value of black, or of the mean: ``tia_fill``); every word token
  predicts covered / not covered. Excluded from the loss: MVLM's chosen tokens (as in the paper) and
  the samples whose image TIM replaced or dropped (their image is not theirs to align with).
- TIM (text-image matching): the pooled [CLS] state predicts whether the image belongs to the text.
  Negatives: 15% of samples get the image of a sample of another document in the batch (never their
  own page: a batch of one document has no negatives), 5% get no image, i.e. a blank white page (the
  normalised value of white): the backbone's visual stream has no per-sample off switch, and a blank
  page is what "no image" looks like to a CNN, with no extra parameters. TIA then covers lines of the
  matched samples only.

A weight of 0 neither corrupts the input for that task nor builds or computes its head. Losses are
logged as ``{stage}/loss_mvlm``, ``{stage}/loss_tia``, ``{stage}/loss_tim`` and ``{stage}/loss`` (the
weighted sum), with accuracies ``{stage}/acc_*`` outside training.

Seeds: training uses ``corruption_seed``, the global step and the batch index (so gradient accumulation
gets fresh corruptions); validation and test use ``corruption_seed``, the stage and the batch index only,
so every evaluation sees the same corruption and ``val/loss`` is comparable from epoch to epoch (the
checkpoint monitor of ``funsd_pretrain_v2``). ``forward`` changes no state.

A fine-tuning experiment starts from the backbone of a checkpoint of this system with
``--model.backbone.init_from path/to.ckpt`` (``BackboneConfig.init_from``).
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..conventions import IGNORE_INDEX, PIXEL_MEAN
from ..data import corruption
from ..models.backbone import BackboneConfig
from .base import DocumentSystem, OptimizerFactory

STAGES = ("train", "val", "test")
SEED_STRIDE = 1_000_003  # a prime larger than any number of batches per step or epoch


class LMHead(nn.Module):
    """BERT's prediction head: dense, GELU, LayerNorm, then the (tied) word embedding matrix and a bias."""

    def __init__(self, hidden_size: int, vocab_size: int, eps: float = 1e-12) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.norm = nn.LayerNorm(hidden_size, eps=eps)
        self.bias = nn.Parameter(torch.zeros(vocab_size))

    def forward(self, hidden: torch.Tensor, word_embeddings: torch.Tensor) -> torch.Tensor:
        """hidden: (N, H); word_embeddings: (V, H) -> logits (N, V)."""
        return F.linear(self.norm(F.gelu(self.dense(hidden))), word_embeddings, self.bias)


class LayoutLMv2Pretraining(DocumentSystem):
    """MVLM + TIA + TIM pre-training of a backbone (LayoutLMv2; v3 works too, v1 has no image for TIA/TIM).

    Args:
        mvlm_weight, tia_weight, tim_weight: loss weights; 0 = the task is not run.
        mvlm_rate: fraction of word tokens chosen for MVLM (80% [MASK], 10% random, 10% kept).
        tia_rate: fraction of text lines covered for TIA.
        tim_replace_rate, tim_drop_rate: fractions of samples whose image is replaced / dropped for TIM.
        tia_fill: ``black`` or ``mean``: the colour of covered lines (0, or ``PIXEL_MEAN``, on [0, 1] pixels).
        mask_token_id: the mask token (None: the DataModule's tokenizer's, read at setup).
        corruption_seed: base seed of the corruption generators.
        label_names: accepted because the CLI links the data's label names to every model; ignored.
        See ``DocumentSystem`` for the rest.
    """

    hp_metrics = ("hp/val_loss",)
    monitor = ("val/loss", "min")

    def __init__(
        self,
        backbone: BackboneConfig = BackboneConfig(arch="layoutlmv2"),
        vocab_size: int = 30522,
        mvlm_weight: float = 1.0,
        tia_weight: float = 1.0,
        tim_weight: float = 1.0,
        mvlm_rate: float = 0.15,
        tia_rate: float = 0.15,
        tim_replace_rate: float = 0.15,
        tim_drop_rate: float = 0.05,
        tia_fill: str = "black",
        mask_token_id: Optional[int] = None,
        corruption_seed: int = 0,
        label_names: Optional[list[str]] = None,
        lr: float = 1e-4,
        new_lr: Optional[float] = None,
        weight_decay: float = 0.01,
        schedule: str = "cosine",
        warmup_ratio: float = 0.1,
        optimizer: Optional[OptimizerFactory] = None,
        freeze: Optional[list[str]] = None,
    ) -> None:
        super().__init__(backbone, vocab_size, lr, new_lr, weight_decay, schedule, warmup_ratio, optimizer, freeze)
        self.save_hyperparameters(ignore=["optimizer", "label_names"])
        if min(mvlm_weight, tia_weight, tim_weight) < 0 or max(mvlm_weight, tia_weight, tim_weight) == 0:
            raise ValueError("mvlm_weight, tia_weight and tim_weight must be >= 0 and not all 0")
        if tia_fill not in ("black", "mean"):
            raise ValueError(f"tia_fill must be 'black' or 'mean', got {tia_fill!r}")
        if (tia_weight or tim_weight) and (backbone.arch == "layoutlm" or not backbone.visual):
            raise ValueError(
                f"TIA and TIM need visual tokens, which backbone arch={backbone.arch!r} with "
                f"visual={backbone.visual} has none: set tia_weight and tim_weight to 0"
            )
        hidden = self.backbone.hidden_size
        self.mask_token_id = mask_token_id
        self.tia_fill_value = 0.0 if tia_fill == "black" else PIXEL_MEAN  # pixel_values are in [0, 1]
        self.blank_value = 1.0  # a white page: TIM's dropped image
        self.mvlm_head = LMHead(hidden, vocab_size) if mvlm_weight else None
        self.tia_head = nn.Linear(hidden, 2) if tia_weight else None
        self.tim_head = nn.Linear(hidden, 2) if tim_weight else None
        self.finish_init(None)

    def setup(self, stage: str) -> None:
        if self.mask_token_id is None and self.hparams.mvlm_weight:
            tokenizer = getattr(getattr(self.trainer, "datamodule", None), "tokenizer", None)
            self.mask_token_id = getattr(tokenizer, "mask_token_id", None)
            if self.mask_token_id is None:
                raise ValueError(
                    "MVLM needs a mask token: the DataModule's tokenizer has none; set model.mask_token_id"
                )

    # --- corruption --------------------------------------------------------------------------------
    def generator(self, stage: str, batch_idx: int) -> torch.Generator:
        step = self.global_step if stage == "train" else 0
        seed = ((self.hparams.corruption_seed * SEED_STRIDE + step) * len(STAGES) + STAGES.index(stage)) * SEED_STRIDE
        return torch.Generator().manual_seed((seed + batch_idx) % 2**63)

    def corrupt(self, batch: dict[str, torch.Tensor], generator: torch.Generator) -> dict[str, torch.Tensor]:
        """The corrupted inputs and the targets of each task that has a weight.

        Returns ``input_ids``, ``bbox``, ``attention_mask``, ``pixel_values`` (corrupted) plus
        ``mvlm_labels (B, L)`` (-100: not chosen), ``tia_labels (B, L)`` (1 covered, 0 not, -100: not in
        the loss), ``tim_labels (B,)`` (1 matched, 0 not), ``image_source (B,)`` (see ``mismatch_images``)
        and ``covered_boxes``: per sample, the (N, 4) boxes painted.
        """
        hp = self.hparams
        out = {k: batch[k] for k in ("input_ids", "bbox", "attention_mask")}
        batch_size, device = batch["input_ids"].shape[0], batch["input_ids"].device
        if hp.mvlm_weight:
            out["input_ids"], out["mvlm_labels"] = corruption.mask_tokens(
                batch["input_ids"], batch["word_ids"], hp.mvlm_rate, self.mask_token_id, hp.vocab_size, generator
            )
        pixels = batch.get("pixel_values")
        if pixels is None:
            if hp.tia_weight or hp.tim_weight:
                raise ValueError("TIA and TIM need page images: the batch has no pixel_values (data.image_size?)")
            return out
        source = torch.arange(batch_size)
        if hp.tim_weight:
            source = corruption.mismatch_images(
                batch["doc_index"].cpu(), hp.tim_replace_rate, hp.tim_drop_rate, generator
            )
            images = [pixels[j] if j >= 0 else torch.full_like(pixels[0], self.blank_value) for j in source.tolist()]
            pixels = torch.stack(images)
            out["tim_labels"] = (source == torch.arange(batch_size)).long().to(device)
        out["image_source"] = source
        if hp.tia_weight:
            tia_labels = torch.full_like(batch["input_ids"], IGNORE_INDEX)
            covered_boxes, images = [], []
            for i in range(batch_size):
                line_of_token, line_boxes = corruption.text_lines(batch["word_ids"][i].cpu(), batch["bbox"][i].cpu())
                chosen = torch.rand(len(line_boxes), generator=generator) < hp.tia_rate
                if source[i] != i:  # TIM gave it another image or none: nothing of its own to cover
                    chosen[:] = False
                covered_boxes.append(line_boxes[chosen])
                images.append(
                    corruption.cover_boxes(pixels[i], line_boxes[chosen], self.tia_fill_value)
                    if chosen.any()
                    else pixels[i]
                )
                if source[i] == i:
                    words = line_of_token >= 0
                    labels = torch.full_like(line_of_token, IGNORE_INDEX)
                    labels[words] = chosen[line_of_token[words]].long()
                    tia_labels[i] = labels.to(device)
            if "mvlm_labels" in out:  # the paper: tokens masked for MVLM are not asked whether they are covered
                tia_labels = tia_labels.masked_fill(out["mvlm_labels"] != IGNORE_INDEX, IGNORE_INDEX)
            out["tia_labels"], out["covered_boxes"] = tia_labels, covered_boxes
            pixels = torch.stack(images)
        out["pixel_values"] = pixels
        return out

    # --- model -------------------------------------------------------------------------------------
    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The backbone's states plus ``tia_logits (B, L, 2)`` and ``tim_logits (B, 2)`` for tasks with a weight.

        MVLM's logits are computed only at its chosen positions, in ``losses``.
        """
        out = self.backbone(batch["input_ids"], batch["bbox"], batch["attention_mask"], batch.get("pixel_values"))
        if self.tia_head is not None:
            out["tia_logits"] = self.tia_head(out["text"])
        if self.tim_head is not None:
            out["tim_logits"] = self.tim_head(out["pooled"])
        return out

    def losses(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``loss`` (weighted sum) and, per task with a weight, ``loss_<task>`` and ``acc_<task>``."""
        hp = self.hparams
        out = self(inputs)
        terms: dict[str, torch.Tensor] = {}
        total = 0.0
        if hp.mvlm_weight:
            chosen = inputs["mvlm_labels"] != IGNORE_INDEX
            logits = self.mvlm_head(out["text"][chosen], self.backbone.hf.embeddings.word_embeddings.weight)
            terms["mvlm"] = _cross_entropy(logits, inputs["mvlm_labels"][chosen], out["text"])
            total = total + hp.mvlm_weight * terms["mvlm"]
        if hp.tia_weight:
            terms["tia"] = _cross_entropy(out["tia_logits"].flatten(0, 1), inputs["tia_labels"].flatten(), out["text"])
            total = total + hp.tia_weight * terms["tia"]
        if hp.tim_weight:
            terms["tim"] = _cross_entropy(out["tim_logits"], inputs["tim_labels"], out["pooled"])
            total = total + hp.tim_weight * terms["tim"]
        result = {f"loss_{name}": value for name, value in terms.items()}
        result["loss"] = total
        if not self.training:
            with torch.no_grad():
                if hp.mvlm_weight and logits.numel():
                    result["acc_mvlm"] = (logits.argmax(-1) == inputs["mvlm_labels"][chosen]).float().mean()
                for task in ("tia", "tim"):
                    labels = inputs.get(f"{task}_labels")
                    if labels is not None and (labels != IGNORE_INDEX).any():
                        kept = labels != IGNORE_INDEX
                        result[f"acc_{task}"] = (out[f"{task}_logits"].argmax(-1)[kept] == labels[kept]).float().mean()
        return result

    # --- steps -------------------------------------------------------------------------------------
    def _step(self, batch: dict[str, torch.Tensor], batch_idx: int, stage: str) -> torch.Tensor:
        inputs = self.corrupt(batch, self.generator(stage, batch_idx))
        result = self.losses(inputs)
        size = batch["input_ids"].shape[0]
        for name, value in result.items():
            self.log(f"{stage}/{name}", value, prog_bar=name == "loss", batch_size=size, sync_dist=stage != "train")
        if stage == "val":
            self.log("hp/val_loss", result["loss"], batch_size=size, sync_dist=True)
        return result["loss"]

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._step(batch, batch_idx, "train")

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._step(batch, batch_idx, "val")

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._step(batch, batch_idx, "test")


def _cross_entropy(logits: torch.Tensor, labels: torch.Tensor, anchor: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the labels that are not -100; 0 (still in the graph) when there are none.

    ``anchor`` keeps an empty loss connected to the model, so every parameter gets a (zero) gradient.
    """
    kept = labels != IGNORE_INDEX
    if not kept.any():
        return logits.sum() * 0.0 + anchor.sum() * 0.0
    return F.cross_entropy(logits[kept].float(), labels[kept])
