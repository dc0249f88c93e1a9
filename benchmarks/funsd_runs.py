"""Shared by the FUNSD matrix scripts (``funsd_aet.py``, ``funsd_decisive.py``): the ``docalign fit`` command of one
run on real FUNSD offline, running it once (a run whose ``metrics.json`` exists is not run again), and the record of a
matrix's budget (one table compares one budget).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

REPO = Path(__file__).resolve().parents[1]


def fit_args(experiment: str, epochs: int, save_dir: Path, *extra: str) -> list[str]:
    """The ``docalign fit`` arguments of ``experiments/<experiment>.yaml`` offline (``_offline.yaml``; an AET experiment
    adds ``_offline_aet.yaml``) for ``epochs`` epochs at batch 8, logged under ``save_dir``, then ``extra``."""
    configs = ["_base", experiment, "_offline"] + (["_offline_aet"] if "aet" in experiment else [])
    args = ["fit"]
    for config in configs:
        args += ["--config", str(REPO / "experiments" / f"{config}.yaml")]
    return args + [
        "--trainer.max_steps",
        "-1",
        "--trainer.max_epochs",
        str(epochs),
        "--data.batch_size",
        "8",
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.logger.init_args.save_dir",
        str(save_dir),
        *extra,
    ]


def fit_command(
    experiment: str,
    seed: int,
    epochs: int,
    save_dir: Path,
    overrides: Sequence[str] = (),
    name: Optional[str] = None,
) -> list[str]:
    """``fit_args`` as a command line, with ``seed``, logged to ``<save_dir>/<name>/version_seed<seed>`` (``name``:
    the experiment's by default), then ``overrides`` (CLI tokens, applied last)."""
    version = ["--seed_everything", str(seed), "--trainer.logger.init_args.version", f"version_seed{seed}"]
    named = ["--experiment", name] if name else []
    return [sys.executable, "-m", "docalign.cli", *fit_args(experiment, epochs, save_dir, *named, *version, *overrides)]


def finished(run_dir: Path) -> bool:
    """A run is finished when its ``metrics.json`` (written after the test of its best checkpoint) exists."""
    return (run_dir / "metrics.json").exists()


# A folder without metrics.json written to this recently is taken to be a run another process is training (events are
# written every few minutes, even on one thread): it is left alone rather than restarted under it.
ACTIVE_SECONDS = 900


def active(run_dir: Path) -> bool:
    """``run_dir`` is unfinished and one of its files changed in the last ``ACTIVE_SECONDS``."""
    newest = max((p.stat().st_mtime for p in run_dir.rglob("*") if p.is_file()), default=0.0)
    return not finished(run_dir) and time.time() - newest < ACTIVE_SECONDS


def run_one(cmd: list[str], run_dir: Path, log: Path, label: str, keep_checkpoints: bool = True) -> str:
    """Run ``cmd`` (which logs into ``run_dir``) with one thread, its output into ``log``; skipped when ``run_dir`` is
    finished or ``active`` (another process trains it). A folder left by an interrupted run is removed first: its
    event files and ``config.yaml`` would mix with the new run's. ``keep_checkpoints=False`` deletes
    ``run_dir/checkpoints`` once the run has tested."""
    if finished(run_dir):
        return f"{label}: done before"
    if active(run_dir):
        return (
            f"{label}: SKIPPED, {run_dir} changed in the last {ACTIVE_SECONDS // 60} min (another process trains it?)"
        )
    if run_dir.exists():
        shutil.rmtree(run_dir)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO / "src"))
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.time()
    with log.open("w") as out:
        rc = subprocess.call(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    if rc == 0 and not keep_checkpoints:
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    status = "ok" if rc == 0 and finished(run_dir) else f"FAILED (exit {rc}, see {log})"
    return f"{label}: {status} in {time.time() - start:.0f} s"


def earlier_record(path: Path, epochs: int) -> dict:
    """The matrix record at ``path`` (``{}`` when there is none), refusing a budget other than the one recorded there:
    one table compares one budget."""
    if not path.exists():
        return {}
    record = json.loads(path.read_text())
    if record["epochs"] != epochs:
        raise SystemExit(
            f"the matrix in {path.parent} ran {record['epochs']} epochs; this run asks for {epochs}: "
            "one table compares one budget (move the folder away to start another)"
        )
    return record
