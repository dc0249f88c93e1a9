"""Freezing parameters by name pattern, and a callback that unfreezes them at the start of epoch N.

Patterns are globs on parameter names (``backbone.hf.embeddings.*``, ``*.rel_pos_*``) or, prefixed
with ``re:``, regular expressions matched from the start of the name (``re:backbone\\.hf\\.encoder\\.layer\\.[0-2]\\.``).
A pattern that matches no parameter is an error: a typo must not silently train everything.

Why every parameter stays in the optimizer, frozen or not: torch's optimizers (AdamW's for-loop,
foreach and fused versions alike) skip a parameter whose ``.grad`` is None, weight decay included,
and a parameter with ``requires_grad=False`` never gets a gradient. So a frozen parameter stays
bit-identical through any number of steps, and unfreezing is just ``requires_grad=True``: no
optimizer surgery, and the learning-rate schedule already covers it. The alternative, adding a
parameter group at epoch N, leaves that group outside the scheduler (``LambdaLR`` fixes its
``base_lrs`` at creation). Two traps remain and are handled here:
- a *gradient of zeros* is not "no gradient": AdamW would still decay the weight. ``freeze`` sets
  ``.grad`` to None, so a parameter frozen after it trained carries no stale gradient either.
- DDP registers only the parameters that require a gradient when it wraps the model, so one that is
  unfrozen later would never be all-reduced and the replicas would drift apart. With more than one
  process, ``UnfreezeAfter`` therefore keeps its parameters ``requires_grad=True`` from ``setup`` (which
  runs before the wrap) and drops their gradients before every optimizer step until epoch N: the same
  result, at the cost of computing gradients that are thrown away.
BatchNorm running statistics are buffers, not parameters: a frozen BatchNorm still updates them in
train mode (LayoutLMv2's CNN defaults to GroupNorm, which has none).
"""

from __future__ import annotations

import fnmatch
import logging
import re
from typing import Iterable, Optional

import lightning as L
from lightning.pytorch.utilities import rank_zero_info
from torch import nn

log = logging.getLogger("docalign.models")


def match_parameters(module: nn.Module, patterns: Iterable[str]) -> dict[str, nn.Parameter]:
    """The parameters of ``module`` whose names match any pattern; raises if a pattern matches none."""
    named = dict(module.named_parameters())
    found: dict[str, nn.Parameter] = {}
    for pattern in patterns:
        if pattern.startswith("re:"):
            regex = re.compile(pattern[3:])
            hits = [n for n in named if regex.match(n)]
        else:
            hits = fnmatch.filter(named, pattern)
        if not hits:
            example = next(iter(named), "")
            raise ValueError(
                f"Freeze pattern {pattern!r} matches no parameter of {type(module).__name__} "
                f"(names look like {example!r}; globs use *, regular expressions start with 're:')"
            )
        found.update((n, named[n]) for n in hits)
    return found


def count_parameters(module: nn.Module) -> tuple[int, int]:
    """(trainable, total) numbers of parameter elements."""
    total = sum(p.numel() for p in module.parameters())
    return sum(p.numel() for p in module.parameters() if p.requires_grad), total


def _log_counts(module: nn.Module, what: str, names: list[str]) -> None:
    trainable, total = count_parameters(module)
    log.info("%s %d tensors; trainable parameters: %s of %s", what, len(names), f"{trainable:,}", f"{total:,}")


def freeze(module: nn.Module, patterns: Iterable[str]) -> list[str]:
    """``requires_grad=False`` and no gradient for the matching parameters; returns their names."""
    params = match_parameters(module, patterns)
    for param in params.values():
        param.requires_grad_(False)
        param.grad = None
    _log_counts(module, "froze", list(params))
    return list(params)


def unfreeze(module: nn.Module, patterns: Iterable[str]) -> list[str]:
    """``requires_grad=True`` for the matching parameters; returns their names."""
    params = match_parameters(module, patterns)
    for param in params.values():
        param.requires_grad_(True)
    _log_counts(module, "unfroze", list(params))
    return list(params)


class UnfreezeAfter(L.Callback):
    """Keep the parameters named by ``patterns`` frozen for epochs ``0 .. epoch-1``; train them from ``epoch`` on.

    The parameters are frozen at ``setup`` (whether or not the model froze them already) and
    unfrozen at the start of epoch ``epoch`` (also when resuming past it). The number of trainable
    parameter elements is logged as ``train/trainable_params`` every epoch.

    Args:
        patterns: globs or ``re:`` regular expressions on the LightningModule's parameter names.
        epoch: the first epoch (0-based) in which they train.
        ddp_safe: drop gradients instead of toggling ``requires_grad`` (see the module docstring);
            None = when the trainer runs more than one process.
    """

    def __init__(self, patterns: list[str], epoch: int, ddp_safe: Optional[bool] = None) -> None:
        super().__init__()
        self.patterns = list(patterns)
        self.epoch = epoch
        self.ddp_safe = ddp_safe
        self.params: dict[str, nn.Parameter] = {}
        self.masking = False
        self.unfrozen = False

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        self.params = match_parameters(pl_module, self.patterns)
        self.masking = self.ddp_safe if self.ddp_safe is not None else trainer.world_size > 1
        self.unfrozen = False
        for param in self.params.values():
            param.requires_grad_(self.masking)  # masking: stays registered with DDP, gradients dropped
            param.grad = None

    def trainable(self, pl_module: L.LightningModule) -> int:
        masked = {id(p) for p in self.params.values()} if self.masking and not self.unfrozen else set()
        return sum(p.numel() for p in pl_module.parameters() if p.requires_grad and id(p) not in masked)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.unfrozen and trainer.current_epoch >= self.epoch:
            for param in self.params.values():
                param.requires_grad_(True)
            self.unfrozen = True
            rank_zero_info(
                f"UnfreezeAfter: epoch {trainer.current_epoch}: training {len(self.params)} tensors "
                f"({sum(p.numel() for p in self.params.values()):,} parameters) named by {self.patterns}"
            )
        pl_module.log("train/trainable_params", float(self.trainable(pl_module)), on_step=False, on_epoch=True)

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer) -> None:
        if self.masking and not self.unfrozen:
            for param in self.params.values():
                param.grad = None
