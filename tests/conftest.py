"""Shared fixtures: offline, tiny, real components."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
EXPERIMENTS = REPO / "experiments"
TINY = Path(__file__).resolve().parent / "configs" / "tiny.yaml"


def experiment_names() -> list[str]:
    return sorted(p.stem for p in EXPERIMENTS.glob("*.yaml") if not p.stem.startswith("_"))


def cli_args(experiment: str, tmp_path: Path, *extra: str) -> list[str]:
    """Arguments for ``docalign fit`` of ``experiment`` shrunk by ``tests/configs/tiny.yaml``."""
    return ["--config", str(EXPERIMENTS / "_base.yaml"), "--config", str(EXPERIMENTS / f"{experiment}.yaml"),
            "--config", str(TINY), "--experiment", experiment,
            "--trainer.logger.init_args.save_dir", str(tmp_path / "logs"), *extra]


@pytest.fixture(scope="session")
def minilm_tokenizer():
    from docalign.models.pretrained import load_tokenizer

    return load_tokenizer("minilm")


@pytest.fixture(scope="session")
def bpe_tokenizer():
    """A real byte-level BPE tokenizer (RoBERTa-style), trained here on receipt words."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from docalign.data.synthetic import generate_receipts

    corpus = [" ".join(d.words) for d in generate_receipts(123, 30)]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", cls_token="<s>",
                                   sep_token="</s>", pad_token="<pad>", unk_token="<unk>", mask_token="<mask>")
