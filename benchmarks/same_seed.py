"""Same seed, same test metrics: runs three short deterministic fits and writes their test metrics as JSON.

    python benchmarks/same_seed.py OUT.json            # run at one revision
    python benchmarks/same_seed.py --compare A.json B.json

The runs (seed 42, ``trainer.deterministic`` on, as in ``_base.yaml``): ``demo`` and ``demo_ft`` shortened to two
epochs on the first 200 documents of each split (50 steps), and ``funsd_aet`` at the test suite's tiny size on the real FUNSD
(``$DOCALIGN_FUNSD`` or ``../shared/data/funsd``). Restructurings that change no computation must give identical
numbers at two revisions.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
E = REPO / "experiments"
T = REPO / "tests" / "configs"
FUNSD = os.environ.get("DOCALIGN_FUNSD") or str(REPO.parent / "shared" / "data" / "funsd")
SHORT = ["--trainer.max_epochs", "2", "--data.max_docs", "200", "--trainer.enable_progress_bar", "false"]
RUNS = {
    "demo": ["--config", E / "_base.yaml", "--config", E / "demo.yaml", *SHORT],
    "demo_ft": ["--config", E / "_base.yaml", "--config", E / "demo_ft.yaml", *SHORT],
    "funsd_aet_tiny": [
        "--config",
        E / "_base.yaml",
        "--config",
        E / "funsd_aet.yaml",
        "--config",
        E / "_offline.yaml",
        "--config",
        E / "_offline_aet.yaml",
        "--config",
        T / "tiny.yaml",
        "--config",
        T / "tiny_aet.yaml",
        "--data.init_args.root",
        FUNSD,
        "--trainer.limit_test_batches",
        "null",
        "--data.init_args.cache_dir",
        "{tmp}/cache",
    ],
}

ORDER = ["funsd_aet_tiny", "demo_ft", "demo"]  # cheapest first: a cut-short run still compares something


def run(out: Path) -> None:
    results = json.loads(out.read_text()) if out.exists() else {}
    for name, args in sorted(RUNS.items(), key=lambda item: ORDER.index(item[0])):
        if name in results:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [
                sys.executable,
                "-m",
                "docalign.cli",
                "fit",
                *(str(a).format(tmp=tmp) for a in args),
                "--experiment",
                name,
                "--trainer.logger.init_args.save_dir",
                f"{tmp}/logs",
            ]
            done = subprocess.run(
                cmd, cwd=REPO, env=dict(os.environ, HF_HUB_OFFLINE="1"), capture_output=True, text=True
            )
            if done.returncode:
                raise SystemExit(f"{name} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
            metrics = json.loads(next(Path(tmp, "logs").glob("*/version_0/metrics.json")).read_text())
        results[name] = {"test": metrics["test"], "best_val": metrics.get("best_val"), "steps": metrics["global_steps"]}
        out.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
        print(name, results[name]["test"], flush=True)


def compare(a: Path, b: Path) -> int:
    ra, rb = json.loads(a.read_text()), json.loads(b.read_text())
    same = True
    for name in RUNS:
        if name not in ra or name not in rb:
            print(f"{name:16s} not measured in both")
            continue
        for key in sorted(set(ra[name]["test"]) | set(rb[name]["test"])):
            x, y = ra[name]["test"].get(key), rb[name]["test"].get(key)
            mark = "" if x == y else "   DIFFERS"
            same &= x == y
            print(f"{name:16s} {key:22s} {x!s:>22s} {y!s:>22s}{mark}")
    print("identical" if same else "not identical")
    return 0 if same else 1


if __name__ == "__main__":
    if sys.argv[1:2] == ["--compare"]:
        raise SystemExit(compare(Path(sys.argv[2]), Path(sys.argv[3])))
    run(Path(sys.argv[1]))
