"""Document classification (RVL-CDIP, Tobacco-3482) with document-level accuracy.

Training classifies every window of a document on its own (a window is a sample; its target is its
document's class). Evaluation scores each *document* once: the logits of its windows are averaged, then
the argmax is compared with the class (``metrics.doc_accuracy``), so a long document split into three
windows counts as one document, not three samples.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn

from ..conventions import IGNORE_INDEX
from ..metrics.confusion_image import confusion_image
from ..metrics.doc_accuracy import DocumentClassificationMetrics
from ..models.backbone import BackboneConfig
from .base import AlignmentFactory, DocumentSystem, OptimizerFactory


class DocumentClassification(DocumentSystem):
    """A linear classifier on the backbone's pooled state (``pooled (B, H)``: LayoutLMv3's text CLS state,
    the BERT pooler for v1/v2).

    Args:
        label_names: the document classes, linked from ``data.label_names``.
        classifier_dropout: dropout before the classifier.
        See ``DocumentSystem`` for the rest (``alignment``: e.g. AETNet's, ``docalign.alignment.AETAlignment``).
    """

    hp_metrics = ("hp/val_acc", "hp/test_acc", "hp/val_macro_f1", "hp/test_macro_f1")
    monitor = ("val/acc", "max")

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
        alignment: Optional[AlignmentFactory] = None,
    ) -> None:
        super().__init__(backbone, vocab_size, lr, new_lr, weight_decay, schedule, warmup_ratio, optimizer, freeze)
        self.build_classifier(label_names, classifier_dropout, self.backbone.hidden_size)
        self.save_hyperparameters(ignore=["optimizer", "alignment"])
        self.metrics = nn.ModuleDict(
            {stage: DocumentClassificationMetrics(len(self.label_names)) for stage in ("val", "test")}
        )
        self.finish_init(alignment)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``logits (B, num_classes)``, one row per window, plus the backbone's states (and the alignment
        encoders' outputs)."""
        out = self.encode(batch)
        out["logits"] = self.classifier(self.dropout(out["pooled"]))
        return out

    def _loss(self, logits: torch.Tensor, doc_label: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of window logits (B, C) against their document's class (B,); -100 is ignored.
        A batch with no labelled window gives 0 (with a graph), not NaN."""
        if not bool((doc_label != IGNORE_INDEX).any()):
            return logits.sum() * 0.0
        return F.cross_entropy(logits.float(), doc_label, ignore_index=IGNORE_INDEX)

    def task_loss(self, out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self._loss(out["logits"], batch["doc_label"])

    def _evaluate(self, batch: dict[str, torch.Tensor], stage: str) -> None:
        out = self(batch)
        logits = out["logits"]
        self.log_alignment_diagnostics(batch, out, stage)
        self.log(
            f"{stage}/loss",
            self._loss(logits, batch["doc_label"]),
            sync_dist=True,
            batch_size=batch["input_ids"].shape[0],
        )
        self.metrics[stage].update(batch["doc_index"], batch["window_index"], logits, batch["doc_label"])

    def _log_metrics(self, stage: str) -> None:
        values = self.metrics[stage].compute()
        self.metrics[stage].reset()
        self.log(f"{stage}/acc", values["acc"], prog_bar=True)
        self.log(f"{stage}/macro_f1", values["macro_f1"])
        self.log(f"hp/{stage}_acc", values["acc"])
        self.log(f"hp/{stage}_macro_f1", values["macro_f1"])
        if self.trainer.is_global_zero and not self.trainer.sanity_checking:
            for logger in self.loggers:
                if isinstance(logger, TensorBoardLogger):
                    logger.experiment.add_image(
                        f"{stage}/confusion_matrix", confusion_image(values["confusion"].cpu()), self.global_step
                    )

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> list[dict[str, Any]]:
        """Per window: ``{"doc_index", "window", "logits"}`` (``window``: its ``window_index``; average a
        document's windows to classify it, as evaluation does) and ``label``, the window's own argmax class."""
        logits = self(batch)["logits"]
        windows = batch["window_index"]
        return [
            {
                "doc_index": int(batch["doc_index"][b]),
                "window": int(windows[b]),
                "logits": logits[b].tolist(),
                "label": self.label_names[int(logits[b].argmax())],
            }
            for b in range(logits.shape[0])
        ]
