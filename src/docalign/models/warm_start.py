"""Copying weights between checkpoints whose parameter names differ, with a strict account.

Every warm start reports which target parameters were loaded, which are new (left at their
initialisation), which source tensors were unused and which had a different shape, so that a silent
partial load cannot happen.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

import torch
from torch import nn

from ..hub import CheckpointError

log = logging.getLogger("docalign.models")


@dataclass
class LoadReport:
    """What a warm start did, parameter by parameter (target names)."""

    source: str
    loaded: list[str] = field(default_factory=list)
    new: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)  # source names
    mismatched: list[str] = field(default_factory=list)  # "target: source shape -> target shape"

    def summary(self) -> str:
        return (
            f"warm start from {self.source}: {len(self.loaded)} tensors loaded, {len(self.new)} newly "
            f"initialised, {len(self.unused)} unused, {len(self.mismatched)} with mismatched shapes"
        )


def transfer(
    target: nn.Module,
    source_state: Mapping[str, torch.Tensor],
    rename: Callable[[str], str | None],
    source_name: str,
    adapt: Callable[[str, torch.Tensor], torch.Tensor] | None = None,
) -> LoadReport:
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


BACKBONE_PREFIX = "backbone.hf."  # where a docalign LightningModule keeps its backbone's parameters


def load_backbone_checkpoint(backbone: nn.Module, path: str) -> LoadReport:
    """Copy the ``backbone.*`` weights of a docalign Lightning checkpoint (``.ckpt``) into ``backbone``.

    ``backbone`` is any docalign backbone (its parameters live under ``backbone.hf``); report names are
    relative to ``backbone.hf``, like every other warm start. The task heads of the source (an LM head, a
    classifier) are reported unused. Raises ``CheckpointError`` naming the file when it is missing, is not
    a Lightning checkpoint, holds no backbone weights, or none of them fits this backbone (another arch
    or other sizes).
    """
    file = Path(path).expanduser()
    if not file.is_file():
        raise CheckpointError(
            f"backbone.init_from: the checkpoint {file} does not exist (expected a docalign "
            f"Lightning .ckpt, e.g. logs/<experiment>/version_N/checkpoints/last.ckpt)"
        )
    try:
        # weights_only=True: tensors and plain containers only, so a crafted file cannot run code. A docalign
        # .ckpt made outside the CLI may hold our config dataclasses in its hyper-parameters: those are allowed.
        checkpoint = load_weights_only(file)
    except Exception as err:  # noqa: BLE001 - any unreadable file gets the same clear message
        raise CheckpointError(f"backbone.init_from: {file} could not be read as a Lightning checkpoint: {err}") from err
    state = checkpoint.get("state_dict") if isinstance(checkpoint, dict) else None
    if not isinstance(state, Mapping):
        raise CheckpointError(f"backbone.init_from: {file} is not a Lightning checkpoint (no 'state_dict')")
    backbone_state = {k: v for k, v in state.items() if k.startswith(BACKBONE_PREFIX)}
    if not backbone_state:
        raise CheckpointError(
            f"backbone.init_from: {file} has no backbone weights (no '{BACKBONE_PREFIX}*' "
            f"tensors among its {len(state)}): is it a docalign checkpoint?"
        )
    report = transfer(
        backbone.hf, state, lambda k: k[len(BACKBONE_PREFIX) :] if k.startswith(BACKBONE_PREFIX) else None, str(file)
    )
    if not report.loaded:
        raise CheckpointError(
            f"backbone.init_from: none of the {len(backbone_state)} backbone tensors of {file} fits "
            f"this backbone ({len(report.mismatched)} with other shapes): was it trained with "
            f"another backbone.arch or other sizes?"
        )
    return report


def safe_config_classes() -> tuple[type, ...]:
    """The docalign dataclasses a checkpoint's hyper-parameters may hold (allowed by the weights-only loader)."""
    from .alignment import ImageEncoderConfig, TextEncoderConfig
    from .config import BackboneConfig
    from .vlcdoc import VLCDocConfig

    return (BackboneConfig, ImageEncoderConfig, TextEncoderConfig, VLCDocConfig)


def load_weights_only(path: str | Path, **kwargs) -> object:
    """``torch.load(path, weights_only=True)`` on the CPU with our config dataclasses allowed: tensors, plain
    containers and those dataclasses only, so a crafted file cannot run code. Every docalign checkpoint load uses it."""
    with torch.serialization.safe_globals(list(safe_config_classes())):
        return torch.load(path, map_location="cpu", weights_only=True, **kwargs)
