"""Loading pre-trained model weights (``transformers``' ``AutoModel``) with clear errors.

Names are resolved by ``docalign.hub`` (``minilm``, a local folder or a hub id), which also holds
``CheckpointError`` and the tokenizer loader.
"""

from __future__ import annotations

from typing import Any

from ..hub import CheckpointError, hub_failure, resolve_checkpoint


def load_pretrained_model(name: str, **config_overrides: Any) -> Any:
    """``AutoModel.from_pretrained`` with a clear error; returns the transformers model in training mode, as any
    freshly built module (``from_pretrained`` returns it in eval mode, and Lightning keeps a submodule's mode: a model
    kept as a submodule would train with dropout off). ``config_overrides`` replace attributes of the checkpoint's
    config (e.g. ``attention_probs_dropout_prob``)."""
    from transformers import AutoModel

    path = resolve_checkpoint(name)
    try:
        model = AutoModel.from_pretrained(path, **config_overrides)
    except (OSError, ValueError) as err:
        raise hub_failure(name, "checkpoint", err) from err
    return model.train()


def check_vocab(tokenizer_size: int, checkpoint_rows: int, checkpoint: str) -> int:
    """``tokenizer_size`` if it equals the checkpoint's word-embedding rows, else a ``CheckpointError``."""
    if tokenizer_size != checkpoint_rows:
        raise CheckpointError(
            f"The tokenizer has {tokenizer_size} tokens but the word embeddings of '{checkpoint}' have "
            f"{checkpoint_rows} rows: data.tokenizer and the backbone's checkpoint must be the same model family."
        )
    return tokenizer_size


def load_pretrained_arch(name: str, model_type: str, vocab_size: int) -> Any:
    """A complete checkpoint of architecture ``model_type`` whose vocabulary matches the tokenizer's."""
    source = load_pretrained_model(name)
    if source.config.model_type != model_type:
        raise CheckpointError(
            f"'{name}' is a {source.config.model_type} checkpoint, not {model_type}; "
            f"use backbone.text_init to warm-start from a text-only model"
        )
    check_vocab(vocab_size, source.config.vocab_size, name)
    return source
