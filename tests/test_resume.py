"""Exact resume: a fit killed with SIGKILL mid-epoch and resumed with ``--ckpt_path last`` ends as the
uninterrupted run does; the pieces (resumable loader, generator states, run folders, atomic writes) on their own."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch.utils.data import DataLoader

from docalign.cli import cli_main, write_atomically
from docalign.data.samplers import ResumableLoader, ResumableSampler
from docalign.resume import ResumeError, resumable_run, rng_state, run_of_checkpoint, set_rng_state

from conftest import REPO, cli_args

TESTS = Path(__file__).resolve().parent
CHECKPOINT_EVERY_STEP = {
    "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
    "init_args": {
        "save_last": True,
        "every_n_train_steps": 1,
        "filename": "step{step}",
        "auto_insert_metric_name": False,
    },
}
STEPS_PER_EPOCH, KILL_AT = 3, 4  # 2 epochs of 3 steps; killed after step 4, i.e. after batch 1 of epoch 1


def _fit_args(tmp_path: Path, experiment: str, callbacks: list[dict], *extra: str) -> list[str]:
    """``docalign fit`` of the tiny AET demo (its momentum encoders and queues are state too), 2 epochs of 3 steps."""
    overlay = tmp_path / f"{experiment}-{len(callbacks)}-{len(extra)}.yaml"
    overlay.write_text(yaml.safe_dump({"trainer": {"callbacks": callbacks}}))
    return [
        "fit",
        *cli_args(
            "demo",
            tmp_path,
            "--config",
            str(overlay),
            "--experiment",
            experiment,
            "--trainer.max_epochs",
            "2",
            "--trainer.limit_train_batches",
            str(STEPS_PER_EPOCH),
            *extra,
        ),
    ]


def _fit_in_subprocess(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(TESTS)])}
    return subprocess.Popen(
        [sys.executable, "-m", "docalign.cli", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _final(tmp_path: Path, name: str) -> dict:
    return {"class_path": "faults.SaveFinalState", "init_args": {"path": str(tmp_path / f"{name}.pt")}}


def test_a_fit_killed_mid_epoch_resumes_to_the_same_metrics_and_weights(tmp_path):
    """The killed run is a subprocess (SIGKILL: no handler, no cleanup); the uninterrupted run and the resumption run
    in this process, one after the other, so both see the same threads and settings."""
    kill = {"class_path": "faults.KillAtStep", "init_args": {"step": KILL_AT}}
    killed = _fit_in_subprocess(_fit_args(tmp_path, "cut", [CHECKPOINT_EVERY_STEP, kill]))
    cli_main(_fit_args(tmp_path, "whole", [CHECKPOINT_EVERY_STEP, _final(tmp_path, "whole")]))
    out_killed, _ = killed.communicate(timeout=300)
    assert killed.returncode == -signal.SIGKILL, out_killed[-3000:]
    run = tmp_path / "logs" / "cut" / "version_0"
    assert not (run / "metrics.json").exists()
    saved = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    progress = saved["loops"]["fit_loop"]["epoch_loop.batch_progress"]["current"]
    assert saved["global_step"] == KILL_AT and saved["epoch"] == 1 and progress["processed"] == 1  # mid-epoch
    assert saved["loops"]["fit_loop"]["state_dict"]["combined_loader"][0]["batches"] == 1
    assert "rng" in saved["docalign_resume"] and "alignment_pending" in saved["docalign_resume"]

    resumed = cli_main(
        _fit_args(tmp_path, "cut", [CHECKPOINT_EVERY_STEP, _final(tmp_path, "resumed")], "--ckpt_path", "last")
    )
    assert resumed.trainer.log_dir == str(run)
    assert sorted(p.name for p in run.parent.iterdir()) == ["version_0"]  # the same run, not a new one
    metrics = json.loads((run / "metrics.json").read_text())
    expected = json.loads((tmp_path / "logs" / "whole" / "version_0" / "metrics.json").read_text())
    assert metrics["resumed_from"] == str(run / "checkpoints" / "last.ckpt")
    assert metrics["global_steps"] == expected["global_steps"] == 2 * STEPS_PER_EPOCH
    assert metrics["test"] == expected["test"] and metrics["best_val"] == expected["best_val"]  # exactly equal
    final, reference = torch.load(tmp_path / "resumed.pt"), torch.load(tmp_path / "whole.pt")
    assert final.keys() == reference.keys()
    unequal = [k for k in reference if not torch.equal(final[k], reference[k])]  # bit for bit, no tolerance
    assert not unequal, unequal[:5]


def test_ckpt_path_last_without_a_run_is_one_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["fit", *cli_args("demo_ft", tmp_path, "--ckpt_path", "last")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "no run of experiment 'demo_ft' to resume" in err and str(tmp_path / "logs" / "demo_ft") in err


def _batches(loader, n=None):
    out = []
    for i, batch in enumerate(loader):
        if n is not None and i == n:
            break
        out.append(batch.tolist())
    return out


def test_the_loader_resumes_mid_epoch_in_the_same_order_and_keeps_randomsampler_order():
    data = list(range(23))
    torch.manual_seed(7)
    plain = [b.tolist() for b in DataLoader(data, batch_size=4, shuffle=True)]
    torch.manual_seed(7)
    loader = ResumableLoader(data, batch_size=4, sampler=ResumableSampler(data))
    assert _batches(loader) == plain  # one process: RandomSampler's order, so runs do not change

    torch.manual_seed(3)
    loader = ResumableLoader(data, batch_size=4, sampler=ResumableSampler(data))
    loader.sampler.set_epoch(2)
    iterator = iter(loader)
    first = [next(iterator).tolist() for _ in range(2)]
    state = loader.state_dict()
    assert state["epoch"] == 2 and state["batches"] == 2
    rest = [b.tolist() for b in iterator]  # the uninterrupted pass after those two batches
    again = ResumableLoader(data, batch_size=4, sampler=ResumableSampler(data))
    torch.manual_seed(999)  # another global state: the order must come from the saved seed
    again.load_state_dict(state)
    assert _batches(again) == rest and sorted(sum(first + rest, [])) == data
    assert again.state_dict()["batches"] == 6  # counted from the epoch's start


def test_a_state_saved_after_the_epochs_last_batch_starts_the_next_epoch():
    data = list(range(10))
    loader = ResumableLoader(data, batch_size=4, sampler=ResumableSampler(data), epoch_batches=lambda: 2)
    _batches(loader, 2)
    assert loader.state_dict() == {"epoch": 1, "order_seed": None, "batches": 0}
    fresh = ResumableLoader(data, batch_size=4, sampler=ResumableSampler(data))
    fresh.load_state_dict(loader.state_dict())
    assert fresh.sampler.epoch == 1 and len(sum(_batches(fresh), [])) == 10  # a whole epoch, nothing skipped


def test_generator_states_survive_a_weights_only_checkpoint(tmp_path):
    import random

    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    state = rng_state()
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    torch.save({"rng": state}, tmp_path / "state.pt")
    random.seed(10), np.random.seed(20), torch.manual_seed(30)
    set_rng_state(torch.load(tmp_path / "state.pt", weights_only=True)["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def test_resumable_run_is_the_newest_with_a_last_checkpoint(tmp_path):
    for version, last in (("version_0", True), ("version_2_sweep", True), ("version_10", False)):
        folder = tmp_path / "demo" / version / "checkpoints"
        folder.mkdir(parents=True)
        if last:
            (folder / "last.ckpt").write_bytes(b"x")
    run = resumable_run(tmp_path, "demo")
    assert (
        run.version == "version_2_sweep"
        and run.last == tmp_path / "demo" / "version_2_sweep" / "checkpoints" / "last.ckpt"
    )
    assert run_of_checkpoint(run.last) == run
    assert run_of_checkpoint(tmp_path / "elsewhere.ckpt") is None
    with pytest.raises(ResumeError, match="no run of experiment 'other'"):
        resumable_run(tmp_path, "other")


def test_metrics_json_is_replaced_not_rewritten_in_place(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text('{"old": 1}\n')
    with open(path) as reader:  # a reader of the old file keeps reading the whole old file
        write_atomically(path, '{"new": 2}\n')
        assert reader.read() == '{"old": 1}\n'
    assert path.read_text() == '{"new": 2}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temporary file left


def test_an_explicit_checkpoint_in_a_run_folder_resumes_into_that_folder(tmp_path):
    from jsonargparse import Namespace

    from docalign.cli import resolve_resume

    ckpt = tmp_path / "elsewhere" / "demo_ft" / "version_3_sweep" / "checkpoints" / "step9.ckpt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"x")

    def config(path):
        logger = Namespace(
            class_path="lightning.pytorch.loggers.TensorBoardLogger",
            init_args=Namespace(save_dir=str(tmp_path / "logs"), name="other", version=None),
        )
        return Namespace(
            ckpt_path=str(path), experiment=None, run_name=None, config=[], trainer=Namespace(logger=logger)
        )

    fit = config(ckpt)
    run = resolve_resume(fit, "fit")
    assert run is not None and run.path == ckpt.parent.parent
    args = fit.trainer.logger.init_args
    assert (args.save_dir, args.name, args.version) == (str(tmp_path / "elsewhere"), "demo_ft", "version_3_sweep")
    assert fit.experiment == "demo_ft" and fit.ckpt_path == str(ckpt) and fit.run_name == "sweep"
    test = config(ckpt)
    assert resolve_resume(test, "test") is None and test.trainer.logger.init_args.version is None  # only fit resumes
    outside = config(tmp_path / "elsewhere" / "x.ckpt")
    (tmp_path / "elsewhere" / "x.ckpt").write_bytes(b"x")
    assert resolve_resume(outside, "fit") is None and outside.trainer.logger.init_args.version is None


def _padded(batches, lengths):
    return sum(max(lengths[i] for i in b) * len(b) for b in batches)


def test_length_grouping_pads_less_keeps_every_window_and_resumes_exactly():
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(20, 257, (203,), generator=g).tolist()
    data = list(range(len(lengths)))

    def loader(group):
        sampler = ResumableSampler(data, group_by_length=group, lengths=lengths if group else None, batch_size=8)
        return ResumableLoader(data, batch_size=8, sampler=sampler)

    torch.manual_seed(5)
    plain = _batches(loader(0))
    torch.manual_seed(5)
    grouped = _batches(loader(8))
    assert sorted(sum(grouped, [])) == data  # a permutation: nothing dropped, nothing repeated
    assert [len(b) for b in grouped] == [8] * 25 + [3]  # the short batch stays last
    assert _padded(grouped, lengths) < 0.9 * _padded(plain, lengths)
    # the same windows per chunk of 8 batches as the plain shuffle of that seed, only regrouped
    assert sorted(sum(grouped[:8], [])) == sorted(sum(plain[:8], []))
    assert grouped[:8] != sorted(grouped[:8], key=lambda b: -lengths[b[0]])  # batches shuffled within the chunk

    torch.manual_seed(5)
    first = loader(8)
    iterator = iter(first)
    [next(iterator) for _ in range(11)]
    state = first.state_dict()
    again = loader(8)
    torch.manual_seed(123)
    again.load_state_dict(state)
    assert _batches(again) == grouped[11:]


def test_length_grouping_with_two_processes_covers_the_data_and_is_refused_without_lengths():
    lengths = [(7 * i) % 97 + 3 for i in range(40)]
    data = list(range(40))
    shares = [
        list(ResumableSampler(data, num_replicas=2, rank=r, seed=3, group_by_length=2, lengths=lengths, batch_size=4))
        for r in (0, 1)
    ]
    assert sorted(shares[0] + shares[1]) == data
    with pytest.raises(ValueError, match="one length per sample"):
        ResumableSampler(data, group_by_length=2, batch_size=4)
