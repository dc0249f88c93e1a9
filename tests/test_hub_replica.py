"""The local hub replica (``docalign.hub_replica``, ``scripts/hub_replica.py``) and the rehearsal through it.

The fast test builds a tiny replica (two checkpoints, one dataset) and resolves it in a fresh process with
``HF_HOME`` pointing at it and ``HF_HUB_OFFLINE=1``, exactly as a user's run would. The slow rehearsal
(``make rehearse``) builds the real-size replica under ``logs/hub-replica`` and fits, tests and checks every hub
experiment through it, unchanged (no ``_offline*.yaml`` overlay), for a few steps at batch 1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from docalign import hub_replica

from conftest import EXPERIMENTS, REPO, load_benchmark

RESOLVE = """
import json, sys
from transformers import AutoModel
from datasets import load_dataset
from docalign.hub import load_tokenizer, check_same_vocabulary
from docalign.data.readers import CORDHubReader

model = AutoModel.from_pretrained("roberta-base")
v3 = load_tokenizer("microsoft/layoutlmv3-base")
check_same_vocabulary("microsoft/layoutlmv3-base", "roberta-base", "alignment text encoder")
enc = v3(["TOTAL", "12.000"], is_split_into_words=True, add_special_tokens=False)
rows = load_dataset("naver-clova-ix/cord-v2", split="train")
docs = list(CORDHubReader(strict=True).read("train"))
print(json.dumps(dict(
    model=type(model).__name__, rows_of_embeddings=model.get_input_embeddings().num_embeddings,
    tokenizer=len(v3), word_ids=enc.word_ids(), columns=rows.column_names, rows=len(rows),
    documents=len(docs), labelled=sum(1 for d in docs if any(l != "O" for l in d.word_labels)),
)))
"""


def replica_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "DOCALIGN_"))}
    env.update(HF_HOME=str(home), HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO / "src"), TOKENIZERS_PARALLELISM="false")
    return env


def test_tiny_replica_resolves_offline_under_hf_home(tmp_path):
    only = ["roberta-base", "microsoft/layoutlmv3-base", "naver-clova-ix/cord-v2"]
    report = hub_replica.build(tmp_path, only=only, tiny=True, docs=2, log=lambda _: None)
    assert sorted(report["built"]) == sorted(only) and report["kept"] == []
    storage = tmp_path / "hub" / "models--roberta-base"
    sha = (storage / "refs" / "main").read_text()
    weights = storage / "snapshots" / sha / "model.safetensors"
    assert weights.is_symlink() and weights.resolve().parent == (storage / "blobs").resolve()
    config = json.loads((storage / "snapshots" / sha / "config.json").read_text())
    assert config["model_type"] == "roberta" and config["vocab_size"] == hub_replica.TINY_VOCAB
    assert (
        json.loads(
            (tmp_path / "hub" / "models--microsoft--layoutlmv3-base" / "snapshots")
            .iterdir()
            .__next__()
            .joinpath("tokenizer_config.json")
            .read_text()
        )["tokenizer_class"]
        == "LayoutLMv3Tokenizer"
    )
    # idempotent: a second run keeps everything
    assert hub_replica.build(tmp_path, only=only, tiny=True, docs=2, log=lambda _: None)["built"] == []

    out = subprocess.run(
        [sys.executable, "-c", RESOLVE], env=replica_env(tmp_path), capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["model"] == "RobertaModel" and got["rows_of_embeddings"] == hub_replica.TINY_VOCAB
    assert got["tokenizer"] == hub_replica.TINY_VOCAB  # v3's files read by the word tokenizer, same vocabulary
    assert set(got["word_ids"]) == {0, 1}
    assert got["columns"] == ["image", "ground_truth"] and got["rows"] == 2
    assert got["documents"] == 2 and got["labelled"] == 2


def test_interrupted_repository_is_rebuilt(tmp_path):
    """A repository whose ref is missing (the build was cut before its last write) is built again."""
    only = ["darentang/sroie"]
    hub_replica.build(tmp_path, only=only, docs=1, log=lambda _: None)
    ref = tmp_path / "hub" / "datasets--darentang--sroie" / "refs" / "refs" / "convert" / "parquet"
    assert ref.is_file()
    ref.unlink()
    assert hub_replica.build(tmp_path, only=only, docs=1, log=lambda _: None)["built"] == only
    with pytest.raises(ValueError, match="unknown repositories"):
        hub_replica.build(tmp_path, only=["nobody/nothing"], log=lambda _: None)


def _real_size():
    return load_benchmark("real_size")


def test_real_size_gpu_estimate():
    """benchmarks/real_size.py's largest-batch arithmetic: 16 bytes of state per trainable parameter, half the
    fp32 activations per sample, 90% of 80 GB."""
    real_size = _real_size()
    assert real_size.max_batch_bf16(100e6, 100e6, 2e9) == 70  # (72e9 - 1.6e9) // 1e9
    assert real_size.max_batch_bf16(100e6, 50e6, 2e9) == 71  # frozen parameters hold weights only
    assert real_size.max_batch_bf16(10e9, 10e9, 2e9) == 0  # the states alone do not fit
    with pytest.raises(ValueError, match="positive"):
        real_size.max_batch_bf16(1e6, 1e6, 0)


def test_real_size_pads_a_collated_batch_as_the_collate_would_to_full_windows():
    """Padding a collated batch to 12 tokens equals collating the same windows padded to 12 by the collate itself."""
    import torch

    from docalign.data.encoding import EncodedWindow, collate_windows

    def window(n: int, label: int) -> EncodedWindow:
        return EncodedWindow(
            input_ids=[101, *range(1000, 1000 + n - 2), 102],
            bbox=[[0, 0, 0, 0], *[[i, i, i + 5, i + 5] for i in range(n - 2)], [1000, 1000, 1000, 1000]],
            labels=[-100, *[label] * (n - 2), -100],
            word_ids=[-1, *range(n - 2), -1],
            segment_ids=[-1, *[0] * (n - 2), -1],
            scored=[False, *[True] * (n - 2), False],
            doc_index=label,
            window_index=0,
            image=None,
        )

    windows = [window(5, 1), window(7, 2)]
    padded = _real_size().pad_tokens(collate_windows(windows, pad_token_id=3), 12, pad_token_id=3)
    longest = window(12, 0)
    reference = collate_windows([*windows, longest], pad_token_id=3)  # the collate pads both to 12
    assert padded.keys() == reference.keys()
    for key, value in padded.items():
        assert torch.equal(value, reference[key][:2]), key
    with pytest.raises(ValueError, match="shorter"):
        _real_size().pad_tokens(padded, 4, pad_token_id=3)
    with pytest.raises(KeyError, match="start_positions"):
        _real_size().pad_tokens({"input_ids": padded["input_ids"], "start_positions": padded["labels"]}, 13, 3)


# --- the rehearsal: every hub experiment at real size, through the real-size replica ------------------------------

REPLICA = REPO / "logs" / "hub-replica"
# The experiments that read the hub (checkpoints and/or datasets), one of each path; the ablations differ from
# their parent by loss weights only. Extra arguments keep each run to what a 2-core CPU can do.
FEW = [  # one epoch of 2 training batches of 1 document (then validation and a checkpoint), 1 test batch
    "--trainer.max_epochs",
    "1",
    "--trainer.limit_train_batches",
    "2",
    "--trainer.limit_val_batches",
    "1",
    "--trainer.limit_test_batches",
    "1",
    "--data.init_args.batch_size",
    "1",
]
CARVED = ["--data.init_args.val_size", "1"]  # FUNSD / SROIE carve validation from 4 training documents
REHEARSAL = {
    "cord_ft": [],
    "cord_aet": [],
    "cord_ft_v1": [],
    "cord_ft_v2": [],
    "funsd_ft": CARVED,
    "funsd_aet": CARVED,
    "sroie_ft": CARVED,
    "rvlcdip_ft": [],
    "rvlcdip_aet": [],
    "rvlcdip_vlcdoc": [],
    "tobacco_vlcdoc": ["--data.init_args.train_per_class", "1", "--data.init_args.val_per_class", "0"],
    "docvqa_ft": [],
    "docvqa_aet": [],
}


def rehearse(experiment: str, logs: Path, *extra: str, timeout: int = 1800) -> dict:
    """Fit and test ``experiment`` as shipped (no overlay) with HF_HOME at the replica; returns its metrics.json."""
    args = [
        sys.executable,
        "-m",
        "docalign.cli",
        "fit",
        "--config",
        str(EXPERIMENTS / "_base.yaml"),
        "--config",
        str(EXPERIMENTS / f"{experiment}.yaml"),
        "--trainer.logger.init_args.save_dir",
        str(logs),
        "--data.init_args.cache_dir",
        str(logs / "cache"),
        *FEW,
        *extra,
    ]
    if "rvlcdip" in experiment or "tobacco" in experiment or "docvqa" in experiment:
        args += ["--data.init_args.ocr_cache_dir", str(logs / "ocr-cache")]
    env = replica_env(REPLICA) | {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    out = subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    assert out.returncode == 0, f"{experiment}:\n{out.stderr[-4000:]}"
    found = sorted((logs / experiment).glob("version_*/metrics.json"))
    assert found, f"{experiment}: no metrics.json under {logs / experiment}"
    for checkpoint in found[-1].parent.glob("checkpoints/*.ckpt"):  # GBs each at real size
        checkpoint.unlink()
    return json.loads(found[-1].read_text())


@pytest.fixture(scope="module")
def replica():
    hub_replica.build(REPLICA, log=lambda _: None)
    return REPLICA


@pytest.mark.slow
@pytest.mark.parametrize("experiment", list(REHEARSAL))
def test_rehearsal(replica, experiment, tmp_path):
    metrics = rehearse(experiment, tmp_path / "logs", *REHEARSAL[experiment])
    assert metrics["global_steps"] == 2 and metrics["parameters"] > 100_000_000  # real size
    tested = metrics.get("test") or {}
    assert any(k.startswith("test/") for k in tested), f"{experiment}: no test metrics in {metrics}"
    assert all(v == v for v in tested.values())  # no NaN
