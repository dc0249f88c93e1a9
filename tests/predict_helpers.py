"""Tiny real systems and pages for the predict and export tests (no training needed: built, saved as a Lightning
checkpoint the way ``docalign fit`` saves one, then loaded back through the code under test)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

TINY_BACKBONE = dict(text_init=None, hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, image_size=32)
TINY_DATA = {"tokenizer": "minilm", "max_length": 64, "stride": 16, "image_size": 32, "max_question_tokens": 16}
LABELS = ["O", "B-question", "I-question", "B-answer", "I-answer"]


def tiny_hparams(system: str, arch: str = "layoutlmv3", labels: list[str] | None = None, **extra: Any) -> dict:
    """The hyper-parameters LightningCLI stores for ``docalign.systems.<system>`` with a tiny random backbone."""
    from docalign.hub import load_tokenizer

    hparams = {
        "_class_path": f"docalign.systems.{system}",
        "backbone": dict(TINY_BACKBONE, arch=arch),
        "vocab_size": len(load_tokenizer("minilm")),
        **extra,
    }
    if system != "ExtractiveQA":
        hparams["label_names"] = list(labels or LABELS)
    return hparams


def save_checkpoint(path: Path, hparams: dict, data: dict | None = None, seed: int = 0) -> Path:
    """Build the system of ``hparams`` (seeded) and save it as a Lightning-style checkpoint at ``path``."""
    from docalign.inference.loading import build_system

    torch.manual_seed(seed)
    system = build_system(hparams, "test")
    # Random heads predict one label everywhere; spread the logits so that entities of several types appear.
    with torch.no_grad():
        system.classifier.weight.mul_(50.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "state_dict": system.state_dict(),
            "hyper_parameters": hparams,
            "datamodule_hyper_parameters": dict(data or TINY_DATA),
        },
        path,
    )
    return path


def write_pages(folder: Path, count: int = 2, seed: int = 5) -> list:
    """Synthetic receipts as PNG pages with their words JSON (``<stem>.json`` in ``folder/words``)."""
    from docalign.data.synthetic import generate_receipts

    docs = generate_receipts(seed, count)
    (folder / "words").mkdir(parents=True, exist_ok=True)
    for i, doc in enumerate(docs):
        doc.image.save(folder / f"page{i}.png")
        words = {"words": doc.words, "boxes": [[round(v) for v in b] for b in doc.boxes]}
        (folder / "words" / f"page{i}.json").write_text(json.dumps(words))
    return docs
