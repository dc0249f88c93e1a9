"""Time the README's two commands on a fresh clone: ``make train`` (install included) and ``make test``.

    python benchmarks/fresh_clone.py [--skip-test]

Clones HEAD of this repository into a temporary folder beside it (with ``../shared`` linked beside
the clone, as CI lays it out), runs ``make train`` and then ``make test`` there with HF_HUB_OFFLINE=1, and writes the wall times,
the test F1 and the test summary to the "Fresh clone" section of docs/RESULTS.md. pip's download
cache is whatever the machine has (CI's machine is the same kind).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import machine, write_section  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def timed(cmd: list[str], cwd: Path, log: Path) -> tuple[float, int, str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    start = time.time()
    with log.open("w") as out:
        code = subprocess.run(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env).returncode
    return time.time() - start, code, log.read_text()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-test", action="store_true", help="time make train only")
    args = parser.parse_args()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    with tempfile.TemporaryDirectory(dir=REPO.parent, prefix="fresh-clone-") as tmp:
        clone = Path(tmp) / "docalign"
        shared = REPO.parent / "shared"
        if shared.is_dir():  # CI lays ../shared beside the clone; do the same
            (Path(tmp) / "shared").symlink_to(shared)
        subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
        train_s, train_code, train_log = timed(["make", "train"], clone, Path(tmp) / "train.log")
        metrics = sorted(clone.glob("logs/demo/version_*/metrics.json"))
        f1 = json.loads(metrics[-1].read_text())["test"]["test/f1"] if metrics else float("nan")
        fit_s = json.loads(metrics[-1].read_text())["fit_seconds"] if metrics else float("nan")
        rows = [
            f"| `make train` (creates .venv, installs, trains and tests `demo`, i.e. AET) | {train_s / 60:.1f} min "
            f"(exit {train_code}) | test entity F1 = {f1:.4f}; fit + test {fit_s / 60:.1f} min |"
        ]
        if not args.skip_test:
            test_s, test_code, test_log = timed(["make", "test"], clone, Path(tmp) / "test.log")
            summary = [line for line in test_log.splitlines() if re.search(r"\d+ (passed|failed)", line)]
            rows.append(
                f"| `make test` (.venv already there) | {test_s / 60:.1f} min (exit {test_code}) | "
                f"{summary[-1].strip('= ') if summary else 'no summary'} |"
            )
    body = (
        f"Command: `python benchmarks/fresh_clone.py` (commit {commit}). Machine: {machine()}.\n\n"
        "| command | wall time | result |\n|---|---|---|\n" + "\n".join(rows)
    )
    write_section("fresh_clone", "Fresh clone: the README's commands", body)
    print(body)
    return 0 if train_code == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
