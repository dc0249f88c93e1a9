"""Where the time of ``make train`` goes: set-up, data, each epoch's training and validation, the test.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/train_phases.py [EXP ...] [--args "--trainer.max_epochs 2"]
        [--variant "LABEL=--more --overrides" ...] [--out logs/train_phases.json] [--write]

Runs each experiment (default ``demo``, the embedded default) through the real CLI in a fresh process with
one extra callback (``PhaseTimer``) that stamps the wall clock at Lightning's hooks and records the monitored
validation metric after each epoch, so the convergence curve and the cost of each phase come from one run.
Token lengths of the encoded training windows are reported too (they decide the useful ``max_length``).
``--variant`` runs each experiment once more per variant with those overrides added, right after the plain run,
so a change and its baseline are timed side by side on the same machine state (rows labelled ``EXP [LABEL]``).
``--write`` puts the table into the "make train phases" section of docs/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import lightning.pytorch as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))

ROOT = Path(__file__).resolve().parents[1]


class PhaseTimer(pl.Callback):
    """Wall-clock stamps at the fit's hooks, written to ``$DOCALIGN_PHASES`` (JSON) when the test ends."""

    def __init__(self) -> None:
        self.t0 = time.time()
        # (name, wall clock, this process's CPU seconds, all threads): CPU time is what load does not inflate
        self.marks: list[tuple[str, float, float]] = [("process", float(os.environ.get("DOCALIGN_T0", self.t0)), 0.0)]
        self._mark("built")  # the CLI builds the callbacks after the DataModule and the model, before fit
        self.curve: list[dict] = []

    def _mark(self, name: str) -> None:
        self.marks.append((name, time.time(), time.process_time()))

    def setup(self, trainer, pl_module, stage):  # after the DataModule's setup (generation, encoding)
        self._mark(f"setup_{getattr(stage, 'value', stage)}")

    def on_fit_start(self, trainer, pl_module):
        self._mark("fit_start")

    def on_train_epoch_start(self, trainer, pl_module):
        self._mark(f"train_epoch{trainer.current_epoch}_start")

    def on_train_epoch_end(self, trainer, pl_module):
        self._mark(f"train_epoch{trainer.current_epoch}_end")

    def on_validation_start(self, trainer, pl_module):
        self._mark("sanity_start" if trainer.sanity_checking else "val_start")

    def on_validation_end(self, trainer, pl_module):
        self._mark("sanity_end" if trainer.sanity_checking else "val_end")
        if not trainer.sanity_checking:
            metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
            self.curve.append({"epoch": trainer.current_epoch, "step": trainer.global_step, **metrics})

    def on_fit_end(self, trainer, pl_module):
        self._mark("fit_end")

    def on_test_start(self, trainer, pl_module):
        self._mark("test_start")

    def on_test_end(self, trainer, pl_module):
        self._mark("test_end")
        dm = trainer.datamodule
        lengths = []
        try:
            for window in dm.windows.get("train", []):
                lengths.append(len(window.input_ids))
        except Exception:  # noqa: BLE001 - lengths are informative only
            lengths = []
        out = {
            "marks": self.marks,
            "curve": self.curve,
            "test": {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")},
            "train_tokens": lengths,
        }
        Path(os.environ["DOCALIGN_PHASES"]).write_text(json.dumps(out))


def spans(marks: list[tuple], column: int = 1) -> dict[str, float]:
    """Seconds of each phase from the stamps: wall clock (``column`` 1) or CPU time (2)."""
    t = {mark[0]: mark[column] for mark in marks if len(mark) > column}
    out = {"start-up (imports, parse, build the model)": t["built"] - t["process"]}
    out["data (generate, encode)"] = t["setup_fit"] - t["built"]
    out["sanity validation"] = t.get("sanity_end", 0.0) - t.get("sanity_start", 0.0)
    epochs = sorted({int(k[len("train_epoch") :].split("_")[0]) for k in t if k.startswith("train_epoch")})
    train = sum(t[f"train_epoch{e}_end"] - t[f"train_epoch{e}_start"] for e in epochs if f"train_epoch{e}_end" in t)
    starts = [m[column] for m in marks if m[0] == "val_start"]
    ends = [m[column] for m in marks if m[0] == "val_end"]
    val = sum(b - a for a, b in zip(starts, ends))
    out[f"training ({len(epochs)} epochs, incl. validation)"] = train
    out[f"  of which validation ({len(ends)} passes)"] = val
    out["test (setup + loop)"] = t.get("test_end", 0) - t.get("fit_end", 0)
    out["total"] = t.get("test_end", 0) - t["process"]
    return out


def run(exp: str, extra: str, out: Path) -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE="1", DOCALIGN_PHASES=str(out), DOCALIGN_T0=str(time.time()))
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "benchmarks"), str(ROOT / "src"), env.get("PYTHONPATH", "")])
    cmd = [sys.executable, "-m", "docalign.cli", "fit", "--config", "experiments/_base.yaml",
           "--config", f"experiments/{exp}.yaml", "--trainer.callbacks+=train_phases.PhaseTimer",
           "--trainer.logger.init_args.save_dir", "logs/train_phases", *shlex.split(extra)]  # fmt: skip
    subprocess.run(cmd, cwd=ROOT, env=env, check=True)
    return json.loads(out.read_text())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiments", nargs="*", default=["demo"])
    parser.add_argument("--args", default="", help="extra CLI overrides, one string")
    parser.add_argument(
        "--variant", action="append", default=[], help="LABEL=OVERRIDES: also run each experiment with these added"
    )
    parser.add_argument("--out", default="logs/train_phases.json")
    parser.add_argument("--write", action="store_true", help="write the docs/RESULTS.md section")
    args = parser.parse_args()
    variants = [("", "")] + [tuple(v.split("=", 1)) for v in args.variant]
    if any(len(v) != 2 or not v[0] for v in variants[1:]):
        parser.error("--variant takes LABEL=OVERRIDES")
    report = {}
    for exp, (label, more) in [(e, v) for e in args.experiments for v in variants]:
        name = f"{exp} [{label}]" if label else exp
        path = ROOT / "logs" / f"train_phases_{exp}{'_' + label if label else ''}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        load0 = os.getloadavg()[0]
        result = run(exp, f"{args.args} {more}", path)
        result["spans"] = spans(result["marks"])
        result["cpu_spans"] = spans(result["marks"], 2) if len(result["marks"][-1]) > 2 else {}
        result["load"] = [load0, os.getloadavg()[0]]
        report[name] = result
        print(f"\n== {name} {args.args} {more}")
        for name, secs in result["spans"].items():
            print(f"  {name:40s} {secs:7.1f} s wall, {result['cpu_spans'].get(name, float('nan')):7.1f} s CPU")
        for point in result["curve"]:
            print("  val", {k: round(v, 4) if isinstance(v, float) else v for k, v in point.items()})
        print("  test", {k: round(v, 4) for k, v in result["test"].items()})
        tokens = sorted(result["train_tokens"])
        if tokens:
            print(f"  train window tokens: median {tokens[len(tokens) // 2]}, max {tokens[-1]}, n {len(tokens)}")
    Path(args.out).write_text(json.dumps(report, indent=1))
    if args.write:
        from results import machine, write_section

        rows = []
        for exp, result in report.items():
            for name, secs in result["spans"].items():
                rows.append(f"| {exp} | {name} | {secs:.1f} | {result['cpu_spans'].get(name, float('nan')):.1f} |")
        body = (
            f"Command: `python benchmarks/train_phases.py {' '.join(args.experiments)}"
            f"{' --args ' + shlex.quote(args.args) if args.args else ''}"
            f"{''.join(' --variant ' + shlex.quote(v) for v in args.variant)}`. Machine: {machine()}.\n\n"
            "| experiment | phase | wall s | CPU s (all threads) |\n|---|---|---|---|\n" + "\n".join(rows) + "\n\n"
        )
        for exp, result in report.items():
            curve = ", ".join(
                f"{point.get('val/f1', float('nan')):.4f} (step {point['step']})" for point in result["curve"]
            )
            body += (
                f"- {exp}: test F1 {result['test'].get('test/f1', float('nan')):.4f}; val F1 {curve}; load average "
                f"{result['load'][0]:.1f} at the start, {result['load'][1]:.1f} at the end\n"
            )
        write_section("train_phases", "make train: where the time goes", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
