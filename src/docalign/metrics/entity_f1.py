"""Entity-level F1 (seqeval) on whole documents, as a torchmetrics Metric that syncs across processes.

``update`` receives one record per scored token: (document, word, predicted label id, gold label id).
Windows of one long document may be scored in different batches or on different processes;
``compute`` gathers everything, drops duplicates (the distributed sampler repeats samples to even out
the ranks), rebuilds each document's word sequence in order and runs seqeval on the documents.
"""

from __future__ import annotations

from typing import Sequence

import torch
from seqeval.metrics import f1_score, precision_score, recall_score
from torchmetrics import Metric
from torchmetrics.utilities.data import dim_zero_cat


class EntityF1(Metric):
    """Micro entity precision, recall and F1 over BIO-tagged words (conlleval rules, as seqeval)."""

    full_state_update = False

    def __init__(self, label_names: Sequence[str], **kwargs) -> None:
        super().__init__(**kwargs)
        self.label_names = list(label_names)
        for name in ("doc", "word", "pred", "gold"):
            self.add_state(name, default=[], dist_reduce_fx="cat")

    def update(self, doc: torch.Tensor, word: torch.Tensor, pred: torch.Tensor, gold: torch.Tensor) -> None:
        """All arguments (N,) long: one entry per scored word."""
        self.doc.append(doc.long())
        self.word.append(word.long())
        self.pred.append(pred.long())
        self.gold.append(gold.long())

    def sequences(self) -> tuple[list[list[str]], list[list[str]]]:
        """Per document, in word order: (gold tag sequences, predicted tag sequences)."""
        # Lists of per-batch tensors on one process; one gathered tensor after a distributed sync.
        if isinstance(self.doc, list) and not self.doc:
            return [], []
        doc, word, pred, gold = (dim_zero_cat(x).cpu() for x in (self.doc, self.word, self.pred, self.gold))
        keys = doc * (int(word.max()) + 1) + word
        order = torch.argsort(keys, stable=True)
        keys, doc, pred, gold = keys[order], doc[order], pred[order], gold[order]
        first = torch.ones_like(keys, dtype=torch.bool)
        first[1:] = keys[1:] != keys[:-1]
        doc, pred, gold = doc[first].tolist(), pred[first].tolist(), gold[first].tolist()
        golds: list[list[str]] = []
        preds: list[list[str]] = []
        last = None
        for d, p, g in zip(doc, pred, gold):
            if d != last:
                golds.append([])
                preds.append([])
                last = d
            golds[-1].append(self.label_names[g])
            preds[-1].append(self.label_names[p])
        return golds, preds

    def compute(self) -> dict[str, torch.Tensor]:
        golds, preds = self.sequences()
        if not golds:
            zero = torch.tensor(0.0)
            return {"f1": zero, "precision": zero, "recall": zero}
        kwargs = {"zero_division": 0}
        return {
            "f1": torch.tensor(f1_score(golds, preds, **kwargs), dtype=torch.float32),
            "precision": torch.tensor(precision_score(golds, preds, **kwargs), dtype=torch.float32),
            "recall": torch.tensor(recall_score(golds, preds, **kwargs), dtype=torch.float32),
        }
