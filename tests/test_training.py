"""Short real training runs through the CLI: learning happens, precision and processes scale."""

import json
import math
import os
import subprocess
import sys

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import EXPERIMENTS, REPO


def scalars(log_dir, tag):
    events = EventAccumulator(str(log_dir))
    events.Reload()
    return [s.value for s in events.Scalars(tag)]


def demo_args(tmp_path, *extra):
    """The plain fine-tuning demo (demo_ft), shortened (MiniLM warm start kept, small images and windows)."""
    return [
        "fit",
        "--config",
        str(EXPERIMENTS / "_base.yaml"),
        "--config",
        str(EXPERIMENTS / "demo_ft.yaml"),
        "--experiment",
        "demo_ft",
        "--trainer.logger.init_args.save_dir",
        str(tmp_path / "logs"),
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.enable_model_summary",
        "false",
        "--trainer.log_every_n_steps",
        "1",
        "--model.backbone.image_size",
        "32",
        "--data.max_length",
        "128",
        "--data.stride",
        "32",
        *extra,
    ]


def test_fixed_seed_run_learns_and_beats_chance(tmp_path):
    from docalign.cli import cli_main

    cli = cli_main(
        demo_args(
            tmp_path,
            "--trainer.max_epochs",
            "2",
            "--data.num_train",
            "96",
            "--data.num_val",
            "16",
            "--data.num_test",
            "24",
        )
    )
    log_dir = tmp_path / "logs" / "demo_ft" / "version_0"
    losses = scalars(log_dir, "train/loss")
    assert len(losses) == cli.trainer.global_step > 24  # long receipts span two 128-token windows
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5, losses
    metrics = json.loads((log_dir / "metrics.json").read_text())
    # Chance level: a random tagger finds almost no whole entity (entity F1 ~ 0).
    assert metrics["test"]["test/f1"] > 0.3, metrics


def test_same_seed_same_run(tmp_path):
    from docalign.cli import cli_main

    runs = []
    for name in ("a", "b"):
        cli_main(
            demo_args(
                tmp_path / name,
                "--trainer.max_epochs",
                "2",
                "--data.max_docs",
                "16",
                "--trainer.limit_val_batches",
                "1",
                "--test_after_fit",
                "false",
            )
        )
        runs.append(scalars(tmp_path / name / "logs" / "demo_ft" / "version_0", "train/loss"))
    # Without trainer.deterministic (set in _base.yaml) these drift apart in the 6th digit within a few steps.
    assert runs[0] == runs[1] and len(runs[0]) >= 6


def test_bf16_mixed_precision_runs_on_cpu(tmp_path):
    from docalign.cli import cli_main

    cli = cli_main(
        demo_args(tmp_path, "--config", str(REPO / "tests/configs/tiny.yaml"), "--trainer.precision", "bf16-mixed")
    )
    assert cli.trainer.precision == "bf16-mixed" and cli.trainer.global_step == 2
    assert scalars(tmp_path / "logs" / "demo_ft" / "version_0", "train/loss")


@pytest.mark.ddp
def test_ddp_on_two_cpu_processes(tmp_path):
    """Real DDP (gloo, 2 processes) through the console script: global batch split, metrics gathered."""
    args = [
        sys.executable,
        "-m",
        "docalign.cli",
        *demo_args(
            tmp_path,
            "--config",
            str(REPO / "tests/configs/tiny.yaml"),
            "--trainer.accelerator",
            "cpu",
            "--trainer.devices",
            "2",
            "--trainer.strategy",
            "ddp",
            "--data.batch_size",
            "4",
            "--data.max_docs",
            "8",
            "--trainer.limit_train_batches",
            "null",
            "--trainer.limit_val_batches",
            "null",
            "--trainer.limit_test_batches",
            "null",
        ),
    ]
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    out = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    log_dir = tmp_path / "logs" / "demo_ft" / "version_0"
    metrics = json.loads((log_dir / "metrics.json").read_text())
    # Global batch 4 -> 2 windows per process per step; each process sees half of the windows.
    from docalign.data import SyntheticReceipts

    data = SyntheticReceipts(max_docs=8, max_length=64, stride=16, image_size=32)
    data.setup("fit")
    n = len(data.windows["train"])
    assert n > 8 and metrics["global_steps"] == math.ceil(math.ceil(n / 2) / 2)
    assert "test/f1" in metrics["test"]
    assert "world_size=2" in out.stdout + out.stderr or "distributed_backend=gloo" in out.stdout + out.stderr


def test_predictions_merged_per_document_score_what_the_test_metric_scored(tmp_path):
    """``predict_step`` rows, merged by ``document_tags`` (with segment decoding, as funsd_ft scores), give the
    test F1 (seqeval over the word tags, undecoded) and the F1 given the gold segments that ``fit`` wrote to
    metrics.json; the checkpoint monitor is the former."""
    import torch
    from seqeval.metrics import f1_score

    from docalign.cli import cli_main
    from docalign.conventions import IGNORE_INDEX
    from docalign.systems.token_classification import document_tags

    from conftest import cli_args

    cli = cli_main(
        [
            "fit",
            *cli_args(
                "funsd_ft",
                tmp_path,
                "--data.init_args.max_docs",
                "3",
                "--trainer.max_steps",
                "2",
                "--trainer.limit_test_batches",
                "1.0",
            ),
        ]
    )
    metrics = json.loads((tmp_path / "logs/funsd_ft/version_0/metrics.json").read_text())
    model, data = cli.model, cli.datamodule
    best = torch.load(cli.trainer.checkpoint_callback.best_model_path, map_location="cpu", weights_only=False)
    model.load_state_dict(best["state_dict"])
    loader = data.test_dataloader()
    rows = [row for batch in cli.trainer.predict(model, dataloaders=loader) for row in batch]
    gold: dict[int, dict[int, str]] = {}
    for batch in loader:
        scored = batch["scored"] & (batch["labels"] != IGNORE_INDEX)
        for b, t in scored.nonzero().tolist():
            gold.setdefault(int(batch["doc_index"][b]), {})[int(batch["word_ids"][b, t])] = model.label_names[
                int(batch["labels"][b, t])
            ]
    golds = [[words[w] for w in sorted(words)] for _, words in sorted(gold.items())]
    assert model.segment_decoding and len(golds) == 3
    assert cli.trainer.checkpoint_callback.monitor == "val/f1"
    for decoded, key in ((False, "test/f1"), (True, "test/f1_segments")):
        tags = document_tags(rows, segment_decoding=decoded)
        assert [len(t) for t in tags.values()] == [len(g) for g in golds]
        assert abs(f1_score(golds, list(tags.values())) - metrics["test"][key]) < 1e-6
