"""FUNSD offline quality table of AETNet and its ablations against plain fine-tuning, 3 seeds each.

    python benchmarks/funsd_aet.py run [--epochs 3] [--seeds 1 2 3] [--jobs 2] [--experiments ...]
    python benchmarks/funsd_aet.py report

*run* trains and tests ``funsd_ft`` and ``funsd_aet`` with each of its five ablations on the FUNSD release
folder (``$DOCALIGN_FUNSD``), offline (``_offline.yaml``; AET runs add ``_offline_aet.yaml``), each at the same
budget (``--epochs`` epochs, batch 8) once per seed. Runs go seed by seed (every experiment's seed 1 first), so an
interrupted matrix is complete for the seeds it finished; a run whose ``metrics.json`` exists is not run again (a
folder without one, left by an interrupted run, is started again from scratch).
``--jobs`` runs go at once, each with one thread. Logs: ``logs/benchmarks/funsd_aet/runs/<experiment>/version_seed<S>``
(TensorBoard event files, metrics.json) and one text log per run beside them.

*report* is ``make compare`` over those runs (``docalign compare --logs logs/benchmarks/funsd_aet/runs``), once
for the test entity F1 (``test/f1``: seqeval over the word BIO tags) and once for the entities given the gold
segments (``test/f1_segments``), and writes both tables and the validation-curve plots into the "FUNSD offline: AETNet and its ablations" section of docs/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from funsd_runs import REPO, earlier_record, fit_command, run_one  # noqa: E402
from results import machine, write_section  # noqa: E402

OUT = REPO / "logs" / "benchmarks" / "funsd_aet"
RUNS = OUT / "runs"
EXPERIMENTS = [
    "funsd_ft",
    "funsd_aet",
    "funsd_aet_no_ditc",
    "funsd_aet_no_imc",
    "funsd_aet_no_glitc",
    "funsd_aet_no_pita",
    "funsd_aet_no_momentum",
]


def run(args) -> None:
    jobs = [(e, s) for s in args.seeds for e in args.experiments]
    earlier = earlier_record(OUT / "matrix.json", args.epochs)  # a run that adds experiments keeps the earlier rows
    experiments = earlier.get("experiments", []) + [
        e for e in args.experiments if e not in earlier.get("experiments", [])
    ]
    where = earlier.get("machine") or machine(f"{args.jobs} runs at once, 1 thread each")
    record = {
        "epochs": args.epochs,
        "seeds": args.seeds,
        "experiments": experiments,
        "jobs": args.jobs,
        "machine": where,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "matrix.json").write_text(json.dumps(record))

    def one(job: tuple[str, int]) -> str:
        experiment, seed = job
        cmd = fit_command(experiment, seed, args.epochs, RUNS)
        return run_one(
            cmd,
            RUNS / experiment / f"version_seed{seed}",
            RUNS / f"{experiment}_seed{seed}.log",
            f"{experiment} seed {seed}",
        )

    with ThreadPoolExecutor(args.jobs) as pool:
        for line in pool.map(one, jobs):
            print(line, flush=True)


TERMS = ("loss_task", "loss_ditc", "loss_imc", "loss_glitc", "loss_pita", "temperature")


def term_table(experiments: list[str]) -> str:
    """Each AET experiment's logged training terms, first and last logged step, mean over its seeds."""
    import statistics

    from docalign.compare import read_scalars

    rows = ["| experiment | " + " | ".join(f"`{t}` first -> last" for t in TERMS) + " |", "|---|" + "---|" * len(TERMS)]
    for experiment in experiments:
        runs = sorted(p for p in (RUNS / experiment).glob("version_seed*") if (p / "metrics.json").exists())
        if "aet" not in experiment or not runs:
            continue
        firsts, lasts = {t: [] for t in TERMS}, {t: [] for t in TERMS}
        for run_dir in runs:
            for tag, values in read_scalars(run_dir, [f"train/{t}" for t in TERMS]).items():
                term = tag.removeprefix("train/")
                firsts[term].append(values[0].value)
                lasts[term].append(values[-1].value)
        cells = [
            f"{statistics.mean(firsts[t]):.3f} -> {statistics.mean(lasts[t]):.3f}" if firsts[t] else "not computed"
            for t in TERMS
        ]
        rows.append(f"| {experiment} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def report(args) -> None:
    from docalign.compare import main as compare

    matrix = json.loads((OUT / "matrix.json").read_text())
    experiments = matrix["experiments"]
    tables = {}
    for metric, name in (("test/f1", "compare_f1"), ("test/f1_segments", "compare_f1_segments")):
        out = OUT / f"{name}.md"
        val = metric.replace("test/", "val/")
        compare(
            [
                *experiments,
                "--logs",
                str(RUNS),
                "--out",
                str(out),
                "--metric",
                val,
                "--test-metric",
                metric,
                "--plot",
                str(REPO / "docs" / f"funsd_aet_{name}.png"),
            ]
        )
        tables[metric] = out.read_text().strip()
    lines = [
        f"Command: `python benchmarks/funsd_aet.py run --epochs {matrix['epochs']} --seeds "
        f"{' '.join(map(str, matrix['seeds']))} --jobs {matrix['jobs']}` then `python benchmarks/funsd_aet.py report` "
        f"(the tables are `make compare` over the runs: `docalign compare {' '.join(experiments)} --logs "
        "logs/benchmarks/funsd_aet/runs [--metric val/f1_segments]`).",
        "",
        f"Machine: {matrix['machine']}. Real FUNSD (134 training forms, 15 for validation, 50 test), offline: "
        "MiniLM warm starts (`_offline.yaml`; AET adds `_offline_aet.yaml`: MiniLM alignment text encoder, random "
        f"6-layer 384-wide ViT), 112 px pages, segment boxes, batch 8, {matrix['epochs']} epochs for every run, seeds "
        f"{', '.join(map(str, matrix['seeds']))}; best validation checkpoint tested. The s/step column is not a cost "
        "figure here: two runs shared the 2 cores, and with 51 steps logged every 10 most logged intervals include a "
        'validation pass. AET\'s cost is measured side by side by `benchmarks/aet_cost.py` ("AET cost" above).',
        "",
        "Test entity F1 (`test/f1`: seqeval over the word BIO tags, the published score; best `val/f1`):",
        "",
        tables["test/f1"],
        "",
        "Entities given the gold segments (`test/f1_segments`: each segment's words take its majority predicted "
        "type; best `val/f1_segments`) of the same runs:",
        "",
        tables["test/f1_segments"],
        "",
        "Validation curves: `docs/funsd_aet_compare_f1.png`, `docs/funsd_aet_compare_f1_segments.png`.",
        "",
        "Training terms of the AET runs (TensorBoard `train/*`, first and last logged step, mean over seeds; PITA in "
        "`cosine` mode is the negative mean cosine, so -1 is perfect alignment):",
        "",
        term_table(experiments),
    ]
    if args.notes and Path(args.notes).exists():
        lines += ["", Path(args.notes).read_text().strip()]
    write_section("funsd_aet", "FUNSD offline: AETNet and its ablations", "\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=["run", "report"])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--experiments", nargs="+", default=EXPERIMENTS)
    parser.add_argument(
        "--notes",
        default=str(Path(__file__).with_name("funsd_aet_findings.md")),
        help="report: a markdown file of findings to append (default: funsd_aet_findings.md, if there)",
    )
    args = parser.parse_args()
    run(args) if args.part == "run" else report(args)


if __name__ == "__main__":
    main()
