"""Token classification (entity labelling: FUNSD, CORD, SROIE) with entity-level F1 per document."""

from __future__ import annotations

from typing import Any, Iterable, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..conventions import IGNORE_INDEX
from ..metrics.entity_f1 import EntityF1, segment_vote
from ..models.backbone import BackboneConfig
from .base import AlignmentFactory, DocumentSystem, OptimizerFactory


class TokenClassification(DocumentSystem):
    """A linear tag classifier on the backbone's text states.

    Args:
        label_names: the tag set, linked from ``data.label_names``.
        classifier_dropout: dropout before the classifier.
        segment_decoding: also score entities given the gold segments (``f1_segments``, ``precision_segments``,
            ``recall_segments``): the words of a segment (the batch's ``segment_ids``: consecutive words that share
            one box, e.g. with ``data.segment_boxes: true``) get one entity, the majority of their predicted types
            (see ``docalign.metrics.entity_f1``). ``f1`` (and ``val/f1``, the checkpoint monitor) stays seqeval's
            entity F1 over the per-word BIO predictions either way, the score published results report. Leave it off
            with word-level boxes, where every word would become an entity of its own.
        See ``DocumentSystem`` for the rest (``alignment``: e.g. AETNet's, ``docalign.alignment.AETAlignment``).
    """

    hp_metrics = ("hp/val_f1", "hp/test_f1")
    monitor = ("val/f1", "max")  # the checkpoint monitor (filled into ModelCheckpoint by the CLI)

    def __init__(
        self,
        backbone: BackboneConfig = BackboneConfig(),
        label_names: Optional[list[str]] = None,
        vocab_size: int = 30522,
        lr: float = 5e-5,
        new_lr: Optional[float] = None,
        weight_decay: float = 0.01,
        schedule: str = "cosine",
        warmup_ratio: float = 0.1,
        classifier_dropout: float = 0.1,
        optimizer: Optional[OptimizerFactory] = None,
        freeze: Optional[list[str]] = None,
        segment_decoding: bool = False,
        alignment: Optional[AlignmentFactory] = None,
    ) -> None:
        super().__init__(backbone, vocab_size, lr, new_lr, weight_decay, schedule, warmup_ratio, optimizer, freeze)
        self.build_classifier(label_names, classifier_dropout, self.backbone.hidden_size)
        self.save_hyperparameters(ignore=["optimizer", "alignment"])
        self.segment_decoding = segment_decoding
        self.metrics = nn.ModuleDict({stage: EntityF1(self.label_names, segment_decoding) for stage in ("val", "test")})
        self.finish_init(alignment)

    def metric_notes(self) -> dict[str, str]:
        notes = {
            "f1": "seqeval entity F1 (micro, conlleval rules) over the per-word BIO predictions of whole documents; "
            "the checkpoint monitor is val/f1"
        }
        if self.segment_decoding:
            notes["f1_segments"] = (
                "entities given the gold segments: every word of a segment (words sharing one box) gets the "
                "segment's majority predicted type before seqeval scores it; not comparable with published F1"
            )
        return notes

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``logits (B, L, num_labels)`` plus the backbone's states (and the alignment encoders' outputs)."""
        out = self.encode(batch)
        out["logits"] = self.classifier(self.dropout(out["text"]))
        return out

    def _loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE_INDEX)

    def task_loss(self, out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self._loss(out["logits"], batch["labels"])

    def _evaluate(self, batch: dict[str, torch.Tensor], stage: str) -> None:
        out = self(batch)
        logits = out["logits"]
        self.log_alignment_diagnostics(batch, out, stage)
        self.log(
            f"{stage}/loss", self._loss(logits, batch["labels"]), sync_dist=True, batch_size=batch["input_ids"].shape[0]
        )
        scored = batch["scored"] & (batch["labels"] != IGNORE_INDEX)
        doc = batch["doc_index"].unsqueeze(1).expand_as(scored)
        self.metrics[stage].update(
            doc[scored],
            batch["word_ids"][scored],
            logits.argmax(-1)[scored],
            batch["labels"][scored],
            batch["segment_ids"][scored],
        )

    def _log_metrics(self, stage: str) -> None:
        values = self.metrics[stage].compute()
        self.metrics[stage].reset()
        for name, value in values.items():
            self.log(f"{stage}/{name}", value, prog_bar=name == "f1")
        self.log(f"hp/{stage}_f1", values["f1"])

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> list[dict[str, Any]]:
        """Per scored word: ``{"doc_index", "word_index", "label", "segment"}`` (``segment``: its segment id).

        Labels are the undecoded per-word predictions; ``document_tags`` merges the rows of all batches into
        one tag sequence per document and applies segment decoding when the model scores that way.
        """
        pred = self(batch)["logits"].argmax(-1)
        segments = batch["segment_ids"]
        rows = []
        for b, t in batch["scored"].nonzero().tolist():
            rows.append(
                {
                    "doc_index": int(batch["doc_index"][b]),
                    "word_index": int(batch["word_ids"][b, t]),
                    "label": self.label_names[int(pred[b, t])],
                    "segment": int(segments[b, t]),
                }
            )
        return rows


def document_tags(rows: Iterable[dict[str, Any]], segment_decoding: bool = False) -> dict[int, list[str]]:
    """``{doc_index: tags in word order}`` from ``predict_step`` rows (any batches, any order; a repeated word
    keeps its first row), decoded per segment as the metric scores them when ``segment_decoding``."""
    words: dict[int, dict[int, tuple[str, int]]] = {}
    for row in rows:
        words.setdefault(row["doc_index"], {}).setdefault(row["word_index"], (row["label"], row["segment"]))
    tags = {}
    for doc, by_word in sorted(words.items()):
        labels, segments = zip(*(by_word[w] for w in sorted(by_word)))
        tags[doc] = segment_vote(labels, segments) if segment_decoding else list(labels)
    return tags
