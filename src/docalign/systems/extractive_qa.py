"""Extractive document QA (DocVQA): answer spans of page words, scored with ANLS per question.

A linear head on the backbone's text states gives every token a start and an end logit. Training: cross-entropy
of the start logits against ``start_positions`` and of the end logits against ``end_positions`` (the
window's answer tokens, or 0 = ``[CLS]`` when the answer is not in this window; -100 = no target), averaged;
padding tokens are masked out.

Decoding (``best_spans``): per (question, window), the span (s, e) of page-word tokens (``word_ids >= 0``)
with s <= e and at most ``max_answer_words`` words maximising ``log p_start(s) + log p_end(e)``, the
log-softmax taken over the window's tokens (``[CLS]`` and the question included), so that a window that
puts its mass on ``[CLS]`` ("not here") scores its spans low and windows of one question are comparable.
The answer is the page words of the span joined by single spaces. Across the windows of one question the
best-scoring span wins; ``metrics.anls.ANLS`` does that merge after gathering every process's windows.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..conventions import IGNORE_INDEX
from ..metrics.anls import ANLS
from ..models.backbone import BackboneConfig
from .base import AlignmentFactory, DocumentSystem, OptimizerFactory


def best_spans(
    start_logits: torch.Tensor,
    end_logits: torch.Tensor,
    word_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    max_answer_words: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The best answer span of every window (see the module docstring).

    Args:
        start_logits, end_logits: (B, L) float.
        word_ids: (B, L) long, the page word of each token, -1 on special, question and padding tokens.
        attention_mask: (B, L), 1 on real tokens.
        max_answer_words: the longest answer, in words.
    Returns:
        ``score (B,)`` float (-inf for a window without page words), ``first_word (B,)`` and ``last_word (B,)``
        long (inclusive word indices of the page; -1 when there is no span).
    """
    real = attention_mask.bool()
    floor = torch.finfo(torch.float32).min
    log_start = start_logits.float().masked_fill(~real, floor).log_softmax(-1)
    log_end = end_logits.float().masked_fill(~real, floor).log_softmax(-1)
    scores = log_start.unsqueeze(2) + log_end.unsqueeze(1)  # (B, L start, L end)
    page = (word_ids >= 0) & real
    words_start, words_end = word_ids.unsqueeze(2), word_ids.unsqueeze(1)
    length = words_end - words_start + 1  # words in the span
    order = torch.ones_like(scores, dtype=torch.bool).triu()  # start token <= end token
    allowed = order & page.unsqueeze(2) & page.unsqueeze(1) & (length >= 1) & (length <= max_answer_words)
    scores = scores.masked_fill(~allowed, float("-inf"))
    best, flat = scores.flatten(1).max(dim=1)
    length_l = scores.shape[-1]
    start, end = flat // length_l, flat % length_l
    first = word_ids.gather(1, start.unsqueeze(1)).squeeze(1)
    last = word_ids.gather(1, end.unsqueeze(1)).squeeze(1)
    none = torch.isinf(best)
    return best, first.masked_fill(none, -1), last.masked_fill(none, -1)


def span_text(words: Sequence[str], first: int, last: int) -> str:
    """The page words ``first..last`` (inclusive) joined by spaces; ``""`` for no span (-1)."""
    return " ".join(words[first : last + 1]) if first >= 0 else ""


class ExtractiveQA(DocumentSystem):
    """Start/end span prediction over the page-word tokens; ANLS per question at evaluation.

    Args:
        max_answer_words: the longest answer decoding may return, in words.
        qa_dropout: dropout before the start/end head.
        anls_threshold: ANLS's tau (0.5 in DocVQA).
        label_names: accepted because the CLI links the data's label names to every model; ignored.
        See ``DocumentSystem`` for the rest (``alignment``: e.g. AETNet's, ``docalign.alignment.AETAlignment``;
        PITA and GLITC see the page words only, not the question).
    """

    hp_metrics = ("hp/val_anls", "hp/test_anls")
    monitor = ("val/anls", "max")

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
        max_answer_words: int = 20,
        qa_dropout: float = 0.1,
        anls_threshold: float = 0.5,
        optimizer: Optional[OptimizerFactory] = None,
        freeze: Optional[list[str]] = None,
        alignment: Optional[AlignmentFactory] = None,
    ) -> None:
        super().__init__(backbone, vocab_size, lr, new_lr, weight_decay, schedule, warmup_ratio, optimizer, freeze)
        if max_answer_words < 1:
            raise ValueError(f"max_answer_words must be at least 1, got {max_answer_words}")
        self.build_classifier(["start", "end"], qa_dropout, self.backbone.hidden_size)
        self.save_hyperparameters(ignore=["optimizer", "label_names", "alignment"])
        self.metrics = nn.ModuleDict({stage: ANLS(anls_threshold) for stage in ("val", "test")})
        self.finish_init(alignment)

    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """``start_logits (B, L)`` and ``end_logits (B, L)`` plus the backbone's states (and the alignment
        encoders' outputs)."""
        out = self.encode(batch)
        logits = self.classifier(self.dropout(out["text"]))
        out["start_logits"], out["end_logits"] = logits[..., 0], logits[..., 1]
        return out

    def _loss(self, out: dict[str, torch.Tensor], batch: dict[str, Any]) -> torch.Tensor:
        """Mean of the start and end cross-entropies over windows with a target; 0 (with a graph) when none has."""
        targets = batch["start_positions"], batch["end_positions"]
        if not bool((targets[0] != IGNORE_INDEX).any()):
            return out["start_logits"].sum() * 0.0
        padding = batch["attention_mask"] == 0
        losses = [
            F.cross_entropy(
                logits.float().masked_fill(padding, torch.finfo(torch.float32).min), target, ignore_index=IGNORE_INDEX
            )
            for logits, target in zip((out["start_logits"], out["end_logits"]), targets)
        ]
        return (losses[0] + losses[1]) / 2

    def task_loss(self, out: dict[str, torch.Tensor], batch: dict[str, Any]) -> torch.Tensor:
        return self._loss(out, batch)

    def decode(self, out: dict[str, torch.Tensor], batch: dict[str, Any]) -> tuple[torch.Tensor, list[str]]:
        """Per window: its best span's score (B,) and text."""
        score, first, last = best_spans(
            out["start_logits"],
            out["end_logits"],
            batch["word_ids"],
            batch["attention_mask"],
            self.hparams.max_answer_words,
        )
        texts = [span_text(words, f, e) for words, f, e in zip(batch["words"], first.tolist(), last.tolist())]
        return score, texts

    def _evaluate(self, batch: dict[str, Any], stage: str) -> None:
        out = self(batch)
        self.log_alignment_diagnostics(batch, out, stage)
        self.log(f"{stage}/loss", self._loss(out, batch), sync_dist=True, batch_size=batch["input_ids"].shape[0])
        score, texts = self.decode(out, batch)
        self.metrics[stage].update(
            batch["doc_index"], batch["question_index"], batch["window_index"], score, texts, batch["answers"]
        )

    def _log_metrics(self, stage: str) -> None:
        value = self.metrics[stage].compute()
        self.metrics[stage].reset()
        self.log(f"{stage}/anls", value, prog_bar=True)
        self.log(f"hp/{stage}_anls", value)

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> list[dict[str, Any]]:
        """Per window: ``{"doc_index", "question_index", "window_index", "question", "answer", "score"}``; a
        question's answer is that of its window with the highest score (as evaluation merges them)."""
        score, texts = self.decode(self(batch), batch)
        return [
            {
                "doc_index": int(batch["doc_index"][b]),
                "question_index": int(batch["question_index"][b]),
                "window_index": int(batch["window_index"][b]),
                "question": batch["question"][b],
                "answer": texts[b],
                "score": float(score[b]),
            }
            for b in range(len(texts))
        ]
