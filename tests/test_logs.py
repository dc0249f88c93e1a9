"""What a run leaves for comparison: train/loss in short runs, per-type entity scores, run names, the command list."""

from __future__ import annotations

import json
import subprocess
import sys

from docalign.cli import COMMANDS, cli_main
from docalign.compare import read_scalars
from docalign.metrics.entity_f1 import entity_types

from conftest import REPO, cli_args


def test_a_short_named_run_logs_train_loss_and_per_type_scores(tmp_path):
    """2 steps with log_every_n_steps 10 (from _base.yaml): train/loss is still logged, every step."""
    cli = cli_main(["fit", *cli_args("demo_ft", tmp_path, "--run_name", "smoke", "--trainer.max_epochs", "1")])
    run = tmp_path / "logs" / "demo_ft" / "version_0_smoke"
    assert cli.trainer.log_dir == str(run)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["run_name"] == "smoke" and metrics["global_steps"] == 2
    types = entity_types(cli.datamodule.label_names)
    assert len(types) > 10  # CORD's schema
    for kind in types:
        for score in ("precision", "recall", "f1"):
            assert 0.0 <= metrics["test"][f"test/{score}_{kind}"] <= 1.0
    tags = [f"val/f1_{types[0]}", "train/loss"]
    scalars = read_scalars(run, tags)
    assert [e.step for e in scalars["train/loss"]] == [0, 1]
    assert len(scalars[f"val/f1_{types[0]}"]) == 1
    again = cli_main(["fit", *cli_args("demo_ft", tmp_path, "--run_name", "smoke", "--trainer.max_epochs", "1")])
    assert again.trainer.log_dir == str(tmp_path / "logs" / "demo_ft" / "version_1_smoke")  # numbered on


def test_help_lists_every_command():
    out = subprocess.run(
        [sys.executable, "-m", "docalign.cli", "--help"], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    listed = [line.split()[0] for line in out.stdout.splitlines() if line.startswith("  ") and line.split()]
    assert set(COMMANDS) == {"fit", "validate", "test", "predict", "export", "predict-split", "ocr", "compare"}
    assert all(name in listed for name in COMMANDS), out.stdout
