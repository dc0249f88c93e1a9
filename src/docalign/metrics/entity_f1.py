"""Entity-level F1 (seqeval) on whole documents, as a torchmetrics Metric that syncs across processes.

``update`` receives one record per scored token: (document, word, predicted label id, gold label id).
Windows of one long document may be scored in different batches or on different processes;
``compute`` gathers everything, drops duplicates (the distributed sampler repeats samples to even out
the ranks), rebuilds each document's word sequence in order and runs seqeval on the documents.

Segment decoding (``segment_decoding=True``, for data with segment-level boxes such as FUNSD as
LayoutLMv3 reads it): the encoder's segments (``data.encoding``: consecutive words that share one box;
``update`` receives each word's segment id from the batch's ``segment_ids``) are decoded as one entity or
none each. ``segment_vote`` gives every word of a segment the segment's most frequent predicted type
(ties: the type seen first), ``B-`` on its first word and ``I-`` on the rest. The boxes are model
inputs, not gold labels, so this is a rule that reads the gold segmentation: ``compute`` reports it apart, as
``f1_segments``, ``precision_segments`` and ``recall_segments`` ("entities given the gold segments"), beside the
standard scores. ``f1`` (with ``precision``, ``recall`` and the per-type scores) is always seqeval's entity F1 over
the per-word BIO predictions as the model made them, the score published FUNSD/CORD results report (LayoutLMv3's
FUNSD 90.29 is this one); the segment-decoded score is not comparable with those and reads high from the start
(0.477 after 2 training steps on FUNSD, 0.034 undecoded).
"""

from __future__ import annotations

from collections import Counter
from typing import Optional, Sequence

import torch
from seqeval.metrics import f1_score, precision_score, recall_score
from seqeval.metrics.sequence_labeling import get_entities
from torchmetrics import Metric
from torchmetrics.utilities.data import dim_zero_cat


def entity_types(label_names: Sequence[str]) -> list[str]:
    """The entity types of a BIO tag set, in first-seen order: ``["O", "B-q", "I-q", "B-a"]`` -> ``["q", "a"]``."""
    return list(dict.fromkeys(t.split("-", 1)[1] for t in label_names if t != "O" and "-" in t))


def per_type_scores(golds: list[list[str]], preds: list[list[str]], types: Sequence[str]) -> dict[str, float]:
    """``{"precision_<type>", "recall_<type>", "f1_<type>"}`` for every type: exact-span matches (conlleval
    rules, as seqeval's micro scores) counted per type; 0 where a type has no predicted or no gold entity."""
    gold_spans: dict[str, set] = {t: set() for t in types}
    pred_spans: dict[str, set] = {t: set() for t in types}
    for doc, (gold, pred) in enumerate(zip(golds, preds)):
        for spans, tags in ((gold_spans, gold), (pred_spans, pred)):
            for kind, start, end in get_entities(tags):
                spans.setdefault(kind, set()).add((doc, start, end))
    out = {}
    for kind in types:
        hits = len(gold_spans[kind] & pred_spans[kind])
        precision = hits / len(pred_spans[kind]) if pred_spans[kind] else 0.0
        recall = hits / len(gold_spans[kind]) if gold_spans[kind] else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out.update({f"precision_{kind}": precision, f"recall_{kind}": recall, f"f1_{kind}": f1})
    return out


def segment_vote(tags: Sequence[str], segments: Sequence[int]) -> list[str]:
    """BIO tags with one entity per run of consecutive equal ``segments`` (see the module docstring).

    >>> segment_vote(["B-q", "B-q", "I-a", "O", "B-a"], [7, 7, 7, 9, 9])
    ['B-q', 'I-q', 'I-q', 'B-a', 'I-a']
    """
    out: list[str] = []
    start = 0
    while start < len(tags):
        end = start + 1
        while end < len(tags) and segments[end] == segments[start]:
            end += 1
        kind = Counter("O" if t == "O" else t.split("-", 1)[-1] for t in tags[start:end]).most_common(1)[0][0]
        out += ["O"] * (end - start) if kind == "O" else [f"B-{kind}"] + [f"I-{kind}"] * (end - start - 1)
        start = end
    return out


class EntityF1(Metric):
    """Micro entity precision, recall and F1 over BIO-tagged words (conlleval rules, as seqeval), and per entity
    type ``precision_<type>``, ``recall_<type>``, ``f1_<type>`` (``per_type_scores``).

    Args:
        label_names: the tag set, ``O`` and ``B-``/``I-`` tags.
        segment_decoding: also score the predictions decoded per segment (the encoder's ``segment_ids``):
            ``f1_segments``, ``precision_segments``, ``recall_segments``; needs ``segment`` in ``update``.
    """

    full_state_update = False

    def __init__(self, label_names: Sequence[str], segment_decoding: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.label_names = list(label_names)
        self.segment_decoding = segment_decoding
        for name in ("doc", "word", "pred", "gold", "segment"):
            self.add_state(name, default=[], dist_reduce_fx="cat")

    def update(
        self,
        doc: torch.Tensor,
        word: torch.Tensor,
        pred: torch.Tensor,
        gold: torch.Tensor,
        segment: Optional[torch.Tensor] = None,
    ) -> None:
        """All arguments (N,) long: one entry per scored word; ``segment``: its segment id (``segment_ids``)."""
        if self.segment_decoding and segment is None:
            raise ValueError("EntityF1(segment_decoding=True) needs the words' segment ids in update()")
        self.doc.append(doc.long())
        self.word.append(word.long())
        self.pred.append(pred.long())
        self.gold.append(gold.long())
        self.segment.append(segment.long() if segment is not None else torch.zeros_like(doc, dtype=torch.long))

    def sequences(self, decoded: bool = False) -> tuple[list[list[str]], list[list[str]]]:
        """Per document, in word order: (gold tag sequences, predicted tag sequences).

        ``decoded``: the predictions after segment decoding (``segment_vote``).
        """
        # Lists of per-batch tensors on one process; one gathered tensor after a distributed sync.
        if isinstance(self.doc, list) and not self.doc:
            return [], []
        doc, word, pred, gold, segment = (
            dim_zero_cat(x).cpu() for x in (self.doc, self.word, self.pred, self.gold, self.segment)
        )
        keys = doc * (int(word.max()) + 1) + word
        order = torch.argsort(keys, stable=True)
        keys, doc, pred, gold, segment = keys[order], doc[order], pred[order], gold[order], segment[order]
        first = torch.ones_like(keys, dtype=torch.bool)
        first[1:] = keys[1:] != keys[:-1]
        doc, pred, gold, segment = (x[first].tolist() for x in (doc, pred, gold, segment))
        golds: list[list[str]] = []
        preds: list[list[str]] = []
        segments: list[list[int]] = []
        last = None
        for d, p, g, s in zip(doc, pred, gold, segment):
            if d != last:
                golds.append([])
                preds.append([])
                segments.append([])
                last = d
            golds[-1].append(self.label_names[g])
            preds[-1].append(self.label_names[p])
            segments[-1].append(s)
        if decoded:
            preds = [segment_vote(p, s) for p, s in zip(preds, segments)]
        return golds, preds

    def compute(self) -> dict[str, torch.Tensor]:
        """``f1``, ``precision``, ``recall`` and ``f1_<type>``... of the per-word predictions (seqeval, micro); with
        ``segment_decoding`` also ``f1_segments``, ``precision_segments``, ``recall_segments`` (entities given the gold
        segments)."""
        golds, preds = self.sequences()
        types = entity_types(self.label_names)
        extra = ("f1_segments", "precision_segments", "recall_segments") if self.segment_decoding else ()
        if not golds:
            zero = torch.tensor(0.0)
            names = ("f1", "precision", "recall", *per_type_scores([], [], types), *extra)
            return {k: zero for k in names}
        values = _micro_scores(golds, preds)
        for name, value in per_type_scores(golds, preds, types).items():
            values[name] = torch.tensor(value, dtype=torch.float32)
        if self.segment_decoding:
            _, decoded = self.sequences(decoded=True)
            values.update({f"{k}_segments": v for k, v in _micro_scores(golds, decoded).items()})
        return values


def _micro_scores(golds: list[list[str]], preds: list[list[str]]) -> dict[str, torch.Tensor]:
    """seqeval's micro ``f1``, ``precision``, ``recall`` (0 where undefined) as float32 tensors."""
    return {
        name: torch.tensor(fn(golds, preds, zero_division=0), dtype=torch.float32)
        for name, fn in (("f1", f1_score), ("precision", precision_score), ("recall", recall_score))
    }
