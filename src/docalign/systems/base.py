"""What every docalign LightningModule shares: the backbone, an optional alignment component, parameter groups,
optimiser, schedule, the training step and the evaluation hooks."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterable, Optional

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from transformers import get_scheduler

from ..alignment.aet import AETAlignment, upgrade_state_dict
from ..models import freezing
from ..models.backbone import BackboneConfig, build_backbone
from ..models.warm_start import load_backbone_checkpoint
from ..resume import rng_state, set_rng_state

# Checkpoint key of what an exact resume needs beyond Lightning's own state (see ``on_save_checkpoint``).
RESUME_KEY = "docalign_resume"

OptimizerFactory = Callable[[Iterable[Any]], torch.optim.Optimizer]
# An alignment component (``docalign.alignment.AETAlignment``) built by the system from the backbone's configuration,
# its width and the vocabulary size; in a config: ``alignment: {class_path: ..., init_args: {...}}``.
AlignmentFactory = Callable[[BackboneConfig, int, int], AETAlignment]


def adamw(params: Iterable[Any]) -> torch.optim.Optimizer:
    """The default optimiser: AdamW; learning rates and weight decay come from the parameter groups."""
    return torch.optim.AdamW(params, betas=(0.9, 0.999), eps=1e-8)


class DocumentSystem(L.LightningModule):
    """Backbone + task head (+ an alignment component); subclasses add the head, the task loss and the metrics.

    A subclass builds its head, then calls ``finish_init(alignment)``, which builds the alignment component (if
    any) and applies ``freeze`` (its patterns may name either). It implements ``forward`` on ``self.encode(batch)``
    (the backbone's states, with the alignment encoders' outputs added to its embeddings when there is a component)
    and ``task_loss(out, batch)``; the training step here weights and logs the task loss and the component's terms.

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
            ``["backbone.hf.embeddings.*"]``; applied by ``finish_init`` once all modules exist. Frozen parameters stay in the optimizer without gradients, so they do not change
            (not even by weight decay) and ``docalign.models.freezing.UnfreezeAfter`` can release them.
        alignment: an alignment component, e.g. ``class_path: docalign.alignment.AETAlignment`` with its loss weights
            in ``init_args`` (``--model.alignment.init_args.ditc_weight 0``); None: plain fine-tuning.
    """

    def __init__(
        self,
        backbone: BackboneConfig,
        vocab_size: int,
        lr: float,
        new_lr: Optional[float],
        weight_decay: float,
        schedule: str,
        warmup_ratio: float,
        optimizer: Optional[OptimizerFactory],
        freeze: Optional[list[str]] = None,
        backbone_module: Optional[torch.nn.Module] = None,
    ) -> None:
        super().__init__()
        self.freeze_patterns = list(freeze or [])
        self.backbone_config = backbone
        self.alignment: Optional[AETAlignment] = None
        # ``backbone_module``: a network built by the subclass (VLCDoC's towers and blocks) instead of ``backbone``'s
        self.backbone = backbone_module if backbone_module is not None else build_backbone(backbone, vocab_size)
        if backbone.init_from:  # a docalign .ckpt (e.g. pre-training): its weights replace any hub warm start
            self.backbone.load_report = load_backbone_checkpoint(self.backbone, backbone.init_from)
        report = self.backbone.load_report
        self.warm_started = {f"backbone.hf.{n}" for n in report.loaded} if report else set()
        self.optimizer_factory = optimizer or adamw
        # The alignment update of the last training step until ``on_train_batch_end`` has applied it: a checkpoint
        # written by a callback's ``on_train_batch_end`` (which runs first) carries it (``on_save_checkpoint``).
        self._unapplied_alignment: Optional[dict[str, Any]] = None
        self._resume_state: Optional[dict[str, Any]] = None

    def build_classifier(self, label_names: Optional[list[str]], dropout: float, width: int) -> None:
        """``self.label_names``, ``self.dropout`` and ``self.classifier`` (width -> one logit per label)."""
        if not label_names:
            raise ValueError("model.label_names is empty: it is linked from the DataModule's label_names")
        self.label_names = list(label_names)
        self.dropout = torch.nn.Dropout(dropout)
        self.classifier = torch.nn.Linear(width, len(self.label_names))

    def finish_init(self, alignment: Optional[AlignmentFactory]) -> None:
        """Build the alignment component (after the head, so a seed gives the same weights as before it existed),
        record its arguments in the hyperparameters, then apply ``freeze``. Call last in a subclass's ``__init__``,
        after ``save_hyperparameters(ignore=["optimizer", "alignment"])``."""
        if alignment is not None:
            self.alignment = alignment(self.backbone_config, self.backbone.hidden_size, self.hparams.vocab_size)
            self.warm_started |= {f"alignment.{n}" for n in self.alignment.warm_started}
            cls = type(self.alignment)
            self.hparams["alignment"] = {
                "class_path": f"{cls.__module__}.{cls.__qualname__}",
                "init_args": dict(self.alignment.config),
            }
        if self.freeze_patterns:
            freezing.freeze(self, self.freeze_patterns)

    def encode(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """The backbone's states for a batch; with an alignment component, its encoders' outputs are added to the
        backbone's input embeddings and returned beside them (``align_image``, ``align_text``). No side effects."""
        if self.alignment is None:
            return self.backbone(batch["input_ids"], batch["bbox"], batch["attention_mask"], batch.get("pixel_values"))
        extra = self.alignment.fusion_inputs(batch)
        out = self.backbone(
            batch["input_ids"],
            batch["bbox"],
            batch["attention_mask"],
            batch["pixel_values"],
            text_extra=extra["text_extra"],
            visual_extra=extra["visual_extra"],
        )
        out["align_image"], out["align_text"] = extra["align_image"], extra["align_text"]
        return out

    def task_loss(self, out: dict[str, torch.Tensor], batch: dict[str, Any]) -> torch.Tensor:
        """The task's loss from ``forward``'s output (implemented by the subclass)."""
        raise NotImplementedError(f"{type(self).__name__} must implement task_loss or its own training_step")

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Any:
        """The task loss (``train/loss``); with an alignment component, every weighted term is logged
        (``train/loss_task``, ``train/loss_ditc`` ...) and this step's key features go to ``on_train_batch_end``
        in the returned dict (``alignment_keys``)."""
        out = self(batch)
        size = batch["input_ids"].shape[0]
        if self.alignment is None:
            loss = self.task_loss(out, batch)
            self.log("train/loss", loss, prog_bar=True, batch_size=size)
            return loss
        terms = {"loss_task": self.task_loss(out, batch)} if "loss_task" in self.alignment.weights else {}
        alignment_terms, keys = self.alignment.loss_terms(batch, out)
        terms.update(alignment_terms)
        self._unapplied_alignment = {"ema_step": self.alignment._ema_step, "keys": keys}
        loss = self.alignment.total(terms)
        for name, value in terms.items():
            self.log(f"train/{name}", value, batch_size=size)
        self.log("train/loss", loss, prog_bar=True, batch_size=size)
        if self.alignment.temperature is not None:
            self.log("train/temperature", self.alignment.temperature().detach(), batch_size=size)
        self.log_alignment_diagnostics(batch, out, "train", terms)
        return {"loss": loss, "alignment_keys": keys}

    def log_alignment_diagnostics(
        self, batch: dict[str, Any], out: dict[str, torch.Tensor], stage: str, terms: Optional[dict] = None
    ) -> None:
        """The alignment component's collapse diagnostics as ``<stage>/diag/<name>`` (nothing without a component):
        every training step (``terms``: this step's) and every validation batch (subclasses' ``_evaluate`` call it
        with ``forward``'s output; epoch means). Per process, not synchronised under DDP: a key can be missing on one
        rank (a batch without two documents), and a synchronised key missing on one rank would hang the others. See
        ``AETAlignment.diagnostics``."""
        if self.alignment is None or stage not in ("train", "val"):
            return
        size = batch["input_ids"].shape[0]
        for name, value in self.alignment.diagnostics(batch, out, terms).items():
            self.log(f"{stage}/diag/{name}", value, batch_size=size)

    def on_train_start(self) -> None:
        """Short runs log: ``log_every_n_steps`` above the run's optimiser steps becomes 1. When resuming, the
        alignment update the checkpoint was written before is applied, then the generators' states restored."""
        trainer = self.trainer
        steps = trainer.max_steps if trainer.max_steps > 0 else trainer.estimated_stepping_batches
        if trainer.log_every_n_steps > steps:
            self.print(f"log_every_n_steps {trainer.log_every_n_steps} > {int(steps)} steps: logging every step")
            trainer.log_every_n_steps = 1
        if self.alignment is not None:
            self.alignment.on_train_start(trainer.global_step)
        resume, self._resume_state = self._resume_state, None
        if resume is None:
            return
        pending = resume.get("alignment_pending")
        if pending is not None and self.alignment is not None:
            keys = pending["keys"]
            if keys is not None:
                keys = {k: (v.to(self.device) if isinstance(v, torch.Tensor) else v) for k, v in keys.items()}
            self.alignment._ema_step = int(pending["ema_step"])
            self.alignment.after_optimizer_step(trainer.global_step, keys)
        self._load_loader_states(resume.get("loaders") or [])
        if resume.get("rng") is not None:
            set_rng_state(resume["rng"])

    def _load_loader_states(self, states: list[dict[str, Any]]) -> None:
        """The train loaders' saved positions (``docalign.data.samplers.ResumableLoader``), given again here:
        Lightning applies them only when it builds the train loader after restoring the loops, but
        ``configure_optimizers`` (``estimated_stepping_batches``) has built it before, so they would be dropped
        (Lightning-AI/pytorch-lightning#20550, open in Lightning 2.6)."""
        loaders = self.trainer.train_dataloader
        loaders = list(loaders.values()) if isinstance(loaders, dict) else loaders
        stateful = [
            x for x in (loaders if isinstance(loaders, (list, tuple)) else [loaders]) if hasattr(x, "state_dict")
        ]
        if len(stateful) == len(states):
            for loader, state in zip(stateful, states):
                loader.load_state_dict(state)

    def on_train_batch_end(self, outputs: Any, batch: dict[str, Any], batch_idx: int) -> None:
        """After the optimiser step: the alignment component's EMA, temperature clamp and queue update."""
        if self.alignment is not None:
            keys = outputs.get("alignment_keys") if isinstance(outputs, dict) else None
            self.alignment.after_optimizer_step(self.trainer.global_step, keys)
        self._unapplied_alignment = None

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """What Lightning does not save for an exact resume (``docalign.resume``): the generators' states and, when
        the checkpoint is written between a training step and its alignment update, that update's inputs. (With
        DDP, rank 0's: the other ranks' generators are not restored exactly.)"""
        state: dict[str, Any] = {"rng": rng_state()}
        if self._unapplied_alignment is not None:
            keys = self._unapplied_alignment["keys"]
            state["alignment_pending"] = {
                "ema_step": int(self._unapplied_alignment["ema_step"]),
                "keys": None
                if keys is None
                else {k: (v.detach().cpu() if isinstance(v, torch.Tensor) else v) for k, v in keys.items()},
            }
        checkpoint[RESUME_KEY] = state

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Checkpoints of the old AET subclasses load: their state-dict keys are mapped onto the component's. The
        resume state is kept for ``on_train_start`` (used only when fitting resumes)."""
        checkpoint["state_dict"] = upgrade_state_dict(checkpoint["state_dict"])
        self._resume_state = checkpoint.get(RESUME_KEY)
        if self._resume_state is not None:
            fit_loop = (checkpoint.get("loops") or {}).get("fit_loop") or {}
            self._resume_state["loaders"] = (fit_loop.get("state_dict") or {}).get("combined_loader")

    def param_groups(self) -> list[dict[str, Any]]:
        hp = self.hparams
        ema = {id(p) for p in self.alignment.ema_parameters()} if self.alignment is not None else set()
        # The alignment encoders' own learning rate (``AETAlignment.encoder_lr``), when set: a third kind of group.
        encoder_lr = getattr(self.alignment, "encoder_lr", None)
        groups: dict[tuple[int, bool], list[torch.nn.Parameter]] = {}
        for name, param in self.named_parameters():  # frozen ones too: see models/freezing.py
            if id(param) in ema:  # EMA-updated, never optimised
                continue
            no_decay = param.ndim < 2 or "LayerNorm" in name or name.endswith(".bias")
            kind = (
                2
                if encoder_lr is not None and name.startswith("alignment.encoders.")
                else int(name in self.warm_started)
            )
            groups.setdefault((kind, no_decay), []).append(param)
        lrs = {0: hp.new_lr or hp.lr, 1: hp.lr, 2: encoder_lr}
        return [
            {"params": params, "lr": lrs[kind], "weight_decay": 0.0 if no_decay else hp.weight_decay}
            for (kind, no_decay), params in sorted(groups.items())
        ]

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = self.optimizer_factory(self.param_groups())
        total = int(self.trainer.estimated_stepping_batches)
        scheduler = get_scheduler(
            self.hparams.schedule,
            optimizer,
            num_warmup_steps=int(self.hparams.warmup_ratio * total),
            num_training_steps=total,
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # --- TensorBoard HParams tab -------------------------------------------------------------------
    hp_metrics: tuple[str, ...] = ()
    # The checkpoint monitor and its mode: the CLI fills them into a ModelCheckpoint whose ``monitor`` is unset.
    monitor: tuple[str, str] = ("val/loss", "min")

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
                params = {
                    k: (dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v)
                    for k, v in self.hparams.items()
                    if k != "optimizer"
                }
                logger.log_hyperparams(params, {name: float("nan") for name in self.hp_metrics})
                notes = self.metric_notes()
                if notes:  # TensorBoard's Text tab: what each logged metric measures
                    text = "\n".join(f"- `{{val,test}}/{name}`: {note}" for name, note in notes.items())
                    logger.experiment.add_text("metrics", text, global_step=self.trainer.global_step)

    def metric_notes(self) -> dict[str, str]:
        """``{metric name: what it measures}``, written to TensorBoard's Text tab at the start of a fit."""
        return {}

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
