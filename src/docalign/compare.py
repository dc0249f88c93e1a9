"""``docalign compare``: experiments side by side, from what their runs left under ``logs/``.

    docalign compare demo demo_aet demo_aet_no_pita --out logs/compare.md

For each experiment, every run ``logs/<exp>/version_*/`` with a ``metrics.json`` (a finished fit; the
seeds are the runs) gives: the best validation score (from ``metrics.json``, else the maximum of the
logged curve), the test score, the training step time and the parameter count. Writes a markdown
table to ``--out`` and the validation curves of every run to a PNG beside it (``--plot``). Step time
is the median over the logged intervals of (wall time difference) / (step difference) of the
``train/loss`` events, so epochs' validation pauses do not count; with fewer than two such events it
falls back to ``fit_seconds / global_steps`` from ``metrics.json`` (marked ``*``: includes validation).
Exits 2 when an experiment has no finished run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

TRAIN_TAG = "train/loss"


@dataclass
class Run:
    """One finished run: its folder, ``metrics.json`` and what its TensorBoard events hold."""

    path: Path
    metrics: dict
    curve: list[tuple[int, float]] = field(default_factory=list)  # (step, validation score)
    step_time: Optional[float] = None  # seconds per training step
    step_time_from_events: bool = True


def read_scalars(run_dir: Path, tags: Sequence[str]) -> dict[str, list]:
    """``{tag: [ScalarEvent(wall_time, step, value), ...]}`` from every event file of ``run_dir``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})  # 0: keep every event
    events.Reload()
    known = set(events.Tags().get("scalars", []))
    return {tag: events.Scalars(tag) for tag in tags if tag in known}


def step_time_from_events(events: list) -> Optional[float]:
    """Median seconds per step over consecutive logged training events (``ScalarEvent`` list)."""
    rates = [(b.wall_time - a.wall_time) / (b.step - a.step) for a, b in zip(events, events[1:]) if b.step > a.step]
    return statistics.median(rates) if rates else None


def load_run(run_dir: Path, metric: str) -> Run:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    scalars = read_scalars(run_dir, (metric, TRAIN_TAG))
    run = Run(run_dir, metrics, curve=[(e.step, e.value) for e in scalars.get(metric, [])])
    run.step_time = step_time_from_events(scalars.get(TRAIN_TAG, []))
    if run.step_time is None and metrics.get("global_steps"):
        run.step_time, run.step_time_from_events = metrics["fit_seconds"] / metrics["global_steps"], False
    return run


def find_runs(logs: Path, experiment: str, metric: str) -> list[Run]:
    """The finished runs of ``experiment`` in version order (unfinished ones, without metrics.json, skipped)."""
    folders = sorted(
        (logs / experiment).glob("version_*"),
        key=lambda p: int(p.name.split("_")[-1]) if p.name.split("_")[-1].isdigit() else -1,
    )
    return [load_run(p, metric) for p in folders if (p / "metrics.json").exists()]


def _mean_std(values: list[float], digits: int = 4) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def _millions(n: Optional[int]) -> str:
    return "-" if n is None else f"{n / 1e6:.1f} M"


def best_val(run: Run, metric: str, mode: str) -> Optional[float]:
    logged = (run.metrics.get("best_val") or {}).get(metric)
    if logged is not None:
        return float(logged)
    values = [v for _, v in run.curve]
    return (max if mode == "max" else min)(values) if values else None


def summary_row(experiment: str, runs: list[Run], metric: str, test_metric: str, mode: str) -> list[str]:
    vals = [v for v in (best_val(r, metric, mode) for r in runs) if v is not None]
    tests = [float(r.metrics["test"][test_metric]) for r in runs if test_metric in (r.metrics.get("test") or {})]
    times = [r.step_time for r in runs if r.step_time is not None]
    marker = "" if all(r.step_time_from_events for r in runs) else "*"
    seeds = ", ".join(str(r.metrics.get("seed")) for r in runs)
    first = runs[0].metrics
    params = f"{_millions(first.get('parameters'))} ({_millions(first.get('trainable_parameters'))} trainable)"
    return [
        experiment,
        f"{len(runs)} ({seeds})",
        _mean_std(vals),
        _mean_std(tests),
        (_mean_std(times, 3) + marker) if times else "-",
        params,
    ]


def markdown_table(rows: list[list[str]], metric: str, test_metric: str) -> str:
    header = ["experiment", "runs (seeds)", f"best {metric}", test_metric, "s/step", "parameters"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def plot_curves(runs_by_experiment: dict[str, list[Run]], metric: str, path: Path) -> None:
    """Validation curves, one line per run, one colour per experiment, written as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (experiment, runs) in enumerate(runs_by_experiment.items()):
        for j, run in enumerate(runs):
            if run.curve:
                steps, values = zip(*run.curve)
                ax.plot(
                    steps,
                    values,
                    marker="o",
                    markersize=3,
                    color=colours[i % len(colours)],
                    alpha=0.9 if j == 0 else 0.5,
                    label=experiment if j == 0 else None,
                )
    ax.set_xlabel("training step")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} per run")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="docalign compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("experiments", nargs="+", help="experiment names (folders under --logs)")
    parser.add_argument("--logs", type=Path, default=Path("logs"), help="the logger's save_dir (default: logs)")
    parser.add_argument(
        "--out", type=Path, default=Path("logs/compare.md"), help="markdown table (default: logs/compare.md)"
    )
    parser.add_argument(
        "--plot", type=Path, default=None, help="PNG of the validation curves (default: --out with .png)"
    )
    parser.add_argument("--metric", default="val/f1", help="validation metric (default: val/f1)")
    parser.add_argument("--test-metric", default=None, help="test metric (default: --metric with val/ -> test/)")
    parser.add_argument("--mode", choices=("max", "min"), default="max", help="whether higher --metric is better")
    args = parser.parse_args(argv)
    test_metric = args.test_metric or args.metric.replace("val/", "test/", 1)
    plot_path = args.plot or args.out.with_suffix(".png")

    runs_by_experiment = {}
    for experiment in dict.fromkeys(args.experiments):
        runs = find_runs(args.logs, experiment, args.metric)
        if not runs:
            known = sorted(p.name for p in args.logs.glob("*") if any(p.glob("version_*/metrics.json")))
            print(
                f"docalign compare: no finished run of '{experiment}' under {args.logs}/{experiment}/version_*/ "
                f"(a finished run has metrics.json). Experiments with finished runs: {', '.join(known) or 'none'}.",
                file=sys.stderr,
            )
            return 2
        runs_by_experiment[experiment] = runs

    rows = [summary_row(e, runs, args.metric, test_metric, args.mode) for e, runs in runs_by_experiment.items()]
    table = markdown_table(rows, args.metric, test_metric)
    note = (
        "\nMean ± standard deviation over runs. s/step: median training step time from the TensorBoard events"
        "; * = fit time / steps (includes validation). Curves: " + plot_path.name + "\n"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(table + note)
    print(table, end="")
    try:
        plot_curves(runs_by_experiment, args.metric, plot_path)
    except ImportError:
        print(
            "docalign compare: matplotlib is not installed (pip install 'docalign[plot]'): no curves plotted",
            file=sys.stderr,
        )
        plot_path = None
    print(f"table -> {args.out}; curves -> {plot_path or '-'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
