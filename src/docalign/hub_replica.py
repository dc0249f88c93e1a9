"""A local replica of the Hugging Face hub: the experiments' checkpoints and datasets under their real names, offline.

``python scripts/hub_replica.py --out DIR`` writes ``DIR`` in the layout of ``HF_HOME``; with ``HF_HOME=DIR`` and
``HF_HUB_OFFLINE=1``, ``from_pretrained("microsoft/layoutlmv3-base")``, ``timm.create_model(name, pretrained=True)``
and ``datasets.load_dataset("naver-clova-ix/cord-v2")`` resolve to it, so the experiments run as shipped (no
``_offline*.yaml`` overlay) on a machine that has never seen the hub. What it holds:

- ``DIR/hub/models--<org>--<name>/{blobs,snapshots/<sha>,refs/main}`` (the hub cache of ``huggingface_hub``) for every
  checkpoint an experiment names: ``config.json`` with the published configuration's values (written out here, see
  ``MODELS``), random weights (``model.safetensors``, the architecture's own parameter names, saved from the
  ``transformers`` class the published config names), and the tokenizer in that model's file format and vocabulary
  size, trained here with the ``tokenizers`` library on text we render (``corpus``): one byte-level BPE of 50,265
  tokens in RoBERTa's format (``vocab.json`` + ``merges.txt``; RoBERTa and LayoutLMv3 share it, as the real ones do)
  and one lower-cased WordPiece of 30,522 in BERT's (``vocab.txt``, ids 0/100-103 for ``[PAD]``/``[UNK]``/``[CLS]``/
  ``[SEP]``/``[MASK]`` and the ``[unusedN]`` slots; BERT, LayoutLM and LayoutLMv2 share it). The vocabularies are
  not the published ones (their ids mean other strings), only their size and format are.
- ``DIR/hub/models--timm--<name>`` for the timm ViTs (DeiT-base, ViT-B/16): ``model.safetensors`` + ``config.json``
  as ``timm`` writes them, which ``timm.create_model(name, pretrained=True)`` finds through ``hf_hub_download``.
- ``DIR/hub/datasets--<org>--<name>`` (parquet files in the published schema, images as PNG bytes; the ref the
  readers ask for, ``main`` or ``refs/convert/parquet``, points at the snapshot) and ``DIR/datasets/<org>___<name>``
  (the prepared Arrow cache that ``datasets.load_dataset`` reads offline: offline, ``datasets`` never opens the hub
  cache, only the cache of a dataset loaded once before). A few documents per split, drawn from our own rendered
  pages (``docalign.data.synthetic`` receipts, ``docalign.data.synthetic_docs`` pages); see ``DATASETS``.

LayoutLMv2's checkpoint holds, besides the text stream, only a sample of the detectron2 ResNeXt-FPN tensors (the real
one holds all of them): docalign never loads ``visual.*`` (``models.layoutlmv2.hf_name``), so the sample only
checks that they are skipped.

Idempotent and resumable: a repository's snapshot name is the hash of what it is built from (``spec``); its ref is
written last, so a repository with its ref in place is complete and skipped, an interrupted one is rebuilt.
``tiny=True`` shrinks the transformer checkpoints (hidden 36, 2 layers) and the vocabularies (1,200 tokens) for tests.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

REPLICA_VERSION = 1  # bump to rebuild every repository
BPE_SIZE, WORDPIECE_SIZE, TINY_VOCAB = 50265, 30522, 1200
PARQUET_REF = "refs/convert/parquet"

_BASE = dict(  # what the BERT-family base configs share (published values)
    attention_probs_dropout_prob=0.1,
    hidden_act="gelu",
    hidden_dropout_prob=0.1,
    hidden_size=768,
    initializer_range=0.02,
    intermediate_size=3072,
    num_attention_heads=12,
    num_hidden_layers=12,
)
_ROBERTA_IDS = dict(bos_token_id=0, eos_token_id=2, pad_token_id=1, layer_norm_eps=1e-05, type_vocab_size=1)

# The published config.json values of each checkpoint an experiment names (microsoft/layoutlmv3-base, roberta-base,
# microsoft/layoutlm-base-uncased, microsoft/layoutlmv2-base-uncased, bert-base-uncased), tokenizer: "bpe" (RoBERTa
# format) or "wordpiece" (BERT format), class: the transformers class whose state dict the weights are.
MODELS: dict[str, dict[str, Any]] = {
    "microsoft/layoutlmv3-base": dict(
        tokenizer="bpe",
        cls="LayoutLMv3Model",
        config=dict(
            _BASE,
            **_ROBERTA_IDS,
            architectures=["LayoutLMv3Model"],
            model_type="layoutlmv3",
            classifier_dropout=None,
            coordinate_size=128,
            shape_size=128,
            has_relative_attention_bias=True,
            has_spatial_attention_bias=True,
            input_size=224,
            patch_size=16,
            num_channels=3,
            second_input_size=112,
            max_2d_position_embeddings=1024,
            max_position_embeddings=514,
            max_rel_2d_pos=256,
            max_rel_pos=128,
            rel_2d_pos_bins=64,
            rel_pos_bins=32,
            text_embed=True,
            visual_embed=True,
            vocab_size=BPE_SIZE,
        ),
        tokenizer_config=dict(
            tokenizer_class="LayoutLMv3Tokenizer",
            add_prefix_space=True,
            apply_ocr=False,
            model_max_length=512,
            cls_token_box=[0, 0, 0, 0],
            sep_token_box=[0, 0, 0, 0],
            pad_token_box=[0, 0, 0, 0],
            pad_token_label=-100,
            only_label_first_subword=True,
        ),
        preprocessor_config=dict(
            apply_ocr=False,
            do_normalize=True,
            do_resize=True,
            feature_extractor_type="LayoutLMv3FeatureExtractor",
            image_mean=[0.5, 0.5, 0.5],
            image_std=[0.5, 0.5, 0.5],
            resample=2,
            size=224,
        ),
    ),
    "roberta-base": dict(
        tokenizer="bpe",
        cls="RobertaForMaskedLM",
        config=dict(
            _BASE,
            **_ROBERTA_IDS,
            architectures=["RobertaForMaskedLM"],
            model_type="roberta",
            max_position_embeddings=514,
            vocab_size=BPE_SIZE,
        ),
        tokenizer_json=True,
    ),
    "microsoft/layoutlm-base-uncased": dict(
        tokenizer="wordpiece",
        cls="LayoutLMForMaskedLM",
        config=dict(
            _BASE,
            architectures=["LayoutLMForMaskedLM"],
            model_type="layoutlm",
            layer_norm_eps=1e-12,
            max_2d_position_embeddings=1024,
            max_position_embeddings=512,
            output_past=True,
            pad_token_id=0,
            type_vocab_size=2,
            vocab_size=WORDPIECE_SIZE,
        ),
        tokenizer_config=dict(do_lower_case=True, model_max_length=512),
    ),
    "microsoft/layoutlmv2-base-uncased": dict(
        tokenizer="wordpiece",
        cls="layoutlmv2",  # built from its embeddings/encoder/pooler modules (LayoutLMv2Model needs detectron2)
        config=dict(
            _BASE,
            model_type="layoutlmv2",
            coordinate_size=128,
            shape_size=128,
            fast_qkv=True,
            gradient_checkpointing=False,
            has_relative_attention_bias=True,
            has_spatial_attention_bias=True,
            has_visual_segment_embedding=False,
            image_feature_pool_shape=[7, 7, 256],
            layer_norm_eps=1e-12,
            max_2d_position_embeddings=1024,
            max_position_embeddings=512,
            max_rel_2d_pos=256,
            max_rel_pos=128,
            output_past=True,
            pad_token_id=0,
            rel_2d_pos_bins=64,
            rel_pos_bins=32,
            type_vocab_size=2,
            vocab_size=WORDPIECE_SIZE,
        ),
        tokenizer_config=dict(do_lower_case=True, model_max_length=512, tokenizer_class="LayoutLMv2Tokenizer"),
        preprocessor_config=dict(
            apply_ocr=True,
            do_resize=True,
            feature_extractor_type="LayoutLMv2FeatureExtractor",
            resample=2,
            size=224,
        ),
    ),
    "bert-base-uncased": dict(
        tokenizer="wordpiece",
        cls="BertForMaskedLM",
        config=dict(
            _BASE,
            architectures=["BertForMaskedLM"],
            model_type="bert",
            gradient_checkpointing=False,
            layer_norm_eps=1e-12,
            max_position_embeddings=512,
            pad_token_id=0,
            position_embedding_type="absolute",
            type_vocab_size=2,
            use_cache=True,
            vocab_size=WORDPIECE_SIZE,
        ),
        tokenizer_config=dict(do_lower_case=True, model_max_length=512),
        tokenizer_json=True,
    ),
}
TINY_SIZES = dict(hidden_size=36, num_hidden_layers=2, num_attention_heads=2, intermediate_size=72)
TINY_LAYOUT = dict(coordinate_size=6, shape_size=6)  # LayoutLMv2/v3: 4 * coordinate + 2 * shape = hidden

# timm checkpoints the experiments name (timm resolves them to the hub repository timm/<name>).
TIMM_MODELS = ("deit_base_patch16_224.fb_in1k", "vit_base_patch16_224.augreg2_in21k_ft_in1k")

# The hub datasets the experiments' DataModules read: repository -> (writer, config, refs, per-split counts).
# ``refs``: the branches the readers ask for (``main``; FUNSD, SROIE, RVL-CDIP, Tobacco-3482: the parquet conversion).
DATASET_REFS = {
    "naver-clova-ix/cord-v2": ("main",),
    "nielsr/funsd-layoutlmv3": ("main", PARQUET_REF),
    "darentang/sroie": ("main", PARQUET_REF),
    "aharley/rvl_cdip": ("main", PARQUET_REF),
    "maveriq/tobacco3482": ("main", PARQUET_REF),
    "lmms-lab/DocVQA": ("main",),
    "HuggingFaceM4/DocumentVQA": ("main",),
}
DEFAULT_DOCS = 4  # documents per split (Tobacco-3482: its one split holds 20, two per class)


def hub_folder(kind: str, repo_id: str) -> str:
    """``models--org--name`` / ``datasets--org--name``: the hub cache's folder of a repository."""
    return f"{kind}s--" + repo_id.replace("/", "--")


def spec_hash(spec: Any) -> str:
    """The 40-hex snapshot name of what a repository is built from."""
    text = json.dumps({"replica": REPLICA_VERSION, "spec": spec}, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()


# --- the hub cache layout ------------------------------------------------------------------------------------------


def is_complete(hub: Path, kind: str, repo_id: str, sha: str, refs: Sequence[str] = ("main",)) -> bool:
    storage = hub / hub_folder(kind, repo_id)
    return (storage / "snapshots" / sha).is_dir() and all(
        (storage / "refs" / ref).is_file() and (storage / "refs" / ref).read_text().strip() == sha for ref in refs
    )


def install_snapshot(
    hub: Path, kind: str, repo_id: str, sha: str, staged: Path, refs: Sequence[str] = ("main",)
) -> Path:
    """Move the files under ``staged`` into the hub cache of ``repo_id`` as snapshot ``sha`` (blobs named by their
    sha256, the snapshot's files symlinks to them, as ``huggingface_hub`` lays them out); the refs go last."""
    storage = hub / hub_folder(kind, repo_id)
    snapshot = storage / "snapshots" / sha
    if snapshot.exists():
        shutil.rmtree(snapshot)
    (storage / "blobs").mkdir(parents=True, exist_ok=True)
    for file in sorted(p for p in staged.rglob("*") if p.is_file()):
        relative = file.relative_to(staged)
        digest = hashlib.sha256()
        with open(file, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        blob = storage / "blobs" / digest.hexdigest()
        if blob.exists():
            file.unlink()
        else:
            os.replace(file, blob)
        link = snapshot / relative
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    for ref in refs:
        path = storage / "refs" / ref
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(sha)
    return snapshot


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


# --- tokenizers, trained here on rendered text ---------------------------------------------------------------------


def corpus(size: int, seed: int = 0) -> Iterator[str]:
    """Lines of text to train the tokenizers on: the words of rendered receipts and document pages, then pseudo-words
    (seeded) until ``size`` lines, so that a 50k-token BPE finds enough distinct pairs to merge."""
    from .data.synthetic import render_receipt
    from .data.synthetic_docs import render_document

    lines = 0
    for i in range(8 if size > 10_000 else 2):
        for doc in (render_receipt(seed, i), render_document(seed, i)):
            yield " ".join(doc.words)
            lines += 1
    rng = random.Random(f"docalign-replica-corpus-{seed}")
    letters = "etaoinshrdlcumwfgypbvkjxqz"
    weights = [12, 9, 8, 8, 7, 7, 6, 6, 6, 4, 4, 3, 3, 2, 2, 2, 2, 2, 2, 1.5, 1, 0.8, 0.2, 0.2, 0.1, 0.1]
    while lines < size:
        words = []
        for _ in range(12):
            n = rng.randint(2, 11)
            word = "".join(rng.choices(letters, weights, k=n))
            if rng.random() < 0.3:
                word = word.capitalize()
            if rng.random() < 0.1:
                word = str(rng.randint(0, 99999))
            words.append(word)
        yield " ".join(words)
        lines += 1


def train_bpe(folder: Path, vocab_size: int, lines: int) -> None:
    """``vocab.json`` + ``merges.txt`` (+ ``tokenizer.json``) of a byte-level BPE in RoBERTa's format: ids 0-3
    ``<s> <pad> </s> <unk>``, the learned tokens, ``<mask>`` last (``vocab_size - 1``)."""
    from tokenizers import ByteLevelBPETokenizer
    from tokenizers.processors import RobertaProcessing

    trainer = ByteLevelBPETokenizer()
    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    trainer.train_from_iterator(
        corpus(lines), vocab_size=vocab_size - 1, min_frequency=2, special_tokens=specials, show_progress=False
    )
    folder.mkdir(parents=True, exist_ok=True)
    trainer.save_model(str(folder))
    vocab = json.loads((folder / "vocab.json").read_text())
    if len(vocab) != vocab_size - 1:
        raise RuntimeError(f"the BPE trainer learned {len(vocab)} tokens, not {vocab_size - 1}: give it more text")
    vocab["<mask>"] = vocab_size - 1
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    full = ByteLevelBPETokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
    full.add_special_tokens(specials + ["<mask>"])
    full.post_processor = RobertaProcessing(("</s>", 2), ("<s>", 0))
    full.save(str(folder / "tokenizer.json"))


WORDPIECE_RESERVED = (
    ["[PAD]"] + [f"[unused{i}]" for i in range(99)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
)  # ids 0-103 as in BERT's vocab.txt; the [unusedN] slots from 99 on follow up to id 998


def train_wordpiece(folder: Path, vocab_size: int, lines: int) -> None:
    """``vocab.txt`` (+ ``tokenizer.json``) of a lower-cased WordPiece in BERT's format: ``[PAD]`` 0, ``[unused0-98]``,
    ``[UNK]`` 100, ``[CLS]`` 101, ``[SEP]`` 102, ``[MASK]`` 103, more ``[unusedN]`` (real size: up to id 998),
    then the learned tokens."""
    from tokenizers import BertWordPieceTokenizer

    reserved = list(WORDPIECE_RESERVED)
    unused_after = 895 if vocab_size >= 10_000 else 0  # BERT's [unused99] .. [unused993]
    reserved += [f"[unused{99 + i}]" for i in range(unused_after)]
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    trainer = BertWordPieceTokenizer(lowercase=True)
    learn = vocab_size - len(reserved)
    trainer.train_from_iterator(
        corpus(lines), vocab_size=learn + len(specials), special_tokens=specials, show_progress=False
    )
    learned = [t for t, _ in sorted(trainer.get_vocab().items(), key=lambda kv: kv[1]) if t not in specials]
    if len(learned) < learn:
        raise RuntimeError(f"the WordPiece trainer learned {len(learned)} tokens, not {learn}: give it more text")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(reserved + learned[:learn]) + "\n")
    full = BertWordPieceTokenizer(str(folder / "vocab.txt"), lowercase=True)
    full.save(str(folder / "tokenizer.json"))


# --- checkpoints ---------------------------------------------------------------------------------------------------


def model_config(name: str, tiny: bool) -> dict[str, Any]:
    spec = MODELS[name]
    config = dict(spec["config"])
    if tiny:
        config.update(TINY_SIZES, vocab_size=TINY_VOCAB)
        if "coordinate_size" in config:
            config.update(TINY_LAYOUT)
        if config["model_type"] == "layoutlmv2":
            config["image_feature_pool_shape"] = [7, 7, 256]
    return config


DETECTRON2_SAMPLE = {  # a sample of the detectron2 ResNeXt-101-FPN tensors of microsoft/layoutlmv2-base-uncased
    "layoutlmv2.visual.backbone.bottom_up.stem.conv1.weight": (64, 3, 7, 7),
    "layoutlmv2.visual.backbone.bottom_up.stem.conv1.norm.running_mean": (64,),
    "layoutlmv2.visual.backbone.bottom_up.res2.0.conv1.weight": (256, 64, 1, 1),
    "layoutlmv2.visual.backbone.fpn_lateral2.weight": (256, 256, 1, 1),
    "layoutlmv2.visual.backbone.fpn_output2.weight": (256, 256, 3, 3),
    "layoutlmv2.visual.pixel_mean": (3, 1, 1),
    "layoutlmv2.visual.pixel_std": (3, 1, 1),
}


def random_state(name: str, config: dict[str, Any], seed: int) -> dict[str, Any]:
    """Randomly initialised weights of ``name`` under the architecture's own parameter names."""
    import torch
    import transformers

    torch.manual_seed(seed)
    cls_name = MODELS[name]["cls"]
    if cls_name == "layoutlmv2":
        from transformers.models.layoutlmv2 import modeling_layoutlmv2 as hf_v2

        c = transformers.LayoutLMv2Config(**config)
        modules = {
            "embeddings": hf_v2.LayoutLMv2Embeddings(c),
            "encoder": hf_v2.LayoutLMv2Encoder(c),
            "pooler": hf_v2.LayoutLMv2Pooler(c),
        }
        state = {f"layoutlmv2.{m}.{k}": v for m, module in modules.items() for k, v in module.state_dict().items()}
        h = c.hidden_size
        with torch.no_grad():
            for key, value in state.items():  # HF's _init_weights: N(0, 0.02) matrices, zero biases, unit norms
                if key.endswith("LayerNorm.weight"):
                    value.fill_(1.0)
                elif key.endswith(("bias", "LayerNorm.bias")):
                    value.zero_()
                elif value.is_floating_point():
                    value.normal_(0.0, c.initializer_range)
        state.update(
            {
                "layoutlmv2.visual_proj.weight": torch.randn(h, c.image_feature_pool_shape[-1]) * 0.02,
                "layoutlmv2.visual_proj.bias": torch.zeros(h),
                "layoutlmv2.visual_LayerNorm.weight": torch.ones(h),
                "layoutlmv2.visual_LayerNorm.bias": torch.zeros(h),
            }
        )
        state.update({k: torch.randn(shape) for k, shape in DETECTRON2_SAMPLE.items()})
        return state
    config_cls = transformers.AutoConfig.for_model(config["model_type"]).__class__
    model = getattr(transformers, cls_name)(config_cls(**{k: v for k, v in config.items() if k != "model_type"}))
    return dict(model.state_dict())


def save_state(state: dict[str, Any], path: Path) -> None:
    from safetensors.torch import save_file

    seen: dict[int, str] = {}
    out = {}
    for key, value in state.items():  # tied weights (e.g. the MLM decoder) are stored once, as transformers does
        pointer = value.data_ptr()
        if pointer in seen and value.numel() > 1:
            continue
        seen[pointer] = key
        out[key] = value.detach().contiguous().clone()
    save_file(out, str(path), metadata={"format": "pt"})


def build_model(hub: Path, name: str, tiny: bool, tokenizers: dict[str, Path], log: Callable[[str], None]) -> bool:
    spec = MODELS[name]
    config = model_config(name, tiny)
    recipe = {k: v for k, v in spec.items() if k != "config"} | {"config": config}
    sha = spec_hash({"model": name, **recipe})
    if is_complete(hub, "model", name, sha):
        return False
    log(f"  {name}: {config['vocab_size']} tokens, {config['num_hidden_layers']} layers of {config['hidden_size']}")
    with tempfile.TemporaryDirectory(dir=hub) as tmp:
        staged = Path(tmp)
        _write_json(staged / "config.json", config)
        tokenizer = tokenizers[spec["tokenizer"]]
        files = ["vocab.json", "merges.txt"] if spec["tokenizer"] == "bpe" else ["vocab.txt"]
        if spec.get("tokenizer_json"):
            files.append("tokenizer.json")
        for file in files:
            shutil.copy(tokenizer / file, staged / file)
        for key in ("tokenizer_config", "preprocessor_config"):
            if key in spec:
                _write_json(staged / f"{key}.json", spec[key])
        save_state(random_state(name, config, seed=int(sha[:8], 16)), staged / "model.safetensors")
        install_snapshot(hub, "model", name, sha, staged)
    return True


def build_timm(hub: Path, name: str, log: Callable[[str], None]) -> bool:
    """``timm/<name>``: random weights of the named architecture, as ``timm.models.save_for_hf`` writes them."""
    import timm
    import torch
    from timm.models import save_for_hf

    repo = f"timm/{name}"
    sha = spec_hash({"timm": name, "timm_version": timm.__version__.split(".")[0]})
    if is_complete(hub, "model", repo, sha):
        return False
    log(f"  {repo}")
    torch.manual_seed(int(sha[:8], 16))
    model = timm.create_model(name, pretrained=False)
    with tempfile.TemporaryDirectory(dir=hub) as tmp:
        staged = Path(tmp)
        save_for_hf(model, str(staged), safe_serialization=True)
        for extra in staged.glob("pytorch_model.bin"):
            extra.unlink()  # keep model.safetensors only
        install_snapshot(hub, "model", repo, sha, staged)
    return True


# --- datasets ------------------------------------------------------------------------------------------------------


def _png(image: Any) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def _grid(box: Sequence[float], width: int, height: int) -> list[int]:
    x0, y0, x1, y1 = box
    return [
        int(round(min(max(v, 0.0), 1000.0)))
        for v in (x0 * 1000 / width, y0 * 1000 / height, x1 * 1000 / width, y1 * 1000 / height)
    ]


def _receipts(split_index: int, count: int, seed: int) -> list[Any]:
    from .data.synthetic import render_receipt

    return [render_receipt(seed + 100 * split_index, i) for i in range(count)]


def _entities(labels: Sequence[str]) -> list[tuple[str, int, int]]:
    """``(category, first, end)`` of each BIO entity (``O`` words are one-word ``other`` entities)."""
    out: list[tuple[str, int, int]] = []
    for i, label in enumerate(labels):
        prefix, _, kind = label.partition("-")
        if prefix == "I" and out and out[-1][0] == kind and out[-1][2] == i:
            out[-1] = (kind, out[-1][1], i + 1)
        else:
            out.append((kind if label != "O" else "other", i, i + 1))
    return out


def cord_rows(split: str, split_index: int, count: int, seed: int) -> dict[str, list[Any]]:
    """naver-clova-ix/cord-v2: ``image`` and ``ground_truth`` (the JSON string: ``gt_parse``, ``meta``, ``valid_line``
    of words with pixel ``quad``s, ``roi``, ``repeating_symbol``, ``dontcare``)."""
    rows: dict[str, list[Any]] = {"image": [], "ground_truth": []}
    for i, doc in enumerate(_receipts(split_index, count, seed)):
        lines, parse = [], {}
        for group, (category, first, end) in enumerate(_entities(doc.word_labels)):
            words = []
            for j in range(first, end):
                x0, y0, x1, y1 = (int(round(v)) for v in doc.boxes[j])
                quad = dict(x1=x0, y1=y0, x2=x1, y2=y0, x3=x1, y3=y1, x4=x0, y4=y1)
                words.append(dict(quad=quad, is_key=0, row_id=group, text=doc.words[j]))
            lines.append(dict(words=words, category=category, group_id=group, sub_group_id=0))
            top, _, sub = category.partition(".")
            if category != "other":
                parse.setdefault(top, {})[sub or top] = " ".join(doc.words[first:end])
        width, height = doc.image.size
        meta = dict(version="2.0.0", split=split, image_id=i, image_size=dict(width=width, height=height))
        gt = dict(gt_parse=parse, meta=meta, valid_line=lines, roi={}, repeating_symbol=[], dontcare=[])
        rows["image"].append({"bytes": _png(doc.image), "path": None})
        rows["ground_truth"].append(json.dumps(gt))
    return rows


FUNSD_TAGS = ["O", "B-HEADER", "I-HEADER", "B-QUESTION", "I-QUESTION", "B-ANSWER", "I-ANSWER"]
SROIE_TAGS = ["O", "B-COMPANY", "I-COMPANY", "B-DATE", "I-DATE", "B-ADDRESS", "I-ADDRESS", "B-TOTAL", "I-TOTAL"]


def _sroie_kind(category: str) -> str:
    """A CORD category -> one of SROIE's four entity types (fixed, so every type occurs)."""
    return ("COMPANY", "DATE", "ADDRESS", "TOTAL")[sum(map(ord, category)) % 4]


def _tag_rows(split_index: int, count: int, seed: int, kind_of: Callable[[str], Optional[str]], tags: list[str]):
    """Receipts relabelled to another tag set: ``(doc, words, word boxes on the grid, entity boxes, tag ids)``."""
    for doc in _receipts(split_index, count, seed):
        width, height = doc.image.size
        ids, segments = [], []
        for category, first, end in _entities(doc.word_labels):
            kind = None if category == "other" else kind_of(category)
            for j in range(first, end):
                ids.append(0 if kind is None else tags.index(f"{'B' if j == first else 'I'}-{kind}"))
            xs = [v for j in range(first, end) for v in (doc.boxes[j][0], doc.boxes[j][2])]
            ys = [v for j in range(first, end) for v in (doc.boxes[j][1], doc.boxes[j][3])]
            segments += [_grid((min(xs), min(ys), max(xs), max(ys)), width, height)] * (end - first)
        words = [_grid(b, width, height) for b in doc.boxes]
        yield doc, words, segments, ids


def funsd_rows(split: str, split_index: int, count: int, seed: int) -> dict[str, list[Any]]:
    """nielsr/funsd-layoutlmv3: ``id``, ``tokens``, segment-level ``bboxes`` (0-1000), ``ner_tags``, ``image``."""

    def kind(category: str) -> str:  # item names ask, amounts answer, the rest heads
        sub = category.partition(".")[2] or category
        return "QUESTION" if sub.endswith("nm") else "ANSWER" if ("price" in sub or "cnt" in sub) else "HEADER"

    rows: dict[str, list[Any]] = {"id": [], "tokens": [], "bboxes": [], "ner_tags": [], "image": []}
    for i, (doc, _, segments, ids) in enumerate(_tag_rows(split_index, count, seed, kind, FUNSD_TAGS)):
        rows["id"].append(str(i))
        rows["tokens"].append(list(doc.words))
        rows["bboxes"].append(segments)
        rows["ner_tags"].append(ids)
        rows["image"].append({"bytes": _png(doc.image), "path": None})
    return rows


def sroie_rows(split: str, split_index: int, count: int, seed: int) -> dict[str, list[Any]]:
    """darentang/sroie: ``id``, ``words``, word-level ``bboxes`` (0-1000), ``ner_tags``, ``image_path`` (a string)."""
    rows: dict[str, list[Any]] = {"id": [], "words": [], "bboxes": [], "ner_tags": [], "image_path": []}
    for i, (doc, words, _, ids) in enumerate(_tag_rows(split_index, count, seed, _sroie_kind, SROIE_TAGS)):
        rows["id"].append(str(i))
        rows["words"].append(list(doc.words))
        rows["bboxes"].append(words)
        rows["ner_tags"].append(ids)
        rows["image_path"].append(f"/data/sroie/{split}/images/X{51000000000 + i}.jpg")
    return rows


def docvqa_rows(split: str, split_index: int, count: int, seed: int) -> dict[str, list[Any]]:
    """lmms-lab/DocVQA and HuggingFaceM4/DocumentVQA: one row per question (``questionId``, ``question``,
    ``question_types``, ``image``, ``docId``, ``ucsf_document_id``, ``ucsf_document_page_no``, ``answers``; the test
    split's answers are null, as published)."""
    from .data.synthetic_docs import render_document

    columns = ("questionId", "question", "question_types", "image", "docId", "ucsf_document_id")
    rows: dict[str, list[Any]] = {c: [] for c in columns + ("ucsf_document_page_no", "answers", "data_split")}
    question_id = 1000 * (split_index + 1)
    for i in range(count):
        doc = render_document(seed + 10 + split_index, i)
        image = {"bytes": _png(doc.image), "path": None}
        for pair in doc.qa_pairs[:2]:
            question_id += 1
            rows["questionId"].append(str(question_id))
            rows["question"].append(pair.question)
            rows["question_types"].append(["form"])
            rows["image"].append(image)
            rows["docId"].append(100 * (split_index + 1) + i)
            rows["ucsf_document_id"].append(f"{'xyzq'[split_index % 4]}{i:03d}d{seed:04d}")
            rows["ucsf_document_page_no"].append(str(1 + i % 3))
            rows["answers"].append(None if split == "test" else list(pair.answers))
            rows["data_split"].append(split)
    return rows


def classification_rows(dataset: str) -> Callable[..., dict[str, list[Any]]]:
    """aharley/rvl_cdip and maveriq/tobacco3482: ``image`` and ``label`` (a ClassLabel), rendered pages of each class."""

    def rows(split: str, split_index: int, count: int, seed: int) -> dict[str, list[Any]]:
        from .data.readers.classification import RVL_CDIP_CLASSES, TOBACCO3482_CLASSES
        from .data.readers.synthetic import SyntheticReader
        from .data.synthetic_docs import TOBACCO3482_KINDS

        if dataset == "rvl_cdip":
            classes, kinds = RVL_CDIP_CLASSES, RVL_CDIP_CLASSES
        else:
            classes, kinds = TOBACCO3482_CLASSES, tuple(TOBACCO3482_KINDS[c] for c in TOBACCO3482_CLASSES)
        ours = {"train": "train", "validation": "val", "test": "test"}[split]
        reader = SyntheticReader({"train": count, "val": count, "test": count}, seed + 20, classes, kinds)
        keys = reader.files(ours)
        return {
            "image": [{"bytes": _png(reader.read_file(k).image), "path": None} for k in keys],
            "label": [classes.index(k.label) for k in keys],
        }

    return rows


def dataset_features(repo_id: str) -> Any:
    import datasets as hf

    from .data.readers.classification import RVL_CDIP_CLASSES, TOBACCO3482_CLASSES

    boxes = hf.Sequence(hf.Sequence(hf.Value("int64")))
    if repo_id == "naver-clova-ix/cord-v2":
        return hf.Features({"image": hf.Image(), "ground_truth": hf.Value("string")})
    if repo_id == "nielsr/funsd-layoutlmv3":
        return hf.Features(
            {
                "id": hf.Value("string"),
                "tokens": hf.Sequence(hf.Value("string")),
                "bboxes": boxes,
                "ner_tags": hf.Sequence(hf.ClassLabel(names=FUNSD_TAGS)),
                "image": hf.Image(),
            }
        )
    if repo_id == "darentang/sroie":
        return hf.Features(
            {
                "id": hf.Value("string"),
                "words": hf.Sequence(hf.Value("string")),
                "bboxes": boxes,
                "ner_tags": hf.Sequence(hf.ClassLabel(names=SROIE_TAGS)),
                "image_path": hf.Value("string"),
            }
        )
    if repo_id in ("aharley/rvl_cdip", "maveriq/tobacco3482"):
        names = RVL_CDIP_CLASSES if repo_id == "aharley/rvl_cdip" else TOBACCO3482_CLASSES
        return hf.Features({"image": hf.Image(), "label": hf.ClassLabel(names=list(names))})
    return hf.Features(  # the two DocVQA copies
        {
            "questionId": hf.Value("string"),
            "question": hf.Value("string"),
            "question_types": hf.Sequence(hf.Value("string")),
            "image": hf.Image(),
            "docId": hf.Value("int64"),
            "ucsf_document_id": hf.Value("string"),
            "ucsf_document_page_no": hf.Value("string"),
            "answers": hf.Sequence(hf.Value("string")),
            "data_split": hf.Value("string"),
        }
    )


# repository -> (row writer, configuration, {hub split: documents}); None = DEFAULT_DOCS
DATASETS: dict[str, tuple[Callable[..., dict[str, list[Any]]], str, dict[str, int]]] = {
    "naver-clova-ix/cord-v2": (cord_rows, "default", {"train": 0, "validation": 0, "test": 0}),
    "nielsr/funsd-layoutlmv3": (funsd_rows, "default", {"train": 0, "test": 0}),
    "darentang/sroie": (sroie_rows, "default", {"train": 0, "test": 0}),
    "aharley/rvl_cdip": (classification_rows("rvl_cdip"), "default", {"train": 0, "validation": 0, "test": 0}),
    "maveriq/tobacco3482": (classification_rows("tobacco3482"), "default", {"train": 20}),
    "lmms-lab/DocVQA": (docvqa_rows, "DocVQA", {"validation": 0, "test": 0}),
    "HuggingFaceM4/DocumentVQA": (docvqa_rows, "default", {"train": 0, "validation": 0, "test": 0}),
}


def build_dataset(home: Path, repo_id: str, docs: int, log: Callable[[str], None], seed: int = 0) -> bool:
    """The parquet copy of ``repo_id`` in the hub cache and its prepared Arrow cache under ``home/datasets``."""
    writer, config_name, splits = DATASETS[repo_id]
    counts = {split: (n or docs) for split, n in splits.items()}
    hub = home / "hub"
    refs = DATASET_REFS[repo_id]
    sha = spec_hash({"dataset": repo_id, "counts": counts, "seed": seed, "config": config_name})
    arrow_root = home / "datasets" / dataset_cache_name(repo_id)
    if is_complete(hub, "dataset", repo_id, sha, refs) and _prepared(arrow_root, config_name, sha):
        return False
    log(f"  {repo_id}: {counts}")
    import datasets as hf

    features = dataset_features(repo_id)
    with tempfile.TemporaryDirectory(dir=hub) as tmp:
        staged = Path(tmp)
        prefix = f"{config_name}/" if config_name != "default" else "data/"
        for index, (split, count) in enumerate(counts.items()):
            data = hf.Dataset.from_dict(writer(split, index, count, seed), features=features)
            target = staged / f"{prefix}{split}-00000-of-00001.parquet"
            target.parent.mkdir(parents=True, exist_ok=True)
            data.to_parquet(str(target))
        if config_name != "default":  # the dataset card's config list, as the repository's README holds it
            card = [f"- config_name: {config_name}", "  data_files:"]
            for split in counts:
                card += [f"  - split: {split}", f"    path: {config_name}/{split}-*"]
            (staged / "README.md").write_text("---\nconfigs:\n" + "\n".join(card) + "\n---\n")
        snapshot = install_snapshot(hub, "dataset", repo_id, sha, staged, refs=())
    if arrow_root.exists():
        shutil.rmtree(arrow_root)  # an older build: offline, datasets would pick the most recent one anyway
    prepare_arrow_cache(snapshot, home / "datasets", repo_id, config_name, sha)
    for ref in refs:  # last: the repository counts as complete from here on
        path = hub / hub_folder("dataset", repo_id) / "refs" / ref
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(sha)
    return True


def dataset_cache_name(repo_id: str) -> str:
    """``org___name`` as ``datasets`` names a hub dataset's cache folder (CamelCase names in snake_case)."""
    from datasets.naming import camelcase_to_snakecase

    namespace, name = repo_id.split("/")
    return f"{namespace}___{camelcase_to_snakecase(name)}"


def _prepared(root: Path, config_name: str, sha: str) -> bool:
    return any((d / "dataset_info.json").is_file() for d in root.glob(f"{config_name}/*/{sha}"))


def prepare_arrow_cache(snapshot: Path, cache_dir: Path, repo_id: str, config_name: str, sha: str) -> Path:
    """Prepare the Arrow cache ``datasets.load_dataset(repo_id)`` leaves behind online, in the folder it would use for
    commit ``sha`` (``org___name/<config>/<version>/<sha>``, files ``<name>-<split>.arrow``): the parquet builder over
    the snapshot's files (its README's configs included), named by the repository."""
    from datasets.load import dataset_module_factory, get_dataset_builder_class
    from datasets.naming import camelcase_to_snakecase

    module = dataset_module_factory(str(snapshot))
    kwargs = dict(module.builder_kwargs)
    for key in ("dataset_name", "repo_id", "config_name"):
        kwargs.pop(key, None)
    data_files, data_dir = kwargs.pop("data_files", None), kwargs.pop("data_dir", None)
    dataset_name = camelcase_to_snakecase(repo_id.split("/")[1])
    builder_cls = get_dataset_builder_class(module, dataset_name=dataset_name)
    with tempfile.TemporaryDirectory(dir=cache_dir.parent) as scratch:
        builder = builder_cls(
            cache_dir=scratch,
            dataset_name=dataset_name,
            config_name=config_name,
            data_dir=data_dir,
            data_files=data_files,
            hash=sha,
            **kwargs,
        )
        target = cache_dir / dataset_cache_name(repo_id) / builder.config_id / str(builder.config.version) / sha
        builder.download_and_prepare(output_dir=str(target))
    return target


# --- the whole replica ---------------------------------------------------------------------------------------------


def experiment_models() -> list[str]:
    return list(MODELS)


def build(
    out: str | Path,
    *,
    only: Optional[Sequence[str]] = None,
    tiny: bool = False,
    docs: int = DEFAULT_DOCS,
    log: Callable[[str], None] = print,
) -> dict[str, list[str]]:
    """Build (or complete) the replica under ``out``; returns ``{"built": [...], "kept": [...]}`` repository names.

    ``only``: repository names to build (checkpoints, ``timm/<name>``, datasets); None: all of them.
    """
    home = Path(out).expanduser().resolve()
    hub = home / "hub"
    hub.mkdir(parents=True, exist_ok=True)
    wanted = list(MODELS) + [f"timm/{n}" for n in TIMM_MODELS] + list(DATASETS)
    if only is not None:
        unknown = [n for n in only if n not in wanted]
        if unknown:
            raise ValueError(f"unknown repositories {unknown}; the replica holds {', '.join(wanted)}")
        wanted = [n for n in wanted if n in only]
    report: dict[str, list[str]] = {"built": [], "kept": []}
    vocab = TINY_VOCAB if tiny else None
    tokenizer_dir = home / "replica-tokenizers" / ("tiny" if tiny else "real")
    tokenizers: dict[str, Path] = {}
    for kind, size, train in (("bpe", BPE_SIZE, train_bpe), ("wordpiece", WORDPIECE_SIZE, train_wordpiece)):
        if not any(MODELS[n]["tokenizer"] == kind for n in wanted if n in MODELS):
            continue
        folder = tokenizer_dir / kind
        if not (folder / "tokenizer.json").is_file():
            log(f"training the {kind} tokenizer ({vocab or size} tokens)")
            partial = folder.with_suffix(".partial")
            shutil.rmtree(partial, ignore_errors=True)
            train(partial, vocab or size, lines=4_000 if tiny else 400_000)
            os.replace(partial, folder)
        tokenizers[kind] = folder
    for name in wanted:
        if name in MODELS:
            built = build_model(hub, name, tiny, tokenizers, log)
        elif name.startswith("timm/"):
            built = build_timm(hub, name[len("timm/") :], log)
        else:
            built = build_dataset(home, name, docs, log)
        report["built" if built else "kept"].append(name)
    return report


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="the folder to build (then run with HF_HOME=<out>)")
    parser.add_argument("--only", nargs="*", help="build only these repositories (default: all)")
    parser.add_argument("--docs", type=int, default=DEFAULT_DOCS, help="documents per dataset split")
    parser.add_argument("--tiny", action="store_true", help="tiny checkpoints and vocabularies (for tests)")
    args = parser.parse_args(argv)
    report = build(args.out, only=args.only, tiny=args.tiny, docs=args.docs)
    print(f"replica in {Path(args.out).resolve()}: built {len(report['built'])}, kept {len(report['kept'])}")
    print(f"use it with: HF_HOME={Path(args.out).resolve()} HF_HUB_OFFLINE=1")


if __name__ == "__main__":
    main()
