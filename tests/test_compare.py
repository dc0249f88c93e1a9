"""``docalign compare`` on real tiny runs: two experiments, two seeds each."""

import json
import statistics
import subprocess
import sys
from types import SimpleNamespace

import pytest

from docalign.cli import cli_main
from docalign.compare import step_time_from_events

from conftest import REPO, cli_args

EXPERIMENTS = ("demo_ft", "demo")  # plain fine-tuning vs the embedded default (AET)
SEEDS = (1, 2)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("compare")
    for experiment in EXPERIMENTS:
        for seed in SEEDS:
            cli_main(
                [
                    "fit",
                    *cli_args(
                        experiment,
                        tmp_path,
                        "--seed_everything",
                        str(seed),
                        "--trainer.max_epochs",
                        "2",
                        "--trainer.log_every_n_steps",
                        "1",
                    ),
                ]
            )
    return tmp_path


def compare(*args):
    return subprocess.run(
        [sys.executable, "-m", "docalign.cli", "compare", *args], cwd=REPO, capture_output=True, text=True, timeout=300
    )


def test_compare_tabulates_and_plots_real_runs(runs):
    out_md = runs / "report" / "compare.md"
    done = compare(*EXPERIMENTS, "--logs", str(runs / "logs"), "--out", str(out_md))
    assert done.returncode == 0, done.stderr
    table = out_md.read_text()
    rows = {
        line.split(" | ")[0].strip("| "): line.split(" | ") for line in table.splitlines()[2:] if line.startswith("| ")
    }
    assert set(rows) == set(EXPERIMENTS)
    for experiment in EXPERIMENTS:
        metrics = [
            json.loads((runs / "logs" / experiment / f"version_{i}" / "metrics.json").read_text()) for i in (0, 1)
        ]
        tests = [m["test"]["test/f1"] for m in metrics]
        vals = [m["best_val"]["val/f1"] for m in metrics]
        name, seeds, best_val, test, step_time, params = (cell.strip("| ") for cell in rows[experiment])
        assert seeds == "2 (1, 2)"
        assert test == f"{statistics.mean(tests):.4f} ± {statistics.stdev(tests):.4f}"
        assert best_val == f"{statistics.mean(vals):.4f} ± {statistics.stdev(vals):.4f}"
        assert not step_time.endswith("*") and float(step_time.split(" ± ")[0]) > 0  # from the event wall times
        assert params.startswith(f"{metrics[0]['parameters'] / 1e6:.1f} M")
    png = out_md.with_suffix(".png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_an_experiment_without_finished_runs_is_a_clear_error(runs):
    done = compare("demo_ft", "no_such_experiment", "--logs", str(runs / "logs"), "--out", str(runs / "x.md"))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "no_such_experiment" in done.stderr and "demo" in done.stderr
    assert not (runs / "x.md").exists()


def test_step_time_is_the_median_rate_so_validation_pauses_do_not_count():
    event = lambda step, wall: SimpleNamespace(step=step, wall_time=wall)  # noqa: E731
    # 0.5 s/step, then a 30 s validation pause inside one interval, then 0.5 s/step again
    events = [event(1, 0.0), event(2, 0.5), event(3, 1.0), event(4, 31.5), event(5, 32.0), event(7, 33.0)]
    assert step_time_from_events(events) == 0.5
    assert step_time_from_events(events[:1]) is None


def _run_folder(logs, experiment, version, seed, test_f1, lr=1e-3, **config):
    """A finished run's folder as the CLI leaves it: config.yaml and metrics.json (no event files)."""
    import yaml

    folder = logs / experiment / version
    folder.mkdir(parents=True)
    full = {
        "seed_everything": seed,
        "trainer": {"max_epochs": 2, "logger": {"init_args": {"version": version, "save_dir": str(logs)}}},
        "model": {"init_args": {"lr": lr}},
        "experiment": experiment,
        "ckpt_path": None,
        **config,
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(full))
    metrics = {"seed": seed, "test": {"test/f1": test_f1}, "best_val": {"val/f1": test_f1}, "global_steps": 4}
    metrics.update({"fit_seconds": 8.0, "run_name": config.get("run_name")})
    (folder / "metrics.json").write_text(json.dumps(metrics))


def test_compare_groups_by_configuration_not_by_folder(tmp_path):
    logs = tmp_path / "logs"
    _run_folder(logs, "demo", "version_0", 1, 0.5)
    _run_folder(logs, "demo", "version_1", 2, 0.7, ckpt_path="logs/demo/version_1/checkpoints/last.ckpt")  # resumed
    _run_folder(logs, "demo", "version_2", 1, 0.9, lr=5e-4)  # another configuration
    _run_folder(logs, "demo", "version_3", 2, 0.6)  # the same configuration and seed as version_1: counted once
    _run_folder(logs, "demo", "version_4_long", 3, 0.8, run_name="long")
    done = compare("demo", "--logs", str(logs), "--out", str(tmp_path / "c.md"), "--plot", str(tmp_path / "c.png"))
    assert done.returncode == 0, done.stderr
    rows = {line.split(" | ")[0].strip("| "): line.split(" | ") for line in done.stdout.splitlines()[2:] if "|" in line}
    assert set(rows) == {"demo (model.init_args.lr=0.001)", "demo (model.init_args.lr=0.0005)"}
    same = rows["demo (model.init_args.lr=0.001)"]
    assert same[1] == "3 (1, 2, 3 [long])"  # seeds 1, 2 (version_3 replaces version_1), 3
    assert same[3] == f"{statistics.mean([0.5, 0.6, 0.8]):.4f} ± {statistics.stdev([0.5, 0.6, 0.8]):.4f}"
    assert rows["demo (model.init_args.lr=0.0005)"][1] == "1 (1)"
    assert "differ beyond the seed" in done.stderr and "model.init_args.lr" in done.stderr
    assert "version_1 and version_3" in done.stderr and "version_1 and version_3" in (tmp_path / "c.md").read_text()


def test_runs_from_before_the_metric_rename_are_read_with_todays_names():
    """Old metrics.json: ``test/f1`` was segment-decoded and ``test/f1_tokens`` the word-tag F1; compare reads them as
    today's ``test/f1_segments`` and ``test/f1`` and looks their curves up under the old tags. New runs: unchanged."""
    from docalign.compare import legacy_names

    old = {"test": {"test/f1": 0.71, "test/f1_tokens": 0.25, "test/precision": 0.7}, "best_val": {"val/f1": 0.66}}
    metrics, tags = legacy_names(old)
    assert metrics["test"] == {"test/f1_segments": 0.71, "test/f1": 0.25, "test/precision_segments": 0.7}
    assert metrics["best_val"] == {"val/f1_segments": 0.66}  # best val/f1 (word tags) then comes from its curve
    assert tags["val/f1"] == "val/f1_tokens" and tags["val/f1_segments"] == "val/f1"
    new = {"test": {"test/f1": 0.25, "test/f1_segments": 0.71}, "best_val": {"val/f1": 0.2}}
    assert legacy_names(new) == (new, {})
