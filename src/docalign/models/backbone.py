"""The backbone interface every fusion model implements, and the factory that builds one from its configuration.

A backbone maps (tokens, boxes, image) to a dict of states:
``text (B, L, H)``, ``visual (B, V, H)`` or None, ``pooled (B, H)``. It never computes a loss. Task
heads, alignment encoders and losses live elsewhere and read these states.
"""

from __future__ import annotations

import torch

# ``BackboneConfig`` is defined in ``config`` (the architectures import it from there) and named here too: the
# systems import it from this module, and checkpoints pickled before the move refer to it by this path.
from .config import BackboneConfig

__all__ = ["BackboneConfig", "build_backbone"]


def build_backbone(config: BackboneConfig, vocab_size: int) -> torch.nn.Module:
    """The backbone named by ``config.arch`` for a tokenizer of ``vocab_size`` tokens."""
    if config.arch == "layoutlm":
        from .layoutlm import LayoutLMBackbone

        return LayoutLMBackbone(config, vocab_size)
    if config.arch == "layoutlmv2":
        from .layoutlmv2 import LayoutLMv2Backbone

        return LayoutLMv2Backbone(config, vocab_size)
    if config.arch == "layoutlmv3":
        from .layoutlmv3 import LayoutLMv3Backbone

        return LayoutLMv3Backbone(config, vocab_size)
    raise ValueError(f"Unknown backbone arch {config.arch!r}; known: layoutlm, layoutlmv2, layoutlmv3")
