"""Shared by the FUNSD matrix scripts (``funsd_aet.py``, ``funsd_decisive.py``): the ``docalign fit`` command of one
run on real FUNSD offline, running it once (a run whose ``metrics.json`` exists is not run again), and the record of a
matrix's budget (one table compares one budget).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
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


# While a run trains, ``<run_dir>.running`` beside its folder names the host and process training it (git ignores it):
# another matrix process leaves that run alone while the process lives, and starts it again once it has died. A
# marker from another host cannot be checked: the run counts as active while its folder changed in the last
# ``ACTIVE_SECONDS`` (events are written every few minutes, even on one thread).
ACTIVE_SECONDS = 900


def marker(run_dir: Path) -> Path:
    return run_dir.with_name(run_dir.name + ".running")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    return True


def active(run_dir: Path) -> bool:
    """``run_dir`` is unfinished and a live process trains it (its ``.running`` marker names one). A folder without a
    marker (an interrupted run, or one checked out from git) is not active, whatever its files' times."""
    path = marker(run_dir)
    if finished(run_dir) or not path.exists():
        return False
    host, _, pid = path.read_text().strip().partition(" ")
    if host == socket.gethostname():
        return pid.isdigit() and _alive(int(pid))
    newest = max((p.stat().st_mtime for p in run_dir.rglob("*") if p.is_file()), default=path.stat().st_mtime)
    return time.time() - newest < ACTIVE_SECONDS


def run_one(cmd: list[str], run_dir: Path, log: Path, label: str, keep_checkpoints: bool = True) -> str:
    """Run ``cmd`` (which logs into ``run_dir``) with one thread, its output into ``log``; skipped when ``run_dir`` is
    finished or ``active`` (another process trains it; this one marks the run while it trains). A folder left by an
    interrupted run is removed first: its event files and ``config.yaml`` would mix with the new run's.
    ``keep_checkpoints=False`` deletes ``run_dir/checkpoints`` once the run has tested."""
    if finished(run_dir):
        return f"{label}: done before"
    if active(run_dir):
        return f"{label}: SKIPPED, another process trains it ({marker(run_dir)}: {marker(run_dir).read_text().strip()})"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO / "src"))
    log.parent.mkdir(parents=True, exist_ok=True)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    marker(run_dir).write_text(f"{socket.gethostname()} {os.getpid()}\n")
    start = time.time()
    try:
        with log.open("w") as out:
            rc = subprocess.call(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    finally:
        marker(run_dir).unlink(missing_ok=True)
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
