"""Exact resume: which run ``--ckpt_path`` continues, and the random number generators' states.

Lightning 2.x restores the weights, optimiser, schedulers and the loops' progress from a checkpoint (a run resumed
mid-epoch runs only the epoch's remaining batches), and it saves and restores a train DataLoader's own
``state_dict`` when it has one (``docalign.data.samplers.ResumableLoader``: the epoch's shuffling order and the
batches consumed). It does not restore the random number generators, so dropout masks, augmentations and the next
epoch's shuffle would differ after a resume; ``rng_state`` / ``set_rng_state`` capture and restore them (Python,
NumPy, torch CPU and every CUDA device) as plain tensors and ints, so a checkpoint still loads with
``torch.load(weights_only=True)``.

Run folders: ``<save_dir>/<experiment>/version_<N>[_<run name>]/checkpoints/*.ckpt``. ``resumable_run`` finds the
newest run of an experiment that holds ``checkpoints/last.ckpt`` (``--ckpt_path last``); ``run_of_checkpoint`` tells
whether a checkpoint path lies inside such a folder, so the resumed run logs into that same folder.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

VERSION = re.compile(r"^version_(\d+)(?:_(.+))?$")


class ResumeError(ValueError):
    """``--ckpt_path`` names no run that can be resumed; the message says where it looked."""


@dataclass(frozen=True)
class RunFolder:
    """``<save_dir>/<experiment>/<version>``: the logger's save_dir, name and version (a folder name)."""

    save_dir: Path
    experiment: str
    version: str

    @property
    def path(self) -> Path:
        return self.save_dir / self.experiment / self.version

    @property
    def last(self) -> Path:
        return self.path / "checkpoints" / "last.ckpt"


def version_number(name: str) -> Optional[int]:
    """``N`` of a ``version_N`` or ``version_N_<run name>`` folder name, else None."""
    match = VERSION.match(name)
    return int(match.group(1)) if match else None


def next_version(experiment_dir: Path) -> int:
    """The first N above every ``version_N*`` folder in ``experiment_dir`` (0 when there is none)."""
    numbers = [version_number(p.name) for p in experiment_dir.glob("version_*") if p.is_dir()]
    return max([n for n in numbers if n is not None], default=-1) + 1


def resumable_run(save_dir: Path, experiment: str) -> RunFolder:
    """The newest run (highest N) of ``experiment`` under ``save_dir`` that holds ``checkpoints/last.ckpt``."""
    folder = Path(save_dir) / experiment
    runs = sorted(
        (version_number(p.name), p.name) for p in folder.glob("version_*") if version_number(p.name) is not None
    )
    for _, name in reversed(runs):
        run = RunFolder(Path(save_dir), experiment, name)
        if run.last.is_file():
            return run
    seen = ", ".join(name for _, name in runs) or "none"
    raise ResumeError(
        f"--ckpt_path last: no run of experiment '{experiment}' to resume: no {folder}/version_*/checkpoints/last.ckpt "
        f"(run folders there: {seen}). Start a new run without --ckpt_path, or pass a checkpoint file."
    )


def run_of_checkpoint(ckpt_path: Path) -> Optional[RunFolder]:
    """The run folder a checkpoint lies in (``.../<experiment>/version_N/checkpoints/x.ckpt``), else None."""
    path = Path(ckpt_path).resolve()
    if path.parent.name != "checkpoints" or version_number(path.parent.parent.name) is None:
        return None
    version_dir = path.parent.parent
    return RunFolder(version_dir.parent.parent, version_dir.parent.name, version_dir.name)


# --- random number generators ---------------------------------------------------------------------------------
def rng_state() -> dict[str, Any]:
    """The states of Python's, NumPy's and torch's global generators (CPU and each CUDA device), as tensors/ints."""
    version, internal, gauss = random.getstate()
    numpy_state = np.random.get_state(legacy=False)
    state: dict[str, Any] = {
        "python": {"version": version, "internal": torch.tensor(internal, dtype=torch.int64), "gauss": gauss},
        "numpy": {
            "bit_generator": numpy_state["bit_generator"],
            "key": torch.from_numpy(numpy_state["state"]["key"].astype(np.int64)),
            "pos": int(numpy_state["state"]["pos"]),
            "has_gauss": int(numpy_state["has_gauss"]),
            "gauss": float(numpy_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what ``rng_state`` captured (CUDA states only where this process has as many devices)."""
    py = state["python"]
    random.setstate((int(py["version"]), tuple(int(x) for x in py["internal"].tolist()), py["gauss"]))
    npy = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": npy["bit_generator"],
            "state": {"key": npy["key"].numpy().astype(np.uint32), "pos": int(npy["pos"])},
            "has_gauss": int(npy["has_gauss"]),
            "gauss": float(npy["gauss"]),
        }
    )
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available() and torch.cuda.device_count() == len(cuda):
        torch.cuda.set_rng_state_all(cuda)
