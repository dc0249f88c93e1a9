"""Document-level classification accuracy: each document scored once, whatever its number of windows.

A long document is cut into several windows (``data.encoding``), each classified on its own. ``update``
receives one record per window (document index, the batch's ``window_index``, logits, gold class);
``compute`` gathers the records of every process, drops duplicated windows (the distributed sampler repeats
samples to even out the ranks: a repeated window has the same document index *and* window index), averages
the logits of each document's windows, takes the argmax and scores it with torchmetrics'
``multiclass_accuracy`` (micro: the fraction of documents classified right).
"""

from __future__ import annotations

import torch
from torchmetrics import Metric
from torchmetrics.functional.classification import multiclass_accuracy
from torchmetrics.utilities.data import dim_zero_cat

from ..conventions import IGNORE_INDEX


class DocumentAccuracy(Metric):
    """Micro accuracy over documents (window logits averaged per document); synced across processes."""

    full_state_update = False

    def __init__(self, num_classes: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.num_classes = num_classes
        for name in ("doc", "window", "logits", "gold"):
            self.add_state(name, default=[], dist_reduce_fx="cat")

    def update(self, doc: torch.Tensor, window: torch.Tensor, logits: torch.Tensor, gold: torch.Tensor) -> None:
        """``doc``, ``window``, ``gold``: (N,) long, one entry per window; ``logits``: (N, C)."""
        self.doc.append(doc.long())
        self.window.append(window.long())
        self.logits.append(logits.detach().float())
        self.gold.append(gold.long())

    def documents(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(doc (D,), mean logits (D, C), gold (D,))`` per distinct document, sorted by document index."""
        if isinstance(self.doc, list) and not self.doc:  # nothing seen (lists before a sync, tensors after)
            return (
                torch.zeros(0, dtype=torch.long),
                torch.zeros(0, self.num_classes),
                torch.zeros(0, dtype=torch.long),
            )
        doc, window, logits, gold = (dim_zero_cat(x) for x in (self.doc, self.window, self.logits, self.gold))
        # Drop repeated windows: keep the first record of each (doc, window) pair.
        pairs, inverse = torch.unique(torch.stack([doc, window], dim=1), dim=0, return_inverse=True)
        positions = torch.arange(len(doc), device=doc.device)
        first = torch.full((len(pairs),), len(doc), dtype=torch.long, device=doc.device)
        first = first.scatter_reduce(0, inverse, positions, reduce="amin")
        doc, logits, gold = doc[first], logits[first], gold[first]
        # Average the windows of each document.
        docs, inverse = torch.unique(doc, return_inverse=True)
        sums = torch.zeros(len(docs), logits.shape[1], device=logits.device).index_add_(0, inverse, logits)
        counts = torch.bincount(inverse, minlength=len(docs)).clamp(min=1).unsqueeze(1)
        golds = torch.zeros(len(docs), dtype=torch.long, device=gold.device).scatter_(0, inverse, gold)
        return docs, sums / counts, golds

    def compute(self) -> torch.Tensor:
        _, logits, gold = self.documents()
        if not bool((gold != IGNORE_INDEX).any()):
            return torch.tensor(0.0)
        return multiclass_accuracy(
            logits.argmax(-1), gold, num_classes=self.num_classes, average="micro", ignore_index=IGNORE_INDEX
        )


def confusion_matrix(pred: torch.Tensor, gold: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(C, C) long counts, rows = gold class, columns = predicted class; entries with gold -100 are left out."""
    keep = gold != IGNORE_INDEX
    index = gold[keep].long() * num_classes + pred[keep].long()
    return torch.bincount(index, minlength=num_classes * num_classes).view(num_classes, num_classes)


def macro_f1(confusion: torch.Tensor) -> torch.Tensor:
    """Macro-averaged F1 over the classes that occur (in the gold labels or the predictions), from a confusion
    matrix: classes absent from both are left out rather than scored 0 (an evaluation split may not hold every
    class of the label set, e.g. a small split of RVL-CDIP's 16)."""
    tp = confusion.diag().double()
    fp, fn = confusion.sum(0).double() - tp, confusion.sum(1).double() - tp
    seen = (tp + fp + fn) > 0
    if not bool(seen.any()):
        return torch.tensor(0.0)
    return (2 * tp[seen] / (2 * tp[seen] + fp[seen] + fn[seen])).mean().float()


class DocumentClassificationMetrics(DocumentAccuracy):
    """``DocumentAccuracy``'s documents, scored three ways: ``{"acc", "macro_f1", "confusion" (C, C)}`` (documents,
    window logits averaged; synced across processes)."""

    def compute(self) -> dict[str, torch.Tensor]:  # type: ignore[override]
        _, logits, gold = self.documents()
        confusion = confusion_matrix(logits.argmax(-1), gold, self.num_classes)
        total = confusion.sum()
        acc = confusion.diag().sum().float() / total if total > 0 else torch.tensor(0.0)
        return {"acc": acc, "macro_f1": macro_f1(confusion), "confusion": confusion}
