"""What every docalign LightningModule shares: the backbone, parameter groups, optimiser, schedule."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterable, Optional

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from transformers import get_scheduler

from ..models.backbone import BackboneConfig, build_backbone
from ..models import freezing
from ..models.warm_start import load_backbone_checkpoint

OptimizerFactory = Callable[[Iterable[Any]], torch.optim.Optimizer]


def adamw(params: Iterable[Any]) -> torch.optim.Optimizer:
    """The default optimiser: AdamW; learning rates and weight decay come from the parameter groups."""
    return torch.optim.AdamW(params, betas=(0.9, 0.999), eps=1e-8)


class DocumentSystem(L.LightningModule):
    """Backbone + task head; subclasses add the head, the steps and the metrics.

    Evaluation: a subclass implements ``_evaluate(batch, stage)`` (one batch into ``stage``'s metric) and
    ``_log_metrics(stage)`` (compute, log and reset it; default: nothing) for ``stage`` in ``val``/``test``; the Lightning
    hooks that call them are here (a subclass with other needs overrides the hooks instead).

    Args:
        backbone: how to build the fusion backbone (``BackboneConfig``).
        vocab_size: the tokenizer's size, linked from ``data.vocab_size``.
        lr: learning rate of warm-started (pre-trained) parameters.
        new_lr: learning rate of newly initialised parameters (heads, layout and patch embeddings,
            attention bias tables); default ``lr``.
        weight_decay: decoupled weight decay, not applied to biases and normalisation weights.
        schedule: a ``transformers.get_scheduler`` name (``cosine``, ``linear``, ``constant_with_warmup``...).
        warmup_ratio: fraction of the optimisation steps spent warming up linearly.
        optimizer: a callable taking parameter groups (LightningCLI: ``class_path: torch.optim.AdamW``
            with ``init_args``); group learning rates and weight decay override its defaults.
        freeze: parameter-name patterns (globs, or ``re:`` regular expressions) to freeze, e.g.
            ``["backbone.hf.embeddings.*"]``; subclasses call ``apply_freeze()`` once all their modules
            exist. Frozen parameters stay in the optimizer without gradients, so they do not change
            (not even by weight decay) and ``docalign.models.freezing.UnfreezeAfter`` can release them.
    """

    def __init__(self, backbone: BackboneConfig, vocab_size: int, lr: float, new_lr: Optional[float],
                 weight_decay: float, schedule: str, warmup_ratio: float,
                 optimizer: Optional[OptimizerFactory], freeze: Optional[list[str]] = None) -> None:
        super().__init__()
        self.freeze_patterns = list(freeze or [])
        self.backbone = build_backbone(backbone, vocab_size)
        if backbone.init_from:  # a docalign .ckpt (e.g. pre-training): its weights replace any hub warm start
            self.backbone.load_report = load_backbone_checkpoint(self.backbone, backbone.init_from)
        report = self.backbone.load_report
        self.warm_started = {f"backbone.hf.{n}" for n in report.loaded} if report else set()
        self.optimizer_factory = optimizer or adamw

    def build_classifier(self, label_names: Optional[list[str]], dropout: float, width: int) -> None:
        """``self.label_names``, ``self.dropout`` and ``self.classifier`` (width -> one logit per label)."""
        if not label_names:
            raise ValueError("model.label_names is empty: it is linked from the DataModule's label_names")
        self.label_names = list(label_names)
        self.dropout = torch.nn.Dropout(dropout)
        self.classifier = torch.nn.Linear(width, len(self.label_names))

    def apply_freeze(self) -> None:
        """Freeze the parameters named by ``freeze`` (call at the end of a subclass's ``__init__``)."""
        if self.freeze_patterns:
            freezing.freeze(self, self.freeze_patterns)

    def param_groups(self) -> list[dict[str, Any]]:
        hp = self.hparams
        groups: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {}
        for name, param in self.named_parameters():  # frozen ones too: see models/freezing.py
            no_decay = param.ndim < 2 or "LayerNorm" in name or name.endswith(".bias")
            groups.setdefault((name in self.warm_started, no_decay), []).append(param)
        return [
            {"params": params, "lr": hp.lr if warm else (hp.new_lr or hp.lr),
             "weight_decay": 0.0 if no_decay else hp.weight_decay}
            for (warm, no_decay), params in sorted(groups.items())
        ]

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = self.optimizer_factory(self.param_groups())
        total = int(self.trainer.estimated_stepping_batches)
        scheduler = get_scheduler(self.hparams.schedule, optimizer, num_warmup_steps=int(self.hparams.warmup_ratio * total),
                                  num_training_steps=total)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # --- TensorBoard HParams tab -------------------------------------------------------------------
    hp_metrics: tuple[str, ...] = ()

    def on_fit_start(self) -> None:
        n_train = sum(p.numel() for p in self.parameters() if p.requires_grad)
        self.print(f"parameters: {sum(p.numel() for p in self.parameters()):,} ({n_train:,} trainable)")
        report = self.backbone.load_report
        if report is not None:
            self.print(report.summary())
            if report.mismatched:
                self.print("  mismatched shapes (left at their initialisation): " + ", ".join(report.mismatched))
        for logger in self.loggers:
            if isinstance(logger, TensorBoardLogger):
                params = {k: (dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v)
                          for k, v in self.hparams.items() if k != "optimizer"}
                logger.log_hyperparams(params, {name: float("nan") for name in self.hp_metrics})

    def _evaluate(self, batch: dict[str, Any], stage: str) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement _evaluate or its own evaluation hooks")

    def _log_metrics(self, stage: str) -> None:
        """Nothing by default (systems that log per step, like the pre-training system, need no epoch-end work)."""

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def on_validation_epoch_end(self) -> None:
        self._log_metrics("val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def on_test_epoch_end(self) -> None:
        self._log_metrics("test")
