"""Copying weights between checkpoints whose parameter names differ, with a strict account.

Every warm start reports which target parameters were loaded, which are new (left at their
initialisation), which source tensors were unused and which had a different shape, so that a silent
partial load cannot happen.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable, Mapping

import torch
from torch import nn

log = logging.getLogger("docalign.models")


@dataclass
class LoadReport:
    """What a warm start did, parameter by parameter (target names)."""

    source: str
    loaded: list[str] = field(default_factory=list)
    new: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)      # source names
    mismatched: list[str] = field(default_factory=list)  # "target: source shape -> target shape"

    def summary(self) -> str:
        return (f"warm start from {self.source}: {len(self.loaded)} tensors loaded, {len(self.new)} newly "
                f"initialised, {len(self.unused)} unused, {len(self.mismatched)} with mismatched shapes")


def transfer(target: nn.Module, source_state: Mapping[str, torch.Tensor], rename: Callable[[str], str | None],
             source_name: str, adapt: Callable[[str, torch.Tensor], torch.Tensor] | None = None) -> LoadReport:
    """Copy ``source_state[k]`` into ``target``'s parameter ``rename(k)`` (None: skip k).

    ``adapt(target_name, tensor)`` may reshape a source tensor first (e.g. position-table offsets).
    Buffers are not copied: they are derived from the configuration.
    """
    report = LoadReport(source_name)
    params = dict(target.named_parameters())
    with torch.no_grad():
        for key, tensor in source_state.items():
            name = rename(key)
            if name is None or name not in params:
                report.unused.append(key)
                continue
            if adapt is not None:
                tensor = adapt(name, tensor)
            if tensor.shape != params[name].shape:
                report.mismatched.append(f"{name}: {tuple(tensor.shape)} -> {tuple(params[name].shape)}")
                continue
            params[name].copy_(tensor)
            report.loaded.append(name)
    done = set(report.loaded)
    report.new = [name for name in params if name not in done]
    log.info(report.summary())
    return report
