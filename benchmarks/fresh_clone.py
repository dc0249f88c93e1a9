"""Time the README's first command on fresh clones: ``make train`` (install included), several rounds.

    python benchmarks/fresh_clone.py [--rounds 3] [--test] [--state logs/fresh_clone.json] [--no-write]

Each round clones HEAD of this repository into a temporary folder beside it (with ``../shared`` linked beside the
clone, as CI lays it out) and runs, there, with HF_HUB_OFFLINE=1, ``make install`` and then ``make train``: the two
steps ``make train`` takes on a fresh clone (its install prerequisite, then the fit and test of ``demo``), timed
apart so that the install's spread and the training's show separately. ``--test`` also times ``make test`` in the
last round's clone. Rounds are resumable: each finished round is appended to ``--state`` (keyed by commit) and
skipped when the script runs again for the same commit. Writes the median and range over the rounds, each round's
figures and the machine's load to the "Fresh clone" section of docs/RESULTS.md. pip's download cache is whatever
the machine has (CI's machine is the same kind).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
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


def one_round(test: bool, commit: str) -> dict:
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(dir=REPO.parent, prefix="fresh-clone-") as tmp:
        clone = Path(tmp) / "docalign"
        shared = REPO.parent / "shared"
        if shared.is_dir():  # CI lays ../shared beside the clone; do the same
            (Path(tmp) / "shared").symlink_to(shared)
        subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
        subprocess.run(["git", "checkout", "-q", commit], cwd=clone, check=True)  # the commit the state is keyed by
        install_s, install_code, _ = timed(["make", "install"], clone, Path(tmp) / "install.log")
        train_s, train_code, _ = timed(["make", "train"], clone, Path(tmp) / "train.log")
        metrics = sorted(clone.glob("logs/demo/version_*/metrics.json"))
        result = json.loads(metrics[-1].read_text()) if metrics else {}
        row = {
            "load": load,
            "install_s": install_s,
            "train_s": train_s,
            "total_s": install_s + train_s,
            "exit": install_code or train_code,
            "f1": result.get("test", {}).get("test/f1", float("nan")),
            "fit_s": result.get("fit_seconds", float("nan")),
            "steps": result.get("global_steps"),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        }
        if test:
            test_s, test_code, test_log = timed(["make", "test"], clone, Path(tmp) / "test.log")
            summary = [line for line in test_log.splitlines() if re.search(r"\d+ (passed|failed)", line)]
            row.update(test_s=test_s, test_exit=test_code, test_summary=summary[-1].strip("= ") if summary else "")
    return row


def spread(values: list[float], scale: float = 60.0, digits: int = 1) -> str:
    v = [x / scale for x in values]
    if len(v) == 1:
        return f"{v[0]:.{digits}f}"
    return f"{statistics.median(v):.{digits}f} ({min(v):.{digits}f}-{max(v):.{digits}f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--test", action="store_true", help="also time make test (last round's clone)")
    parser.add_argument("--state", type=Path, default=REPO / "logs" / "fresh_clone.json")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    state = json.loads(args.state.read_text()) if args.state.exists() else {}
    rounds = state.setdefault(commit, [])
    while len(rounds) < args.rounds:
        rounds.append(one_round(args.test and len(rounds) == args.rounds - 1, commit))
        args.state.parent.mkdir(parents=True, exist_ok=True)
        args.state.write_text(json.dumps(state, indent=1))
        print(json.dumps(rounds[-1]), flush=True)
    rounds = rounds[: args.rounds]
    f1 = [r["f1"] for r in rounds]
    lines = [
        f"Command: `python benchmarks/fresh_clone.py --rounds {args.rounds}` (commit {commit}); each round a fresh "
        f"clone, `make install` then `make train` (what `make train` runs on a fresh clone, timed apart). "
        f"Machine: {machine()}.",
        "",
        "| command | wall time, min: median (range) over rounds | result |",
        "|---|---|---|",
        f"| `make train` on a fresh clone, install included | **{spread([r['total_s'] for r in rounds])}** "
        f"(install {spread([r['install_s'] for r in rounds])}; fit + test of `demo` "
        f"{spread([r['train_s'] for r in rounds])}) | test entity F1 {min(f1):.4f}-{max(f1):.4f} |",
    ]
    tested = [r for r in rounds if "test_s" in r]
    if tested:
        lines.append(
            f"| `make test` (.venv already there) | {tested[-1]['test_s'] / 60:.1f} (exit {tested[-1]['test_exit']}) | "
            f"{tested[-1]['test_summary'] or 'no summary'} |"
        )
    lines += [
        "",
        "| round | date | load (1 min) at start | install min | fit + test min | total min | test F1 | exit |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(rounds, 1):
        lines.append(
            f"| {i} | {r['date']} | {r['load']:.1f} | {r['install_s'] / 60:.2f} | {r['train_s'] / 60:.2f} | "
            f"{r['total_s'] / 60:.2f} | {r['f1']:.4f} | {r['exit']} |"
        )
    body = "\n".join(lines)
    if not args.no_write:
        write_section("fresh_clone", "Fresh clone: the README's commands", body)
    print(body)
    return 0 if all(r["exit"] == 0 for r in rounds) else 1


if __name__ == "__main__":
    raise SystemExit(main())
