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
TINY_AET = Path(__file__).resolve().parent / "configs" / "tiny_aet.yaml"  # shrinks AET's alignment encoders
TINY_VLCDOC = Path(__file__).resolve().parent / "configs" / "tiny_vlcdoc.yaml"  # shrinks VLCDoC's ViT and blocks
OFFLINE = EXPERIMENTS / "_offline.yaml"
OFFLINE_VLCDOC = EXPERIMENTS / "_offline_vlcdoc.yaml"
FIXTURES = Path(__file__).resolve().parent / "fixtures"

# Release folders for tests. FUNSD is the real release: CI exports DOCALIGN_FUNSD when ../shared/data/funsd
# exists (.ci/run) and a local run finds it the same way; without it, FUNSD tests skip. CORD and SROIE are the
# small fixtures written by fixtures/make_fixtures.py.
_SHARED_FUNSD = REPO.parent / "shared" / "data" / "funsd"
if not os.environ.get("DOCALIGN_FUNSD") and _SHARED_FUNSD.is_dir():
    os.environ["DOCALIGN_FUNSD"] = str(_SHARED_FUNSD)
FIXTURE_ARGS = {  # the fixtures have 3 training documents: carve 1 for validation
    "CORD": ["--data.init_args.root", str(FIXTURES / "cord")],
    "SROIE": ["--data.init_args.root", str(FIXTURES / "sroie"), "--data.init_args.val_size", "1"],
    "RVLCDIP": ["--data.init_args.root", str(FIXTURES / "rvl_cdip")],  # 3 train / 1 val / 1 test, real rapidocr
    # 4 pages in 3 class folders: one per class to train, the second Letter to test (= val), real rapidocr
    "Tobacco3482": [
        "--data.init_args.root",
        str(FIXTURES / "tobacco3482"),
        "--data.init_args.train_per_class",
        "1",
        "--data.init_args.val_per_class",
        "0",
    ],
    # 2 train pages (4 questions, 1 answer not in the OCR) / 1 val / 1 test page; tiny.yaml's 64-token windows
    # with stride 16 leave room for at most 44 question tokens
    "DocVQA": ["--data.init_args.root", str(FIXTURES / "docvqa"), "--data.init_args.max_question_tokens", "16"],
    # 3 train documents (one scanned: tesseract OCR, cached in the test's tmp folder) / 2 dev-0 (val and test)
    "KleisterNDA": ["--data.init_args.root", str(FIXTURES / "kleister_nda")],
}
RELEASE_DATAMODULES = ("FUNSD", "CORD", "SROIE", "RVLCDIP", "Tobacco3482", "DocVQA", "KleisterNDA")
OCR_DATAMODULES = ("RVLCDIP", "Tobacco3482", "KleisterNDA")  # their OCR cache goes to the test's tmp folder too
FUNSD_MISSING = (
    "FUNSD is not available: set DOCALIGN_FUNSD to the FUNSD release folder (CI does when ../shared/data/funsd exists)"
)


def load_benchmark(name: str):
    """The module ``benchmarks/<name>.py`` (benchmarks are scripts, not a package), loaded under its own name."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def assert_words_inked_in_their_boxes(doc, what: str) -> None:
    """Every word box of a rendered page lies on the page and has ink under it (rules and 1-character words apart),
    and every QA answer is the text of its span."""
    import numpy as np

    pixels = np.asarray(doc.image, dtype=np.float32)
    background = np.median(pixels)
    for (x0, y0, x1, y1), word in zip(doc.boxes, doc.words):
        assert 0 <= x0 < x1 <= doc.size[0] and 0 <= y0 < y1 <= doc.size[1], (what, word)
        if len(word) > 1 and set(word) != {"_"}:
            ink = pixels[int(y0) : int(y1) + 1, int(x0) : int(x1) + 1].min()
            assert ink < background - 60, f"no ink under {word!r} in the {what}"
    for qa in doc.qa_pairs:
        first, last = qa.answer_spans[0]
        assert qa.answers == [" ".join(doc.words[first : last + 1])], (what, qa.question)


def experiment_names() -> list[str]:
    return sorted(p.stem for p in EXPERIMENTS.glob("*.yaml") if not p.stem.startswith("_"))


def cli_args(experiment: str, tmp_path: Path, *extra: str) -> list[str]:
    """Arguments for ``docalign fit`` of ``experiment`` shrunk by ``tests/configs/tiny.yaml`` (and
    ``tiny_aet.yaml`` for AET experiments (``demo`` included), whose alignment encoders it shrinks).

    ``experiments/_offline.yaml`` (and ``_offline_vlcdoc.yaml`` for VLCDoC, shrunk by ``tiny_vlcdoc.yaml``) comes
    before tiny.yaml, so experiments that name hub checkpoints run with no
    hub; release-folder DataModules read the test data (see ``data_args``).
    """
    tiny = ["--config", str(TINY)] + (["--config", str(TINY_AET)] if is_aet(experiment) else [])
    vlcdoc = "_vlcdoc" in experiment  # VLCDoC's ViT has no offline weights: its own overlay, then its shrink
    return [
        "--config",
        str(EXPERIMENTS / "_base.yaml"),
        "--config",
        str(EXPERIMENTS / f"{experiment}.yaml"),
        "--config",
        str(OFFLINE),
        *(["--config", str(OFFLINE_VLCDOC)] if vlcdoc else []),
        *tiny,
        *(["--config", str(TINY_VLCDOC)] if vlcdoc else []),
        "--experiment",
        experiment,
        "--trainer.logger.init_args.save_dir",
        str(tmp_path / "logs"),
        *data_args(experiment, tmp_path),
        *extra,
    ]


def class_name(experiment: str, section: str) -> str:
    """The class name an experiment file states for ``section`` (data/model), following ``config: other.yaml``
    includes (ablation files, ``demo``); "" when it leaves the class to ``_base.yaml``."""
    import yaml

    path, name = EXPERIMENTS / f"{experiment}.yaml", ""
    while not name and path is not None:
        config = yaml.safe_load(path.read_text()) or {}
        stated = (config.get(section) or {}).get("class_path") or config.get(f"{section}.class_path", "")  # dotted too
        name = str(stated).rsplit(".", 1)[-1]
        path = EXPERIMENTS / config["config"] if isinstance(config.get("config"), str) else None
    return name


def is_aet(experiment: str) -> bool:
    """Whether an experiment file (or one it includes) gives the model an alignment component."""
    import yaml

    path = EXPERIMENTS / f"{experiment}.yaml"
    while path is not None:
        config = yaml.safe_load(path.read_text()) or {}
        nested = ((config.get("model") or {}).get("init_args") or {}).get("alignment")
        if nested or any(key.startswith("model.init_args.alignment") for key in config):
            return True
        path = EXPERIMENTS / config["config"] if isinstance(config.get("config"), str) else None
    return False


def data_args(experiment: str, tmp_path: Path) -> list[str]:
    """Root and cache folder for an experiment whose data is a release folder (skips when FUNSD is absent)."""
    name = class_name(experiment, "data")
    if name not in RELEASE_DATAMODULES:
        return []
    if name == "FUNSD" and not os.environ.get("DOCALIGN_FUNSD"):
        pytest.skip(FUNSD_MISSING)
    ocr = ["--data.init_args.ocr_cache_dir", str(tmp_path / "ocr-cache")] if name in OCR_DATAMODULES else []
    return [*FIXTURE_ARGS.get(name, []), "--data.init_args.cache_dir", str(tmp_path / "cache"), *ocr]


@pytest.fixture(scope="session")
def minilm_tokenizer():
    from docalign.hub import load_tokenizer

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
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(corpus, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        cls_token="<s>",
        sep_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        mask_token="<mask>",
    )
