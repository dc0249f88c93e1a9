"""Short offline runs on the synthetic documents of many kinds: classification accuracy / macro-F1, QA ANLS.

    python benchmarks/offline_docs.py run [--experiments rvlcdip_ft docvqa_ft rvlcdip_vlcdoc] [--seeds 0] [--steps 80]
    python benchmarks/offline_docs.py report [--logs docs/runs/offline_docs] [--steps 80]
    python benchmarks/offline_docs.py run --difficulty hard      # 5 classification experiments x seeds 0 1 2
    python benchmarks/offline_docs.py report --difficulty hard

*run* trains and tests each experiment offline (``_offline.yaml``; ``*_aet`` adds ``_offline_aet.yaml``, ``*_vlcdoc``
``_offline_vlcdoc.yaml``) on rendered documents (``_offline_docs.yaml`` with 320 / 80 / 160 pages), all at the same
small budget: ``--steps`` steps at batch 8, 128-token windows (stride 32), validation every ``--steps / 2`` steps,
the best checkpoint tested. DocVQA validates once, at the end, on 40 pages and tests on 40 (its pages hold several
questions of several windows each). One run at a time (the machine is shared). Logs:
``<logs>/<experiment>/version_<N>`` (TensorBoard events, metrics.json), by default under ``docs/runs/`` in the
repository: finished runs are committed there (``docs/runs/.gitignore`` keeps checkpoints out).

*run* is resumable per (experiment, seed): a finished run of the same difficulty and steps under ``--logs`` (its
``metrics.json`` with test metrics) is found and skipped, so a matrix can span several sessions; a run cut off
before its ``metrics.json`` starts again from step 0 in a new folder (the cut-off folder is left as it is).

``--difficulty hard`` adds ``_offline_docs_hard.yaml`` (pages whose class shows only in their words and layout
together; classification only) and, unless given, runs the five classification experiments ``rvlcdip_ft``,
``rvlcdip_aet``, ``rvlcdip_vlcdoc`` and its two ablations for seeds 0, 1 and 2, logging under
``docs/runs/offline_docs_hard``: finished runs (config, metrics, TensorBoard events; no checkpoints) are committed
there, so the matrix resumes from any clone.

*report* reads every finished run of ``--difficulty`` and ``--steps`` under ``--logs`` (the newest per experiment and
seed) and
writes the table (per experiment: runs, test accuracy, macro-F1 or ANLS as mean +- std over seeds, steps, fit
minutes) into the "Offline documents" section of docs/RESULTS.md (``hard``: its own section).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import machine, write_section  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DIFFICULTIES = ("easy", "hard")
# Per difficulty: the default logs folder, experiments and seeds of *run*.
DEFAULTS = {
    "easy": (REPO / "docs" / "runs" / "offline_docs", ["rvlcdip_ft", "docvqa_ft", "rvlcdip_vlcdoc"], [0]),
    "hard": (  # kept in the repository (docs/runs/.gitignore drops checkpoints), so the matrix resumes in any clone
        REPO / "docs" / "runs" / "offline_docs_hard",
        ["rvlcdip_ft", "rvlcdip_aet", "rvlcdip_vlcdoc", "rvlcdip_vlcdoc_no_inter", "rvlcdip_vlcdoc_no_intra"],
        [0, 1, 2],
    ),
}


def command(experiment: str, seed: int, steps: int, logs: Path, difficulty: str = "easy") -> list[str]:
    configs = ["_base", experiment, "_offline", "_offline_docs"]
    configs += ["_offline_docs_hard"] if difficulty == "hard" else []
    configs += ["_offline_aet"] if experiment.endswith("_aet") else []
    configs += ["_offline_vlcdoc"] if "_vlcdoc" in experiment else []
    cmd = [sys.executable, "-m", "docalign.cli", "fit"]
    for config in configs:
        cmd += ["--config", f"experiments/{config}.yaml"]
    qa = experiment.startswith("docvqa")
    pages = "{train: 320, val: 40, test: 40}" if qa else "{train: 320, val: 80, test: 160}"
    cmd += [
        "--data.init_args.synthetic_docs",
        pages,
        "--trainer.max_steps",
        str(steps),
        "--trainer.val_check_interval",
        str(steps if qa else steps // 2),
        "--trainer.check_val_every_n_epoch",
        "null",
        "--data.init_args.batch_size",
        "8",
        "--data.init_args.max_length",
        "128",
        "--data.init_args.stride",
        "32",
        "--trainer.log_every_n_steps",
        "5",
        "--seed_everything",
        str(seed),
        "--trainer.logger.init_args.save_dir",
        str(logs),
        "--trainer.enable_progress_bar",
        "false",
    ]
    if qa:
        cmd += ["--data.init_args.max_question_tokens", "32", "--data.init_args.eval_batch_size", "16"]
    return cmd


def run_difficulty(run_dir: Path) -> str:
    """The synthetic difficulty a run was trained at, from the ``config.yaml`` LightningCLI saved in its folder
    (``easy`` when the run or its config predates the setting)."""
    config = run_dir / "config.yaml"
    data = (yaml.safe_load(config.read_text()) or {}).get("data") if config.is_file() else None
    return ((data or {}).get("init_args") or {}).get("synthetic_difficulty") or "easy"


def finished_runs(logs: Path, difficulty: str, steps: int) -> dict[tuple[str, int], dict]:
    """The finished runs (a ``metrics.json`` with test metrics) of ``difficulty`` and ``steps`` training steps under
    ``logs``, by (experiment, seed); of several, the newest (highest version number) wins."""

    def version(path: Path) -> tuple[str, int]:
        number = re.match(r"version_(\d+)", path.parent.name)
        return path.parent.parent.name, int(number.group(1)) if number else -1

    runs: dict[tuple[str, int], dict] = {}
    for path in sorted(logs.glob("*/version_*/metrics.json"), key=version):
        metrics = json.loads(path.read_text())
        finished = metrics.get("test") and metrics.get("global_steps") == steps
        if finished and run_difficulty(path.parent) == difficulty:
            runs[(metrics["experiment"], metrics.get("seed"))] = {**metrics, "metrics_path": str(path)}
    return runs


def pending(todo: list[tuple[str, int]], done: dict[tuple[str, int], dict]) -> list[tuple[str, int]]:
    """The (experiment, seed) pairs of ``todo`` without a finished run in ``done``, in order."""
    return [run for run in todo if run not in done]


def run(args: argparse.Namespace) -> None:
    logs = Path(args.logs)
    if args.difficulty != "easy" and any(e.startswith("docvqa") for e in args.experiments):
        raise SystemExit(f"--difficulty {args.difficulty} is for classification experiments; DocVQA draws easy pages")
    matrix = [(e, s) for s in args.seeds for e in args.experiments]
    done = finished_runs(logs, args.difficulty, args.steps)
    for experiment, seed in (run for run in matrix if run in done):
        print(f"{experiment} seed {seed}: finished, skipped ({done[experiment, seed]['metrics_path']})")
    todo = pending(matrix, done)
    for n, (experiment, seed) in enumerate(todo, 1):
        cmd = command(experiment, seed, args.steps, logs, args.difficulty)
        print(f"[{n}/{len(todo)}] " + " ".join(cmd), flush=True)
        subprocess.run(
            cmd, cwd=REPO, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO / "src")}
        )


def _stat(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def _best(run: dict) -> str:
    best = run.get("best_val") or {}
    step = Path(run.get("best_checkpoint", "")).stem.rsplit("step", 1)[-1]
    return ", ".join(f"{k} {v:.4f} (step {step})" for k, v in best.items()) or "-"


def report(args: argparse.Namespace) -> None:
    rows: dict[str, list[dict]] = {}
    runs = finished_runs(Path(args.logs), args.difficulty, args.steps)
    for experiment, seed in sorted(runs, key=lambda run: (run[0], str(run[1]))):
        rows.setdefault(experiment, []).append(runs[experiment, seed])
    key, title, body = SECTIONS[args.difficulty]
    text = body(args, rows)
    write_section(key, title, text)
    print(text)


def table(rows: dict[str, list[dict]]) -> str:
    """Markdown: per experiment the seeds, test metrics as mean +- std over seeds, best val, steps, fit minutes."""
    lines = [
        "| experiment | runs (seeds) | test accuracy | test macro-F1 | test ANLS | best val (checkpoint) | steps | fit min |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for experiment, runs in rows.items():

        def values(key: str) -> list[float]:
            return [r["test"][key] for r in runs if key in r.get("test", {})]

        lines.append(
            f"| {experiment} | {len(runs)} ({', '.join(str(r.get('seed')) for r in runs)}) | {_stat(values('test/acc'))} | "
            f"{_stat(values('test/macro_f1'))} | {_stat(values('test/anls'))} | "
            f"{', '.join(_best(r) for r in runs)} | "
            f"{', '.join(str(r['global_steps']) for r in runs)} | "
            f"{', '.join(str(round(r['fit_seconds'] / 60)) for r in runs)} |"
        )
    return "\n".join(lines)


def example(args: argparse.Namespace, rows: dict[str, list[dict]]) -> str:
    """The command of the table's first experiment (``rvlcdip_ft`` when there is none), seed 0, as a shell line."""
    cmd = command(next(iter(rows), "rvlcdip_ft"), 0, args.steps, Path("LOGS"), args.difficulty)
    return " ".join(["python"] + [f"'{a}'" if " " in a else a for a in cmd[1:]])


def steps_flag(args: argparse.Namespace) -> str:
    """`` --steps N`` when the budget is not the default one."""
    return f" --steps {args.steps}" if args.steps != 80 else ""


def saturated(rows: dict[str, list[dict]]) -> list[str]:
    """The experiments with a run whose best validation accuracy is 1.0."""
    return sorted({e for e, runs in rows.items() for r in runs if r.get("best_val", {}).get("val/acc") == 1.0})


def easy_body(args: argparse.Namespace, rows: dict[str, list[dict]]) -> str:
    finding = (
        f"Validation accuracy reached 1.0 within the budget ({', '.join(saturated(rows))}): these documents are "
        "told apart by their words alone (each kind has its own vocabulary beside shared filler words), so at this "
        "budget the table shows that each system trains and tests end to end offline, not which one is better; "
        'the hard pages ("Offline documents, hard") compare the classifiers.'
        if saturated(rows)
        else ""
    )
    return f"""Written by `python benchmarks/offline_docs.py report --logs {args.logs}{steps_flag(args)}` on {machine()}.

Short offline runs on the (easy) synthetic documents (`docalign.data.synthetic_docs`: RVL-CDIP's 16 kinds, balanced;
QA pairs over rendered fields), all at one budget: {args.steps} steps at batch 8, 128-token windows, best checkpoint
tested; test metrics are mean ± std over the seeds listed. Classification: 320 / 80 / 160 pages (chance accuracy
1/16); QA: 320 / 40 / 40 pages, validated once at the end. Command (per experiment and seed; `*_vlcdoc` adds
`--config experiments/_offline_vlcdoc.yaml`, QA the flags in the script): `{example(args, rows)}`.

{table(rows)}

{finding}
"""


def hard_body(args: argparse.Namespace, rows: dict[str, list[dict]]) -> str:
    finding = (
        f"Validation accuracy reached 1.0 ({', '.join(saturated(rows))}): even the hard pages saturate at this budget."
        if saturated(rows)
        else ""
    )
    return f"""Written by `python benchmarks/offline_docs.py report --difficulty hard --logs {args.logs}{steps_flag(args)}` on {machine()}.

Short offline runs on the **hard** synthetic documents (`--config experiments/_offline_docs_hard.yaml`: words shared
within groups of kinds, templates shared between pairs of kinds, OCR-like noise, so that the class shows only in
the words and the layout together; linear probes in "Synthetic documents: how hard"), all at one budget:
{args.steps} steps at batch 8, 128-token windows, best checkpoint tested; 320 / 80 / 160 pages (chance accuracy
1/16). Test metrics are mean ± std over the seeds listed. Command (per experiment and seed; `*_aet` adds
`--config experiments/_offline_aet.yaml`, `*_vlcdoc*` `--config experiments/_offline_vlcdoc.yaml`):
`{example(args, rows)}`.

{table(rows)}

{finding}
"""


# Per difficulty: the docs/RESULTS.md section that *report* writes (key, title, body).
SECTIONS = {
    "easy": ("offline_docs", "Offline documents: classification and QA (short runs)", easy_body),
    "hard": ("offline_docs_hard", "Offline documents, hard: classification (short runs)", hard_body),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("--experiments", nargs="+", help="default: per --difficulty (see the module's docstring)")
    r.add_argument("--seeds", nargs="+", type=int, help="default: 0 (easy), 0 1 2 (hard)")
    r.add_argument("--steps", type=int, default=80)
    p = sub.add_parser("report")
    p.add_argument("--steps", type=int, default=80)
    for s in (r, p):
        s.add_argument("--difficulty", choices=DIFFICULTIES, default="easy", help="hard: add _offline_docs_hard.yaml")
        s.add_argument("--logs", help="default: docs/runs/offline_docs (easy), docs/runs/offline_docs_hard (hard)")
    args = parser.parse_args()
    logs, experiments, seeds = DEFAULTS[args.difficulty]
    args.logs = args.logs or str(logs)
    if args.command == "run":
        args.experiments, args.seeds = args.experiments or experiments, args.seeds or seeds
        run(args)
    else:
        report(args)


if __name__ == "__main__":
    main()
