"""Fault injection for the resume tests: a callback that kills its own process (SIGKILL: no cleanup, no handler)."""

from __future__ import annotations

import os
import signal

from lightning.pytorch.callbacks import Callback


class KillAtStep(Callback):
    """SIGKILL this process when the batch after optimiser step ``step`` starts (its checkpoints are written)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


class SaveFinalState(Callback):
    """At the end of fit, write the module's full state dict (weights, momentum copies, queues) to ``path``."""

    def __init__(self, path: str) -> None:
        self.path = path

    def on_fit_end(self, trainer, pl_module) -> None:
        import torch

        torch.save({k: v.detach().cpu().clone() for k, v in pl_module.state_dict().items()}, self.path)
