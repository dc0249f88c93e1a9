"""benchmarks/funsd_decisive.py without training: the paired-difference statistics, the rows, resumability."""

from __future__ import annotations

import inspect
import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, load_benchmark


@pytest.fixture(scope="module")
def decisive():
    return load_benchmark("funsd_decisive")


def write_run(runs, row, seed, test=None, val_f1=0.5):
    run = runs / row / f"version_seed{seed}"
    run.mkdir(parents=True)
    metrics = {"seed": seed, "fit_seconds": 600.0, "best_val": {"val/f1": val_f1}, "test": test or {}}
    (run / "metrics.json").write_text(json.dumps(metrics))
    return run


def test_paired_difference_and_its_t_interval_by_hand(decisive):
    # shared seeds 1, 2, 3: differences 0.1, 0.2, 0.3 -> mean 0.2, std 0.1, t(0.975, 2 dof) = 4.302653
    values = {1: 0.5, 2: 0.7, 3: 0.6, 4: 0.9}
    reference = {1: 0.4, 2: 0.5, 3: 0.3, 5: 0.1}
    diff = decisive.paired_difference(values, reference)
    half = 4.302652729911275 * 0.1 / math.sqrt(3)  # 0.248414
    assert diff["seeds"] == [1, 2, 3] and diff["n"] == 3
    assert diff["mean"] == pytest.approx(0.2) and diff["std"] == pytest.approx(0.1)
    assert diff["low"] == pytest.approx(0.2 - half) and diff["high"] == pytest.approx(0.2 + half)
    assert diff["low"] == pytest.approx(-0.048414, abs=1e-6)


def test_paired_difference_with_one_or_no_shared_seed(decisive):
    one = decisive.paired_difference({1: 0.5, 2: 0.6}, {1: 0.4})
    assert one["n"] == 1 and one["mean"] == pytest.approx(0.1) and one["low"] is None and one["high"] is None
    assert decisive.paired_difference({1: 0.5}, {2: 0.4}) is None
    assert "nothing to say" in decisive.verdict(one, "f1")
    assert "no difference established" in decisive.verdict(decisive.paired_difference({1: 1, 2: 0}, {1: 0, 2: 1}), "f1")
    assert "higher by 0.2000" in decisive.verdict(decisive.paired_difference({1: 0.3, 2: 0.5}, {1: 0.1, 2: 0.3}), "f1")


@pytest.mark.parametrize(
    "candidate",
    [
        "select_vit",
        "select_craft",
        "select_craft_gate",
        "select_craft_gate_pita",
        "select_craft_slow",
        "select_craft_gate_pita_slow",
    ],
)
def test_matrix_rows_on_each_candidate(decisive, candidate):
    chosen = decisive.CANDIDATES[candidate]
    rows = {row.name: row for row in decisive.matrix_rows(chosen)}
    weights = {f"{decisive.ALIGN}.{term}_weight" for term in ("ditc", "imc", "glitc", "pita")}
    assert set(rows) == {
        "funsd_ft",
        "funsd_ft_craft",
        "funsd_aet",
        "funsd_aet_weights0",
        "funsd_aet_no_ditc",
        "funsd_aet_no_imc",
        "funsd_aet_no_glitc",
        "funsd_aet_no_pita",
    }
    assert rows["funsd_ft"].experiment == "funsd_ft" and rows["funsd_ft"].overrides == {}
    # plain fine-tuning with CRAFT as LayoutLMv3's patch embedding: no alignment override leaks into it
    assert rows["funsd_ft_craft"].overrides == {"model.init_args.backbone.patch_stem": "craft_vgg16_bn"}
    aet = rows["funsd_aet"]
    assert aet.experiment == "funsd_aet" and aet.overrides == chosen
    # weights0: all four alignment weights 0, the rest as the chosen configuration
    zero = rows["funsd_aet_weights0"].overrides
    assert {k: v for k, v in zero.items() if k in weights} == dict.fromkeys(weights, "0.0")
    assert {k: v for k, v in zero.items() if k not in weights} == chosen
    # each ablation: the chosen configuration with exactly one weight 0
    for term in ("ditc", "imc", "glitc", "pita"):
        row = rows[f"funsd_aet_no_{term}"]
        changed = {
            k for k in row.overrides.keys() | aet.overrides.keys() if row.overrides.get(k) != aet.overrides.get(k)
        }
        assert row.experiment == "funsd_aet"
        assert (
            changed == {f"{decisive.ALIGN}.{term}_weight"} and row.overrides[f"{decisive.ALIGN}.{term}_weight"] == "0.0"
        )
    assert [rows[r].seeds for r in ("funsd_ft", "funsd_aet", "funsd_aet_weights0")] == [5, 5, 5]
    assert {rows[f"funsd_aet_no_{t}"].seeds for t in ("ditc", "imc", "glitc", "pita")} == {3}


def test_each_candidate_adds_to_the_one_before_and_names_real_options(decisive):
    from docalign.alignment import AETAlignment
    from docalign.models.alignment import ImageEncoderConfig

    by_name = decisive.CANDIDATES
    chain = [by_name[n] for n in ("select_vit", "select_craft", "select_craft_gate", "select_craft_gate_pita")]
    assert chain[0] == {}
    for before, after in zip(chain, chain[1:]):
        assert before.items() < after.items()
    # the *_slow candidates: their namesake with only the alignment encoders' own learning rate added
    slow = {f"{decisive.ALIGN}.encoder_lr": "1.0e-05"}
    assert by_name["select_craft_slow"] == {**by_name["select_craft"], **slow}
    assert by_name["select_craft_gate_pita_slow"] == {**by_name["select_craft_gate_pita"], **slow}
    assert set(by_name) == {"select_vit", "select_craft", "select_craft_gate", "select_craft_gate_pita"} | {
        "select_craft_slow",
        "select_craft_gate_pita_slow",
    }
    candidates = list(by_name.values())
    options = set(inspect.signature(AETAlignment).parameters)
    stem_fields = set(inspect.signature(ImageEncoderConfig).parameters)
    for key in {k for c in candidates for k in c} | set(decisive.zero("ditc", "imc", "glitc", "pita")):
        first, *rest = key.removeprefix(decisive.ALIGN + ".").split(".")
        assert first in options and (not rest or rest[0] in stem_fields), key


def test_commands_log_each_row_under_its_own_name(decisive, tmp_path):
    rows = {row.name: row for row in decisive.matrix_rows(decisive.CANDIDATES["select_craft"])}
    cmd = rows["funsd_aet_no_pita"].command(3, 6, tmp_path)
    assert cmd[cmd.index("--experiment") + 1] == "funsd_aet_no_pita"
    assert cmd[cmd.index("--seed_everything") + 1] == "3" and cmd[cmd.index("--trainer.max_epochs") + 1] == "6"
    assert cmd[cmd.index("--data.batch_size") + 1] == "8"
    tokens = rows["funsd_aet_no_pita"].tokens()  # the stem and PITA's weight, last
    configs = [Path(cmd[i + 1]).name for i, token in enumerate(cmd) if token == "--config"]
    assert configs == ["_base.yaml", "funsd_aet.yaml", "_offline.yaml", "_offline_aet.yaml"]
    assert len(tokens) == 4 and cmd[-4:] == tokens
    assert cmd[cmd.index("--trainer.logger.init_args.version") + 1] == "version_seed3"
    assert str(REPO / "experiments" / "_offline_aet.yaml") not in rows["funsd_ft"].command(1, 6, tmp_path)


def test_schedule_goes_seed_by_seed_and_each_row_stops_at_its_seeds(decisive):
    rows = decisive.matrix_rows({})
    jobs = [(row.name, seed) for row, seed in decisive.schedule(rows, [1, 2, 3, 4, 5])]
    assert jobs[: len(rows)] == [(row.name, 1) for row in rows]
    assert [seed for _, seed in jobs] == sorted(seed for _, seed in jobs)
    assert len(jobs) == 4 * 5 + 4 * 3 and ("funsd_aet_no_imc", 4) not in jobs and ("funsd_aet_weights0", 5) in jobs


def test_a_finished_run_is_skipped_an_interrupted_one_restarts_and_an_active_one_is_left_alone(
    decisive, tmp_path, monkeypatch
):
    rows = decisive.matrix_rows({})
    write_run(tmp_path, "funsd_ft", 1)
    host = socket.gethostname()
    # interrupted: its marker names a process that has ended (and its files are fresh, as after a git checkout)
    interrupted = tmp_path / "funsd_aet" / "version_seed1"
    interrupted.mkdir(parents=True)
    (interrupted / "events.out.tfevents.old").write_text("stale")
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    (tmp_path / "funsd_aet" / "version_seed1.running").write_text(f"{host} {ended.pid}\n")
    busy = tmp_path / "funsd_aet_weights0" / "version_seed1"  # a live process (this one) trains it
    busy.mkdir(parents=True)
    (busy / "events.out.tfevents.new").write_text("fresh")
    (tmp_path / "funsd_aet_weights0" / "version_seed1.running").write_text(f"{host} {os.getpid()}\n")
    assert not decisive.run_one.__globals__["active"](interrupted) and decisive.run_one.__globals__["active"](busy)
    jobs = decisive.schedule([r for r in rows if r.name in ("funsd_ft", "funsd_aet", "funsd_aet_weights0")], [1])
    assert [(row.name, seed) for row, seed in decisive.pending(jobs, tmp_path)] == [
        ("funsd_aet", 1),
        ("funsd_aet_weights0", 1),
    ]

    ran = []

    def fake_call(cmd, **kwargs):  # a run that tests and writes its metrics.json and a checkpoint
        run = tmp_path / cmd[cmd.index("--experiment") + 1] / "version_seed1"
        assert not (run / "events.out.tfevents.old").exists()  # the interrupted folder went first
        (run / "checkpoints").mkdir(parents=True)
        (run / "metrics.json").write_text("{}")
        ran.append(cmd[cmd.index("--experiment") + 1])
        return 0

    monkeypatch.setattr(decisive.run_one.__globals__["subprocess"], "call", fake_call)
    args = type("Args", (), {"epochs": 6, "jobs": 1, "keep_checkpoints": False})()
    decisive.train(jobs, args, tmp_path, tmp_path / "logs")
    assert ran == ["funsd_aet"]  # not funsd_aet_weights0: left to the process that writes it
    assert (interrupted / "metrics.json").exists() and not (interrupted / "checkpoints").exists()
    assert (busy / "events.out.tfevents.new").read_text() == "fresh"
    assert not (tmp_path / "funsd_aet" / "version_seed1.running").exists()  # the run's own marker went with it
    decisive.train(jobs, args, tmp_path, tmp_path / "logs")  # everything finished: nothing runs
    assert ran == ["funsd_aet"]


def test_selection_chooses_on_validation_only_once_every_candidate_finished(decisive, tmp_path):
    names = list(decisive.CANDIDATES)
    # the best test score belongs to another candidate than the best val/f1: test is not looked at
    vals = [0.30, 0.42] + [0.35] * (len(names) - 3)
    for name, val, test in zip(names[:-1], vals, [0.9] + [0.1] * (len(names) - 2)):
        write_run(tmp_path, name, 1, {"test/f1": test}, val_f1=val)
    partial = decisive.summarise_selection(6, tmp_path)
    assert partial["chosen"] is None and "val/f1" not in partial["candidates"][names[-1]]
    write_run(tmp_path, names[-1], 1, {"test/f1": 0.2}, val_f1=0.42)  # a tie: the earlier (simpler) candidate wins
    selection = decisive.summarise_selection(6, tmp_path)
    assert selection["chosen"] == names[1]
    assert selection["candidates"][names[1]]["val/f1"] == 0.42 and selection["epochs"] == 6


def test_report_tables_show_a_partial_matrix(decisive, tmp_path):
    for seed, (ft, aet) in enumerate([(0.50, 0.52), (0.40, 0.45), (0.60, 0.61)], 1):
        write_run(tmp_path, "funsd_ft", seed, {"test/f1": ft, "test/f1_segments": ft + 0.2})
        write_run(tmp_path, "funsd_aet", seed, {"test/f1": aet, "test/f1_segments": aet + 0.2})
    write_run(tmp_path, "funsd_aet_no_pita", 1, {"test/f1": 0.3, "test/f1_segments": 0.5})
    table, scores = decisive.results_table(list(decisive.MATRIX), tmp_path)
    assert "| funsd_aet | 3 of 5 (1, 2, 3) |" in table and "| funsd_aet_no_pita | 1 of 3 (1) |" in table
    assert "| funsd_aet_weights0 | 0 of 5 (-) | - |" in table
    differences, diffs = decisive.differences_table(scores)
    aet = diffs["funsd_aet", "funsd_ft", "test/f1"]
    assert aet["n"] == 3 and aet["mean"] == pytest.approx(0.0267, abs=1e-4)
    assert diffs["funsd_aet_no_pita", "funsd_aet", "test/f1"]["n"] == 1
    assert diffs["funsd_aet_weights0", "funsd_ft", "test/f1"] is None
    assert "| funsd_aet_no_pita - funsd_aet | -0.2200 (n=1) |" in differences


def test_the_ablation_answer_names_each_term_and_waits_for_two_paired_seeds(decisive, tmp_path):
    aet = [0.50, 0.40, 0.60]
    for seed, value in enumerate(aet, 1):
        write_run(tmp_path, "funsd_aet", seed, {"test/f1": value, "test/f1_segments": value + 0.2})
    # no_pita is clearly lower on both metrics (-0.10, -0.11, -0.09); the others wobble around 0
    shifts = {
        "ditc": [0.01, -0.02, 0.01],
        "imc": [-0.01, 0.02, -0.01],
        "glitc": [0.0, 0.01, -0.01],
        "pita": [-0.10, -0.11, -0.09],
    }
    for term, deltas in shifts.items():
        for seed, (value, delta) in enumerate(zip(aet, deltas), 1):
            if term == "ditc" and seed > 1:
                continue  # one seed only at first
            write_run(
                tmp_path,
                f"funsd_aet_no_{term}",
                seed,
                {"test/f1": value + delta, "test/f1_segments": value + 0.2 + delta},
            )
    _, scores = decisive.results_table(list(decisive.MATRIX), tmp_path)
    text = decisive.ablation_answer(decisive.differences_table(scores)[1])
    assert text.startswith("Not every ablation has 2 paired seeds yet.")
    assert "Without DITC (`funsd_aet_no_ditc` - `funsd_aet`): `test/f1`: fewer than 2 paired seeds" in text
    for seed in (2, 3):
        value, delta = aet[seed - 1], shifts["ditc"][seed - 1]
        write_run(
            tmp_path, "funsd_aet_no_ditc", seed, {"test/f1": value + delta, "test/f1_segments": value + 0.2 + delta}
        )
    _, scores = decisive.results_table(list(decisive.MATRIX), tmp_path)
    text = decisive.ablation_answer(decisive.differences_table(scores)[1])
    assert text.startswith(
        "2 of the 8 differences exclude 0 at 95% (`funsd_aet_no_pita` `test/f1`, `funsd_aet_no_pita` "
        "`test/f1_segments`), where about 0.4 would by chance alone; at the Bonferroni level (99.38% each) 2 do: "
        "`funsd_aet_no_pita` `test/f1`, `funsd_aet_no_pita` `test/f1_segments`. Without DITC"
    )
    assert "Without PITA (`funsd_aet_no_pita` - `funsd_aet`): `test/f1`: lower by 0.1000" in text
    assert "Without IMC (`funsd_aet_no_imc` - `funsd_aet`): `test/f1`: no difference established" in text
    # two seeds whose differences happen to agree exclude 0 at 95%, not at the Bonferroni level; the answer waits
    diff = decisive.paired_difference({1: 0.510, 2: 0.511}, {1: 0.50, 2: 0.50})
    assert decisive.excludes_zero(diff) and not decisive.excludes_zero(diff, 1 - 0.05 / 8)
    two = {
        key: decisive.paired_difference({1: 0.5, 2: 0.6}, {1: 0.5, 2: 0.5})
        for key in [
            (f"funsd_aet_no_{t}", "funsd_aet", m) for t in decisive.TERMS for m in ("test/f1", "test/f1_segments")
        ]
    }
    two["funsd_aet_no_glitc", "funsd_aet", "test/f1"] = diff
    text = decisive.ablation_answer(two)
    assert text.startswith("1 of the 8 differences excludes 0 at 95% (`funsd_aet_no_glitc` `test/f1`)")
    assert (
        "at the Bonferroni level (99.38% each) 0 do: no term is shown to matter. Provisional: some ablations have 2"
        in text
    )


def test_the_why_reading_follows_the_validation_diagnostics(decisive, tmp_path):
    """``alignment_reading`` is derived from the runs' logged diagnostics: collapsed vs apart image streams, DITC
    against its chance level, PITA's matched - mismatched gap; a run without diagnostics is left out."""
    from torch.utils.tensorboard import SummaryWriter

    def logged(row, **values):
        run = write_run(tmp_path, row, 1)
        writer = SummaryWriter(str(run))
        for name, value in values.items():
            where = "train" if name.endswith("_under_batch_chance") else "val"
            writer.add_scalar(f"{where}/diag/{name}", value, 10)
        writer.close()

    logged(
        "funsd_aet", image_cls_cos=0.999, ditc_batch=3.5, ditc_batch_chance=2.0, pita_matched=0.9, pita_mismatched=0.9
    )
    logged("select_craft_slow", image_cls_cos=0.85, ditc_batch=2.5, ditc_batch_chance=2.0)
    write_run(tmp_path, "select_vit", 1)  # finished, no diagnostics
    text = decisive.alignment_reading(["funsd_aet", "select_craft_slow", "select_vit"], tmp_path)
    assert "1 of the 2 AET configurations" in text and "in every seed (CLS cosine above 0.99: `funsd_aet`)" in text
    assert "`select_craft_slow` (0.850) keep pages apart in every seed" in text
    assert "None tells the validation pages apart" in text and "from +0.50 to +1.50 nats" in text
    assert "at most +0.000 (`funsd_aet`)" in text
    assert (
        "Whether the runs kept apart tell their training pages apart is not known: `select_craft_slow` did not" in text
    )
    logged(
        "select_craft_gate",
        image_cls_cos=0.8,
        ditc_batch=1.5,
        ditc_batch_chance=2.0,
        pita_matched=0.5,
        pita_mismatched=0.3,
    )
    logged("funsd_aet_no_pita", image_cls_cos=0.95, ditc_under_batch_chance=-2.36, imc_under_batch_chance=0.27)
    # a second seed collapsed: the row is apart in 1 of 2 seeds (its mean, 0.975, would have called it apart)
    run = write_run(tmp_path, "funsd_aet_no_pita", 2)
    writer = SummaryWriter(str(run))
    writer.add_scalar("val/diag/image_cls_cos", 1.0, 10)
    writer.add_scalar("train/diag/ditc_under_batch_chance", 0.5, 10)  # not a run kept apart: not reported
    writer.close()
    text = decisive.alignment_reading(["funsd_aet", "funsd_aet_no_pita", "select_craft_slow"], tmp_path)
    assert "`funsd_aet_no_pita` keeps them apart in 1 of its 2 seeds only (seed 1: 0.950; the others 1.000)" in text
    assert (
        "(last training step, nats under the batch's chance log(B); above 0: told apart): `funsd_aet_no_pita` "
        "seed 1 DITC -2.36, IMC +0.27: none of them tells even its training pages apart through DITC. "
        "`select_craft_slow` did not log it"
    ) in text
    text = decisive.alignment_reading(["funsd_aet", "select_craft_gate"], tmp_path)
    assert "`select_craft_gate` tell the validation pages apart through DITC better than chance" in text
    assert "reaches +0.200 (`select_craft_gate`): patches do move" in text
    assert decisive.alignment_reading(["select_vit"], tmp_path).startswith("No AET run with validation diagnostics")
