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

Runs are grouped by configuration: two runs of an experiment are seeds of one configuration when their
``config.yaml`` files agree on every key but the seed and what names the run (``IGNORED_KEYS``: its folder, name,
checkpoint to resume from). Runs whose configurations differ beyond that are shown as separate rows, each
labelled with the keys that differ and their values (and listed on stderr). A run resumed with ``--ckpt_path`` is
the same folder, so it is one run; two folders of one configuration with the same seed are counted once (the
newer one), with a note. Runs given a ``--run_name`` show it beside their seed.

Entity labelling: ``f1`` is seqeval's entity F1 over the per-word BIO tags (the published score);
``f1_segments`` is "entities given the gold segments" (segment decoding, ``TokenClassification``), not comparable
with published F1. Runs written before the rename (their test metrics hold ``test/f1_tokens``: there ``f1`` was
the segment-decoded score) are read with today's names (``legacy_names``).
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
# Config keys that name or place a run rather than change it (dotted, as in config.yaml).
IGNORED_KEYS = (
    "seed_everything",
    "ckpt_path",
    "experiment",
    "run_name",
    "config",
    "trainer.logger.init_args.version",
    "trainer.logger.init_args.name",
    "trainer.logger.init_args.save_dir",
)


@dataclass
class Run:
    """One finished run: its folder, ``metrics.json`` and what its TensorBoard events hold."""

    path: Path
    metrics: dict
    curve: list[tuple[int, float]] = field(default_factory=list)  # (step, validation score)
    step_time: Optional[float] = None  # seconds per training step
    step_time_from_events: bool = True
    config: Optional[dict] = None  # config.yaml flattened to dotted keys, ``IGNORED_KEYS`` dropped (None: no file)

    @property
    def seed(self):
        return self.metrics.get("seed")


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


def flatten(node, prefix: str = "") -> dict:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists of class_path nodes (callbacks) by position: ``a.0.init_args.x``."""
    if isinstance(node, dict):
        items = node.items()
    elif isinstance(node, list) and any(isinstance(x, dict) for x in node):
        items = ((str(i), x) for i, x in enumerate(node))
    else:
        return {prefix: node}
    out: dict = {}
    for key, value in items:
        out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def run_config(run_dir: Path) -> Optional[dict]:
    """The run's ``config.yaml`` as dotted keys without ``IGNORED_KEYS``; None when the file is missing."""
    import yaml

    path = run_dir / "config.yaml"
    if not path.is_file():
        return None
    flat = flatten(yaml.safe_load(path.read_text()) or {})
    return {k: v for k, v in flat.items() if not any(k == i or k.startswith(i + ".") for i in IGNORED_KEYS)}


# What each entity-labelling metric measures (printed under the table when it is the one compared).
METRIC_NOTES = {
    "f1": "seqeval entity F1 over the per-word BIO tags of whole documents (the score published results report)",
    "f1_segments": "entities given the gold segments: every word of a segment (words sharing one box) takes the "
    "segment's majority predicted type before scoring; not comparable with published F1",
}
# Before the rename: ``f1``/``precision``/``recall`` were segment-decoded and ``f1_tokens`` was the word-tag F1.
_LEGACY = {"f1": "f1_segments", "precision": "precision_segments", "recall": "recall_segments", "f1_tokens": "f1"}


def legacy_names(metrics: dict) -> tuple[dict, dict[str, str]]:
    """A ``metrics.json`` of a run from before the metric rename with today's names, and ``{today's tag: the tag
    its TensorBoard events carry}`` (identity for a current run)."""
    if not any(k.endswith("/f1_tokens") for k in metrics.get("test") or {}):
        return metrics, {}
    tags = {}

    def rename(key: str) -> str:
        stage, _, name = key.rpartition("/")
        if stage in ("val", "test") and name in _LEGACY:
            tags[f"{stage}/{_LEGACY[name]}"] = key
            return f"{stage}/{_LEGACY[name]}"
        return key

    out = dict(metrics)
    for part in ("test", "best_val"):
        if isinstance(metrics.get(part), dict):
            out[part] = {rename(k): v for k, v in metrics[part].items()}
    for stage in ("val", "test"):
        for old, new in _LEGACY.items():
            tags.setdefault(f"{stage}/{new}", f"{stage}/{old}")
    # best_val held the old monitor (segment-decoded), now val/f1_segments: today's best val/f1 comes from the curve.
    return out, tags


def load_run(run_dir: Path, metric: str) -> Run:
    metrics, tags = legacy_names(json.loads((run_dir / "metrics.json").read_text()))
    tag = tags.get(metric, metric)
    scalars = read_scalars(run_dir, (tag, TRAIN_TAG))
    run = Run(run_dir, metrics, curve=[(e.step, e.value) for e in scalars.get(tag, [])], config=run_config(run_dir))
    run.step_time = step_time_from_events(scalars.get(TRAIN_TAG, []))
    if run.step_time is None and metrics.get("global_steps"):
        run.step_time, run.step_time_from_events = metrics["fit_seconds"] / metrics["global_steps"], False
    return run


def find_runs(logs: Path, experiment: str, metric: str) -> list[Run]:
    """The finished runs of ``experiment`` in version order (unfinished ones, without metrics.json, skipped)."""
    folders = sorted((logs / experiment).glob("version_*"), key=lambda p: (_version_number(p.name), p.name))
    return [load_run(p, metric) for p in folders if (p / "metrics.json").exists()]


def _version_number(name: str) -> int:
    """N of ``version_N`` or ``version_N_<run name>`` (-1 for anything else)."""
    part = name.split("_")[1] if name.count("_") >= 1 else ""
    return int(part) if part.isdigit() else -1


@dataclass
class Group:
    """The runs of one experiment that share a configuration (up to the seed): one row of the table."""

    experiment: str
    runs: list[Run]
    label: str = ""  # the differing keys, when an experiment has several configurations
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.experiment} ({self.label})" if self.label else self.experiment


def group_runs(experiment: str, runs: list[Run]) -> list[Group]:
    """Runs of one configuration together (first-seen order); different configurations as separate groups
    labelled with the keys on which they differ; a seed repeated within a group counted once (the newest run)."""
    by_config: dict[str, list[Run]] = {}
    for run in runs:
        key = json.dumps(run.config, sort_keys=True, default=str) if run.config is not None else "null"
        by_config.setdefault(key, []).append(run)
    groups = [Group(experiment, members) for members in by_config.values()]
    if len(groups) > 1:
        configs = [g.runs[0].config or {} for g in groups]
        unset = "<unset>"
        all_keys = {k for c in configs for k in c}
        keys = sorted(k for k in all_keys if len({json.dumps(c.get(k, unset), default=str) for c in configs}) > 1)
        for group, config in zip(groups, configs):
            if group.runs[0].config is None:
                group.label = "no config.yaml"
            else:
                group.label = ", ".join(f"{k}={config.get(k, unset)}" for k in keys)
    for group in groups:
        newest: dict = {}
        for run in group.runs:  # version order: a later run of a seed replaces an earlier one
            if run.seed in newest:
                group.notes.append(
                    f"{experiment}: {newest[run.seed].path.name} and {run.path.name} have the same configuration and "
                    f"seed {run.seed}: counted once ({run.path.name})"
                )
            newest[run.seed] = run
        group.runs = list(newest.values())
    return groups


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
    seeds = ", ".join(str(r.seed) + (f" [{r.metrics['run_name']}]" if r.metrics.get("run_name") else "") for r in runs)
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

    groups = [g for e, runs in runs_by_experiment.items() for g in group_runs(e, runs)]
    for experiment in runs_by_experiment:
        labelled = [g.label for g in groups if g.experiment == experiment and g.label]
        if labelled:
            print(
                f"docalign compare: the runs of '{experiment}' differ beyond the seed, shown as separate rows: "
                + "; ".join(labelled),
                file=sys.stderr,
            )
    for note in (n for g in groups for n in g.notes):
        print(f"docalign compare: {note}", file=sys.stderr)
    rows = [summary_row(g.name, g.runs, args.metric, test_metric, args.mode) for g in groups]
    table = markdown_table(rows, args.metric, test_metric)
    notes = "".join(f"\n- {n}" for g in groups for n in g.notes)
    note = (
        notes + "\nMean ± standard deviation over runs. s/step: median training step time from the TensorBoard events"
        "; * = fit time / steps (includes validation). Curves: " + plot_path.name + "\n"
    )
    name = test_metric.rpartition("/")[2]
    if name in METRIC_NOTES:
        note += f"`{test_metric}`: {METRIC_NOTES[name]}.\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(table + note)
    print(table, end="")
    try:
        plot_curves({g.name: g.runs for g in groups}, args.metric, plot_path)
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
