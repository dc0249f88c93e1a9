"""FUNSD offline: the table that decides whether AET helps (issue 14), resumable across sessions.

    python benchmarks/funsd_decisive.py select [--epochs 6] [--jobs 1]
    python benchmarks/funsd_decisive.py matrix [--epochs 6] [--jobs 1] [--seeds 1 2 3 4 5] [--rows ...]
    python benchmarks/funsd_decisive.py report
    python benchmarks/funsd_decisive.py smoke [--rows ...]

Every run is real FUNSD (``$DOCALIGN_FUNSD``) offline (``_offline.yaml``; AET rows add ``_offline_aet.yaml``), batch 8,
``--epochs`` epochs, the best ``val/f1`` checkpoint tested, one thread. A row is an experiment plus CLI overrides
(``CANDIDATES`` and ``MATRIX`` below); its runs are ``docs/runs/funsd_decisive/<row>/version_seed<S>/`` (TensorBoard
events, ``config.yaml``, ``metrics.json``), committed so that the matrix resumes in any clone: a run whose
``metrics.json`` exists is skipped, a folder without one is started again from scratch (an interrupted run) or left
alone while the process named by its ``<folder>.running`` marker lives (another process trains it:
``funsd_runs.active``), and
checkpoints are deleted once a run has tested (``--keep-checkpoints`` keeps them; ``docs/runs/.gitignore`` keeps
them out of git). Text logs: ``logs/benchmarks/funsd_decisive/<row>_seed<S>.log``.

*select* trains the AET candidates (``CANDIDATES``) with seed 1 and chooses the one with the best validation ``val/f1``
(the checkpoint monitor; test scores are not looked at), written with every candidate's best ``val/f1`` and
``val/f1_segments`` to ``docs/runs/funsd_decisive/selection.json``.

*matrix* trains the rows of ``MATRIX`` (the AET ones on top of the chosen candidate; ``funsd_ft_craft`` is plain
fine-tuning with the CRAFT stem as LayoutLMv3's own patch embedding, ``backbone.patch_stem``), seed by seed (every
row's seed 1 first), so an interrupted matrix is complete for the seeds it finished; ``--jobs`` runs at once.

*report* writes the "FUNSD offline: does AET help?" section of docs/RESULTS.md from whatever runs have finished:
per row mean ± std of ``test/f1`` (seqeval entity F1 over the word BIO tags), ``test/f1_segments`` (entities given
the gold segments) and the best ``val/f1``; the paired difference by seed against ``funsd_ft`` and against
``funsd_aet`` with a 95% t interval; the AET rows' last collapse diagnostics (``val/diag/*``); validation curves in
``docs/funsd_decisive_*.png``.

*smoke* runs every row (candidates and matrix) for 2 training, 2 validation and 2 test batches into a temporary
folder: the command lines parse and train.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
from funsd_runs import REPO, earlier_record, finished, fit_command, run_one  # noqa: E402
from results import machine, write_section  # noqa: E402

from docalign.compare import _mean_std as mean_std  # noqa: E402

RUNS = REPO / "docs" / "runs" / "funsd_decisive"
LOGS = REPO / "logs" / "benchmarks" / "funsd_decisive"
SELECTION_SEED = 1

ALIGN = "model.init_args.alignment.init_args"
TERMS = ("ditc", "imc", "glitc", "pita")  # the alignment terms (the task's weight stays 1)


def zero(*terms: str) -> dict[str, str]:
    """Overrides setting the weights of ``terms`` to 0."""
    return {f"{ALIGN}.{term}_weight": "0.0" for term in terms}


CRAFT = {f"{ALIGN}.image_encoder.patch_stem": "craft_vgg16_bn"}
BACKBONE_CRAFT = {"model.init_args.backbone.patch_stem": "craft_vgg16_bn"}
GATE = {f"{ALIGN}.fusion_gate": "true"}
PITA_CONTRASTIVE_WORDS = {f"{ALIGN}.pita_mode": "contrastive", f"{ALIGN}.pita_boxes": "words"}
# The alignment encoders at lr 1e-5 instead of the new-parameter lr 1e-3 their random layers get otherwise: at 1e-3
# the image stream collapses within 4 steps even with every alignment weight at 0 (RESULTS "why the image stream
# collapsed"); added after the first four candidates had run.
SLOW_ENCODERS = {f"{ALIGN}.encoder_lr": "1.0e-05"}

# The selection: AET candidates (experiment funsd_aet), name -> overrides. Each of the first four adds to the one
# before it; the *_slow ones are two of them with the encoders' own lr.
CANDIDATES: dict[str, dict[str, str]] = {
    "select_vit": {},  # funsd_aet offline as it stands: a random 6-layer ViT
    "select_craft": CRAFT,  # + the CRAFT VGG16-BN patch stem (a text detector's trunk)
    "select_craft_gate": {**CRAFT, **GATE},  # + the zero-initialised fusion gate
    "select_craft_gate_pita": {**CRAFT, **GATE, **PITA_CONTRASTIVE_WORDS},  # + contrastive PITA over word boxes
    "select_craft_slow": {**CRAFT, **SLOW_ENCODERS},  # the CRAFT stem, the encoders at lr 1e-5
    "select_craft_gate_pita_slow": {**CRAFT, **GATE, **PITA_CONTRASTIVE_WORDS, **SLOW_ENCODERS},
}

# The matrix: row -> (experiment, overrides added to the chosen candidate's (None: not an AET row, none), seeds).
MATRIX: dict[str, tuple[str, Optional[dict[str, str]], int]] = {
    "funsd_ft": ("funsd_ft", None, 5),
    "funsd_ft_craft": ("funsd_ft", BACKBONE_CRAFT, 5),  # plain fine-tuning, LayoutLMv3's patch embedding = CRAFT stem
    "funsd_aet": ("funsd_aet", {}, 5),
    "funsd_aet_weights0": ("funsd_aet", zero(*TERMS), 5),  # the architecture alone: no alignment term
    **{f"funsd_aet_no_{term}": ("funsd_aet", zero(term), 3) for term in TERMS},  # leave one term out
}
# Paired differences: row -> the rows it is compared with, seed by seed.
REFERENCES = {
    "funsd_aet": ["funsd_ft"],
    "funsd_ft_craft": ["funsd_ft"],
    **{row: ["funsd_ft", "funsd_aet"] for row in MATRIX if row.startswith("funsd_aet_")},
}


class Row(NamedTuple):
    name: str
    experiment: str
    overrides: dict[str, str]
    seeds: int  # seeds 1..seeds

    def tokens(self) -> list[str]:
        return [token for key, value in self.overrides.items() for token in (f"--{key}", value)]

    def command(self, seed: int, epochs: int, save_dir: Path) -> list[str]:
        return fit_command(self.experiment, seed, epochs, save_dir, self.tokens(), name=self.name)


def candidate_rows() -> list[Row]:
    return [Row(name, "funsd_aet", overrides, 1) for name, overrides in CANDIDATES.items()]


def matrix_rows(chosen: dict[str, str]) -> list[Row]:
    """The rows of ``MATRIX`` with the chosen candidate's overrides under the AET rows' own (plain rows: their own)."""
    return [
        Row(name, experiment, {**chosen, **extra} if "aet" in experiment else dict(extra or {}), seeds)
        for name, (experiment, extra, seeds) in MATRIX.items()
    ]


def read_selection(runs: Path) -> dict:
    """``selection.json`` of ``runs`` (``{}`` when there is none)."""
    path = runs / "selection.json"
    return json.loads(path.read_text()) if path.exists() else {}


def chosen_candidate(runs: Path) -> tuple[str, dict[str, str]]:
    selection = read_selection(runs)
    if not selection.get("chosen"):
        raise SystemExit(f"no chosen AET configuration in {runs}/selection.json: run `select` first")
    return selection["chosen"], selection["candidates"][selection["chosen"]]["overrides"]


def schedule(rows: list[Row], seeds: list[int]) -> list[tuple[Row, int]]:
    """(row, seed) seed by seed (every row's first seed first), each row up to its own number of seeds."""
    return [(row, seed) for seed in seeds for row in rows if seed <= row.seeds]


def run_dir(row: str, seed: int, runs: Path) -> Path:
    return runs / row / f"version_seed{seed}"


def pending(jobs: list[tuple[Row, int]], runs: Path) -> list[tuple[Row, int]]:
    """The jobs without a finished run (``metrics.json``) under ``runs``, in order."""
    return [(row, seed) for row, seed in jobs if not finished(run_dir(row.name, seed, runs))]


def train(
    jobs: list[tuple[Row, int]], args: argparse.Namespace, runs: Path, logs: Path = LOGS, extra: tuple = ()
) -> None:
    """Run ``jobs`` (``args.jobs`` at once, text logs under ``logs``), skipping the finished ones."""
    todo = pending(jobs, runs)
    for row, seed in (job for job in jobs if job not in todo):
        print(f"{row.name} seed {seed}: finished before, skipped", flush=True)

    def one(job: tuple[Row, int]) -> str:
        row, seed = job
        cmd = row.command(seed, args.epochs, runs) + list(extra)
        print(f"{row.name} seed {seed}: " + " ".join(cmd) + "\n", end="", flush=True)  # one write: threads share stdout
        label, log = f"{row.name} seed {seed}", logs / f"{row.name}_seed{seed}.log"
        return run_one(cmd, run_dir(row.name, seed, runs), log, label, args.keep_checkpoints)

    with ThreadPoolExecutor(args.jobs) as pool:
        for line in pool.map(one, todo):
            print(line + "\n", end="", flush=True)


def record(args: argparse.Namespace, **fields) -> None:
    """``matrix.json``: the budget (checked against an earlier record) and the machine of the first launch."""
    path = args.runs / "matrix.json"
    earlier = earlier_record(path, args.epochs)
    where = earlier.get("machine") or machine(f"{args.jobs} run(s) at once, 1 thread each")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps({**earlier, "epochs": args.epochs, "batch": 8, "machine": where, **fields}, indent=2) + "\n"
    )


# --- reading runs ---------------------------------------------------------------------------------------------
def finished_runs(row: str, runs: Path) -> dict[int, dict]:
    """seed -> metrics.json of the finished runs of ``row``."""
    out = {}
    for path in sorted((runs / row).glob("version_seed*/metrics.json")):
        metrics = json.loads(path.read_text())
        out[int(metrics.get("seed") or path.parent.name.removeprefix("version_seed"))] = metrics
    return out


def curves(row: str, tags: list[str], runs: Path) -> dict[int, dict[str, list[tuple[int, float]]]]:
    """seed -> tag -> [(step, value)] of the finished runs of ``row``, from their TensorBoard events."""
    from docalign.compare import read_scalars

    return {
        seed: {
            tag: [(e.step, e.value) for e in events]
            for tag, events in read_scalars(run_dir(row, seed, runs), tags).items()
        }
        for seed in finished_runs(row, runs)
    }


def best_val(metrics: dict, curve: list[tuple[int, float]], tag: str) -> Optional[float]:
    """The best ``tag`` of a run: from ``metrics.json`` when it is the monitor, else the maximum of its curve."""
    logged = (metrics.get("best_val") or {}).get(tag)
    return float(logged) if logged is not None else max((v for _, v in curve), default=None)


# --- statistics -----------------------------------------------------------------------------------------------
def paired_difference(values: dict[int, float], reference: dict[int, float], level: float = 0.95) -> Optional[dict]:
    """``values - reference`` over the seeds both have: n, mean, std (n-1) and the ``level`` t interval of the mean
    (n-1 degrees of freedom; bounds None below 2 seeds). None when no seed is shared."""
    seeds = sorted(set(values) & set(reference))
    if not seeds:
        return None
    diffs = [values[s] - reference[s] for s in seeds]
    mean = statistics.mean(diffs)
    out = {"seeds": seeds, "n": len(diffs), "mean": mean, "std": None, "low": None, "high": None}
    if len(diffs) >= 2:
        std = statistics.stdev(diffs)
        half = t_half_width(std, len(diffs), level)
        out.update(std=std, low=mean - half, high=mean + half)
    return out


def t_half_width(std: float, n: int, level: float) -> float:
    """Half the width of the ``level`` t interval of a mean of ``n`` values with sample std ``std`` (n-1 dof)."""
    from scipy.stats import t

    return float(t.ppf(0.5 + level / 2, n - 1) * std / math.sqrt(n))


def difference_cell(diff: Optional[dict]) -> str:
    if diff is None:
        return "-"
    if diff["low"] is None:
        return f"{diff['mean']:+.4f} (n={diff['n']})"
    return f"{diff['mean']:+.4f} [{diff['low']:+.4f}, {diff['high']:+.4f}] (n={diff['n']})"


def verdict(diff: Optional[dict], metric: str) -> str:
    if diff is None or diff["low"] is None:
        return f"{metric}: fewer than 2 paired seeds, nothing to say yet"
    if diff["low"] > 0:
        word = "higher"
    elif diff["high"] < 0:
        word = "lower"
    else:
        return (
            f"{metric}: no difference established ({diff['mean']:+.4f}, 95% interval "
            f"[{diff['low']:+.4f}, {diff['high']:+.4f}] holds 0; {diff['n']} seeds)"
        )
    return f"{metric}: {word} by {abs(diff['mean']):.4f} (95% interval [{diff['low']:+.4f}, {diff['high']:+.4f}]; {diff['n']} seeds)"


# --- phases -----------------------------------------------------------------------------------------------------
def select(args: argparse.Namespace) -> None:
    record(args, selection_candidates=list(CANDIDATES), selection_seed=SELECTION_SEED)
    train(schedule(candidate_rows(), [SELECTION_SEED]), args, args.runs)
    selection = summarise_selection(args.epochs, args.runs)
    (args.runs / "selection.json").write_text(json.dumps(selection, indent=2) + "\n")
    print(json.dumps(selection, indent=2))


def summarise_selection(epochs: int, runs: Path) -> dict:
    """Each candidate's overrides, best ``val/f1`` and ``val/f1_segments`` (seed 1) and fit time; the chosen one (the
    best ``val/f1``, the earlier candidate on a tie) once every candidate has finished."""
    candidates = {}
    for name, overrides in CANDIDATES.items():
        entry: dict = {"overrides": overrides}
        metrics = finished_runs(name, runs).get(SELECTION_SEED)
        if metrics:
            curve = curves(name, ["val/f1_segments"], runs).get(SELECTION_SEED, {})
            entry.update(
                {
                    "val/f1": best_val(metrics, [], "val/f1"),
                    "val/f1_segments": best_val(metrics, curve.get("val/f1_segments", []), "val/f1_segments"),
                    "fit_seconds": metrics.get("fit_seconds"),
                    "global_steps": metrics.get("global_steps"),
                }
            )
        candidates[name] = entry
    done = {name: c["val/f1"] for name, c in candidates.items() if c.get("val/f1") is not None}
    chosen = (
        max(done, key=lambda name: (done[name], -list(CANDIDATES).index(name)))
        if len(done) == len(CANDIDATES)
        else None
    )
    return {
        "seed": SELECTION_SEED,
        "epochs": epochs,
        "criterion": "best val/f1 (the checkpoint monitor); test scores not used",
        "candidates": candidates,
        "chosen": chosen,
    }


def matrix(args: argparse.Namespace) -> None:
    chosen, overrides = chosen_candidate(args.runs)
    selection = read_selection(args.runs)
    if selection["epochs"] != args.epochs:
        raise SystemExit(f"the selection ran {selection['epochs']} epochs; the matrix asks for {args.epochs}")
    rows = [row for row in matrix_rows(overrides) if not args.rows or row.name in args.rows]
    record(args, chosen=chosen, rows={row.name: row.seeds for row in matrix_rows(overrides)}, jobs=args.jobs)
    train(schedule(rows, args.seeds), args, args.runs)


def smoke(args: argparse.Namespace) -> None:
    """Every row for 2 training, validation and test batches (one epoch) into a temporary folder."""
    overrides = chosen_candidate(args.runs)[1] if read_selection(args.runs).get("chosen") else {}
    rows = candidate_rows() + matrix_rows(overrides or CANDIDATES[list(CANDIDATES)[-1]])
    rows = [row for row in rows if not args.rows or row.name in args.rows]
    limits = ("--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2")
    limits += (
        "--trainer.limit_val_batches",
        "2",
        "--trainer.limit_test_batches",
        "2",
        "--trainer.log_every_n_steps",
        "1",
    )
    with tempfile.TemporaryDirectory(prefix="funsd_decisive_smoke_") as tmp:
        train([(row, 1) for row in rows], args, Path(tmp), Path(tmp), extra=limits)
        failed = [row.name for row in rows if not finished(run_dir(row.name, 1, Path(tmp)))]
        if failed:
            raise SystemExit(
                f"smoke: no metrics.json from {', '.join(failed)}: "
                + (Path(tmp) / f"{failed[0]}_seed1.log").read_text()[-3000:]
            )
    print(f"smoke: all {len(rows)} rows trained, validated and tested")


DIAG_TAGS = [
    f"val/diag/{name}"
    for name in (
        "image_cls_cos",
        "image_cls_cos_proj",
        "text_cls_cos",
        "pita_matched",
        "pita_mismatched",
        "pita_tokens_in_one_patch",
        "ditc_batch",
        "ditc_batch_chance",
    )
] + [f"train/diag/{term}_under{level}chance" for level in ("_", "_batch_") for term in ("ditc", "imc")]


def results_table(rows: list[str], runs: Path) -> tuple[str, dict[str, dict[str, dict[int, float]]]]:
    """Markdown: per row the finished seeds and mean ± std of the test scores and the best val/f1; and
    row -> metric -> seed -> value, for the paired differences."""
    lines = [
        "| row | seeds finished | test/f1 | test/f1_segments | best val/f1 | fit min |",
        "|---|---|---|---|---|---|",
    ]
    scores: dict[str, dict[str, dict[int, float]]] = {}
    for row in rows:
        runs_of = finished_runs(row, runs)
        scores[row] = {
            metric: {s: m["test"][metric] for s, m in runs_of.items() if metric in m.get("test", {})}
            for metric in ("test/f1", "test/f1_segments")
        }
        expected = MATRIX[row][2] if row in MATRIX else 1
        lines.append(
            f"| {row} | {len(runs_of)} of {expected} ({', '.join(map(str, sorted(runs_of))) or '-'}) | "
            f"{mean_std(list(scores[row]['test/f1'].values()))} | {mean_std(list(scores[row]['test/f1_segments'].values()))} | "
            f"{mean_std([best_val(m, [], 'val/f1') for m in runs_of.values() if best_val(m, [], 'val/f1') is not None])} | "
            f"{mean_std([m['fit_seconds'] / 60 for m in runs_of.values()], 1)} |"
        )
    return "\n".join(lines), scores


def differences_table(scores: dict[str, dict[str, dict[int, float]]]) -> tuple[str, dict]:
    lines = [
        "| row - reference | test/f1: mean [95% interval] | test/f1_segments: mean [95% interval] |",
        "|---|---|---|",
    ]
    diffs = {}
    for row, references in REFERENCES.items():
        for reference in references:
            cells = []
            for metric in ("test/f1", "test/f1_segments"):
                diffs[row, reference, metric] = paired_difference(scores[row][metric], scores[reference][metric])
                cells.append(difference_cell(diffs[row, reference, metric]))
            lines.append(f"| {row} - {reference} | " + " | ".join(cells) + " |")
    return "\n".join(lines), diffs


def diagnostics_table(rows: list[str], runs: Path) -> str:
    """The AET rows' last logged value of each diagnostic, mean over their finished seeds."""
    lines = ["| row | " + " | ".join(f"`{t}`" for t in DIAG_TAGS) + " |", "|---|" + "---|" * len(DIAG_TAGS)]
    for row in rows:
        logged = curves(row, DIAG_TAGS, runs)
        if not logged:
            continue
        cells = []
        for tag in DIAG_TAGS:
            last = [values[tag][-1][1] for values in logged.values() if values.get(tag)]
            cells.append(f"{statistics.mean(last):.3f}" if last else "-")
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


COLLAPSED_COS = 0.99  # validation image CLS cosine above this: every page gives (nearly) the same feature


DIAG_LAST_TAGS = ["val/diag/image_cls_cos", "val/diag/ditc_batch", "val/diag/ditc_batch_chance"]
DIAG_LAST_TAGS += ["val/diag/pita_matched", "val/diag/pita_mismatched"]
DIAG_LAST_TAGS += [f"train/diag/{term}_under_batch_chance" for term in ("ditc", "imc")]


def seed_diagnostics(name: str, runs: Path) -> dict[int, dict[str, float]]:
    """seed -> tag -> the last logged value of each ``val/diag`` tag and of training's DITC and IMC under the batch's
    chance level, for each of ``name``'s finished seeds (each run's events read once)."""
    return {
        seed: {tag: values[tag][-1][1] for tag in DIAG_LAST_TAGS if values.get(tag)}
        for seed, values in curves(name, DIAG_LAST_TAGS, runs).items()
    }


def last_diagnostics(name: str, runs: Path) -> dict[str, float]:
    """tag -> ``seed_diagnostics``' value, mean over ``name``'s finished seeds."""
    seeds = seed_diagnostics(name, runs).values()
    out = {}
    for tag in DIAG_LAST_TAGS:
        last = [values[tag] for values in seeds if tag in values]
        if last:
            out[tag] = statistics.mean(last)
    return out


def alignment_reading(names: list[str], runs: Path) -> str:
    """What the validation diagnostics of the AET rows and candidates say about why AET does (not) help: which have a
    collapsed image stream (judged seed by seed: a mean over seeds would call a row apart that collapsed in most of
    them), whether any tells validation pages apart through DITC better than chance, whether those kept apart tell
    their training pages apart, and the largest PITA matched - mismatched gap. Derived from the runs."""
    cos_tag = "val/diag/image_cls_cos"
    by_seed = {name: seed_diagnostics(name, runs) for name in names}
    by_seed = {n: {s: d for s, d in seeds.items() if cos_tag in d} for n, seeds in by_seed.items()}
    by_seed = {n: seeds for n, seeds in by_seed.items() if seeds}
    if not by_seed:
        return "No AET run with validation diagnostics has finished yet."
    found = {name: last_diagnostics(name, runs) for name in by_seed}
    apart_seeds = {n: [s for s, d in seeds.items() if d[cos_tag] <= COLLAPSED_COS] for n, seeds in by_seed.items()}
    collapsed = [n for n in by_seed if not apart_seeds[n]]
    apart = [n for n in by_seed if len(apart_seeds[n]) == len(by_seed[n])]
    mixed = [n for n in by_seed if n not in collapsed and n not in apart]

    def cosines(name: str, seeds: list[int]) -> str:
        values = [by_seed[name][s][cos_tag] for s in seeds]
        return f"{min(values):.3f}" + (f"-{max(values):.3f}" if len(values) > 1 else "")

    text = (
        f"On validation, {len(collapsed)} of the {len(by_seed)} AET configurations with diagnostics (rows and "
        f"selection candidates) have a collapsed image stream in every seed (CLS cosine above {COLLAPSED_COS}"
        + (f": {', '.join(f'`{n}`' for n in collapsed)}" if collapsed else "")
        + ")"
    )
    if apart:
        text += f"; {', '.join(f'`{n}` ({cosines(n, apart_seeds[n])})' for n in apart)} keep pages apart in every seed"
    for name in mixed:
        others = [s for s in by_seed[name] if s not in apart_seeds[name]]
        text += (
            f"; `{name}` keeps them apart in {len(apart_seeds[name])} of its {len(by_seed[name])} seeds only "
            f"(seed {', '.join(map(str, apart_seeds[name]))}: {cosines(name, apart_seeds[name])}; the others "
            f"{cosines(name, others)})"
        )
    parts = [text + "."]
    gaps = {
        name: d["val/diag/ditc_batch"] - d["val/diag/ditc_batch_chance"]
        for name, d in found.items()
        if "val/diag/ditc_batch" in d and "val/diag/ditc_batch_chance" in d
    }
    if gaps:
        better = [name for name, gap in gaps.items() if gap < 0]
        parts.append(
            (
                f"{', '.join(f'`{n}`' for n in better)} tell the validation pages apart through DITC better than "
                "chance (`ditc_batch` under `ditc_batch_chance`);"
                if better
                else "None tells the validation pages apart through DITC better than chance:"
            )
            + f" validation DITC minus its chance level ranges from {min(gaps.values()):+.2f} to "
            f"{max(gaps.values()):+.2f} nats (above 0: worse than guessing; the training-side `*_under_batch_chance` in "
            "the diagnostics table says whether the training pages are told apart)."
        )
    runs_apart = [(n, s) for n in by_seed for s in apart_seeds[n]]
    if runs_apart:
        parts.append(training_pages_reading(runs_apart, by_seed))
    pita = {
        name: d["val/diag/pita_matched"] - d["val/diag/pita_mismatched"]
        for name, d in found.items()
        if "val/diag/pita_matched" in d and "val/diag/pita_mismatched" in d
    }
    if pita:
        top = max(pita, key=pita.get)
        parts.append(
            f"PITA's matched minus mismatched cosine is at most {pita[top]:+.3f} (`{top}`): a patch is no closer to "
            "its own words than to other words."
            if pita[top] < 0.05
            else f"PITA's matched minus mismatched cosine reaches {pita[top]:+.3f} (`{top}`): patches do move towards "
            "their own words."
        )
    return " ".join(parts)


def training_pages_reading(runs_apart: list[tuple[str, int]], by_seed: dict[str, dict[int, dict[str, float]]]) -> str:
    """Whether the runs (configuration, seed) whose image stream stays apart on validation tell their *training* pages
    apart: training DITC and IMC against the batch's own chance level (``*_under_batch_chance``, above 0: told
    apart)."""
    ditc, imc = (f"train/diag/{term}_under_batch_chance" for term in ("ditc", "imc"))
    logged = [(n, s) for n, s in runs_apart if ditc in by_seed[n][s]]
    missing = sorted({n for n, s in runs_apart if (n, s) not in logged})
    unlogged = f"{', '.join(f'`{n}`' for n in missing)} did not log it (runs from before it was added)."
    if not logged:
        return f"Whether the runs kept apart tell their training pages apart is not known: {unlogged}"
    cells = [
        f"`{n}` seed {s} DITC {by_seed[n][s][ditc]:+.2f}" + (f", IMC {by_seed[n][s][imc]:+.2f}" if imc in by_seed[n][s] else "")
        for n, s in logged
    ]  # fmt: skip
    told = [f"`{n}` seed {s}" for n, s in logged if by_seed[n][s][ditc] > 0]
    text = (
        "Training pages, in the runs kept apart (last training step, nats under the batch's chance log(B); above 0: "
        f"told apart): {'; '.join(cells)}: "
        + (
            f"{', '.join(told)} tell their training pages apart through DITC but not new ones."
            if told
            else "none of them tells even its training pages apart through DITC."
        )
    )
    return text + (f" {unlogged}" if missing else "")


def plot(rows: list[str], tag: str, path: Path, runs: Path) -> None:
    """``tag``'s validation curve of every finished run, one colour a row (``docalign compare``'s plot)."""
    from docalign.compare import Run, plot_curves

    by_row = {
        row: [
            Run(run_dir(row, seed, runs), {}, curve=values.get(tag, []))
            for seed, values in curves(row, [tag], runs).items()
        ]
        for row in rows
    }
    by_row = {row: found for row, found in by_row.items() if found}
    if by_row:
        plot_curves(by_row, tag, path)


def selection_text(selection: dict) -> str:
    lines = [
        "| candidate | overrides on funsd_aet | best val/f1 | best val/f1_segments | fit min |",
        "|---|---|---|---|---|",
    ]
    for name, c in selection["candidates"].items():
        overrides = ", ".join(f"`{k.removeprefix(ALIGN + '.')}={v}`" for k, v in c["overrides"].items()) or "(none)"

        def num(key: str, scale: float = 1.0, digits: int = 4) -> str:
            return f"{c[key] / scale:.{digits}f}" if c.get(key) is not None else "not finished"

        mark = " (chosen)" if name == selection.get("chosen") else ""
        lines.append(
            f"| {name}{mark} | {overrides} | {num('val/f1')} | {num('val/f1_segments')} | {num('fit_seconds', 60, 1)} |"
        )
    return "\n".join(lines)


def answer(diffs: dict) -> str:
    """The plain answer: AET and the architecture alone against ``funsd_ft``, in both metrics."""
    parts = []
    for row, what in (
        ("funsd_aet", "AET (`funsd_aet` - `funsd_ft`)"),
        ("funsd_aet_weights0", "The architecture alone (`funsd_aet_weights0` - `funsd_ft`)"),
        ("funsd_ft_craft", "The CRAFT patch stem in plain fine-tuning (`funsd_ft_craft` - `funsd_ft`)"),
    ):
        found = [verdict(diffs.get((row, "funsd_ft", m)), f"`{m}`") for m in ("test/f1", "test/f1_segments")]
        parts.append(f"{what}: " + "; ".join(found) + ".")
    return " ".join(parts)


def excludes_zero(diff: Optional[dict], level: float = 0.95) -> bool:
    """Whether the paired difference's ``level`` t interval (n-1 degrees of freedom) lies on one side of 0."""
    if diff is None or diff["std"] is None:
        return False
    return abs(diff["mean"]) > t_half_width(diff["std"], diff["n"], level)


def ablation_answer(diffs: dict, planned: int = 3) -> str:
    """Which alignment term matters: each leave-one-out row against the full ``funsd_aet``, in both metrics. With
    8 comparisons, about 0.4 intervals at 95% exclude 0 by chance alone, so the summary also counts those that still
    exclude 0 at the Bonferroni level (1 - 0.05 / 8 each); below ``planned`` paired seeds it says the answer waits."""
    keys = [(f"funsd_aet_no_{term}", "funsd_aet", m) for term in TERMS for m in ("test/f1", "test/f1_segments")]
    parts = []
    for term in TERMS:
        row = f"funsd_aet_no_{term}"
        text = "; ".join(verdict(diffs.get((row, "funsd_aet", m)), f"`{m}`") for m in ("test/f1", "test/f1_segments"))
        parts.append(f"Without {term.upper()} (`{row}` - `funsd_aet`): {text}.")
    found = [diffs.get(key) for key in keys]
    fewest = min((d["n"] if d else 0) for d in found)
    at95 = [key for key, d in zip(keys, found) if excludes_zero(d)]
    adjusted = 1 - 0.05 / len(keys)
    strict = [key for key, d in zip(keys, found) if excludes_zero(d, adjusted)]
    if fewest < 2:
        summary = "Not every ablation has 2 paired seeds yet."
    else:
        named = ", ".join(f"`{row}` `{metric}`" for row, _, metric in at95)
        summary = (
            f"{len(at95)} of the {len(keys)} differences {'excludes' if len(at95) == 1 else 'exclude'} 0 at 95%"
            + (f" ({named})" if at95 else "")
            + f", where about {0.05 * len(keys):.1f} would by chance alone; at the Bonferroni level ({adjusted:.2%} "
            f"each) {len(strict)} do"
            + (
                ": no term is shown to matter."
                if not strict
                else f": {', '.join(f'`{row}` `{metric}`' for row, _, metric in strict)}."
            )
        )
        if fewest < planned:
            summary += f" Provisional: some ablations have {fewest} of their {planned} seeds."
    return summary + " " + " ".join(parts)


def report(args: argparse.Namespace) -> None:
    runs = args.runs
    selection = read_selection(runs) or summarise_selection(args.epochs, runs)
    budget = json.loads((runs / "matrix.json").read_text()) if (runs / "matrix.json").exists() else {}
    rows = list(MATRIX)
    table, scores = results_table(rows, runs)
    differences, diffs = differences_table(scores)
    for tag in ("val/f1", "val/f1_segments"):
        plot(rows, tag, REPO / "docs" / f"funsd_decisive_{tag.replace('/', '_')}.png", runs)
    plot(list(CANDIDATES), "val/f1", REPO / "docs" / "funsd_decisive_select_val_f1.png", runs)
    chosen = selection.get("chosen")
    reproduced = ""
    rerun, selected = (finished_runs(row, runs).get(SELECTION_SEED) for row in ("funsd_aet", chosen or ""))
    if chosen and rerun and selected:
        a, b = rerun["test"], selected["test"]
        same = all(a.get(m) == b.get(m) for m in ("test/f1", "test/f1_segments"))
        reproduced = (
            f" `funsd_aet` seed {SELECTION_SEED} is a rerun of the selection's `{chosen}` run: its test scores "
            + (
                "are identical (deterministic runs)."
                if same
                else f"differ (test/f1 {a['test/f1']:.4f} vs {b['test/f1']:.4f})."
            )
        )
    text = f"""Written by `python benchmarks/funsd_decisive.py report` on {machine()}.

Runs (committed, resumable): `docs/runs/funsd_decisive/<row>/version_seed<S>/`. Commands:
`python benchmarks/funsd_decisive.py select` (seed 1, the AET candidates, chosen by the best `val/f1` only), then
`python benchmarks/funsd_decisive.py matrix --jobs 1` (seeds 1-5, seed by seed), then `... report`. Each run is
`docalign fit --config experiments/_base.yaml --config experiments/<experiment>.yaml --config experiments/_offline.yaml`
(AET: `--config experiments/_offline_aet.yaml`) with the row's overrides, on real FUNSD (134 training forms, 15 for
validation, 50 test), batch 8, {selection.get("epochs", args.epochs)} epochs, the best `val/f1` checkpoint tested,
one thread a run; launched on {budget.get("machine", "n/a")}.

**Selection** (seed {SELECTION_SEED}, best validation scores; chosen: `{chosen or "not yet"}`):

{selection_text(selection)}

The `*_slow` candidates were added after the first four had run, when the diagnostics showed every one of them with a
collapsed image stream (validation CLS cosine 1.000; RESULTS "AET on FUNSD: why the image stream collapsed"). The
selection runs predate one fix: their alignment text encoder trained with dropout off (`from_pretrained` leaves a model
in eval mode and Lightning keeps a submodule's mode); the matrix's AET runs train it with dropout on, so `funsd_aet`
seed 1 is not a re-run of its candidate.

**The matrix.** `funsd_aet` is the chosen candidate; `funsd_aet_weights0` is it with the DITC, IMC, GLITC and PITA
weights 0 (the architecture alone); `funsd_aet_no_<term>` leaves one term out.{reproduced} `test/f1` is seqeval's entity
F1 over the word BIO tags (the published score); `test/f1_segments` is entities given the gold segments (not
comparable with published F1). Mean ± std over the seeds finished:

{table}

Paired difference by seed (row minus reference over the seeds both finished), mean and 95% t interval (n-1 degrees
of freedom):

{differences}

**Does AET help?** {answer(diffs)}

**Which term matters?** {ablation_answer(diffs)}

**Why not more:** {alignment_reading([r for r in rows if "aet" in r] + list(CANDIDATES), runs)}

Collapse diagnostics of the AET rows (last logged value, mean over seeds; `*_cls_cos`: mean cosine between different
pages' CLS states, near 1 = every page looks alike; `pita_matched` / `pita_mismatched`: a patch's cosine with its own
words and with other words; `ditc_batch` against `ditc_batch_chance`: validation DITC with the batch's pages as
negatives; `*_under_chance`: nats under the contrastive chance level in training, 0 = no discrimination, but a
collapsed encoder reaches log((B + K) / B) by telling fresh keys from the queue's stale ones; `*_under_batch_chance`:
under the batch's own chance log(B), above 0 only when the batch's documents are told apart, logged by runs started
after it was added (not the selection's); "-": not logged by that run):

{diagnostics_table([r for r in rows if r != "funsd_ft"] + list(CANDIDATES), runs)}

Validation curves: `docs/funsd_decisive_val_f1.png`, `docs/funsd_decisive_val_f1_segments.png`, the selection's
`docs/funsd_decisive_select_val_f1.png`.
"""
    write_section("funsd_decisive", "FUNSD offline: does AET help? (the decisive table)", text)
    print(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("phase", choices=["select", "matrix", "report", "smoke"])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--jobs", type=int, default=1, help="runs at once, one thread each")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5], help="matrix: the seeds to run")
    parser.add_argument("--rows", nargs="+", help="matrix, smoke: only these rows")
    parser.add_argument("--runs", type=Path, default=RUNS, help="the runs' folder (default: docs/runs/funsd_decisive)")
    parser.add_argument("--keep-checkpoints", action="store_true", help="keep each run's checkpoints after its test")
    args = parser.parse_args()
    {"select": select, "matrix": matrix, "report": report, "smoke": smoke}[args.phase](args)


if __name__ == "__main__":
    main()
