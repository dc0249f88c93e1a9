"""The errors the README promises: one paragraph naming the key, value or file, exit 2, before any data are read.

Parse-stage errors run the real CLI in-process with ``instantiate_classes`` replaced by a tripwire: reaching it (a
model or the data being built) fails the test. One subprocess run checks the console script's exit status.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from docalign import cli_errors
from docalign.cli import DocAlignCLI, cli_main

from conftest import EXPERIMENTS, FIXTURES, REPO, TINY, cli_args

BASE = ["fit", "--config", str(EXPERIMENTS / "_base.yaml"), "--config", str(EXPERIMENTS / "demo_ft.yaml")]
BASE += ["--config", str(TINY)]


@pytest.fixture
def nothing_built(monkeypatch):
    """Fail the test if the CLI gets as far as building the model or the data."""

    def tripwire(self):
        raise AssertionError("the CLI instantiated classes: the error came too late")

    monkeypatch.setattr(DocAlignCLI, "instantiate_classes", tripwire)


def error_of(capsys, *extra: str, base=BASE) -> str:
    """The CLI's stderr for ``base + extra``, which must exit 2 with one ``docalign: error:`` paragraph."""
    with pytest.raises(SystemExit) as exit_info:
        cli_main([*base, *extra])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("docalign: error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err and "usage:" not in err
    return lines[0]


@pytest.mark.parametrize(
    "override, named, suggested",
    [
        (["--model.lrr", "1"], "--model.lrr", "--model.lr"),
        (["--trainer.max_epoch", "1"], "--trainer.max_epoch", "--trainer.max_epochs"),  # argparse would expand it
        (["--data.batch_sizee=3"], "--data.batch_sizee", "--data.batch_size"),
        (["--model.backbone.hidden_sizee", "8"], "--model.backbone.hidden_sizee", "--model.backbone.hidden_size"),
        (["--model.init_args.backbone.num_layer", "1"], "--model.init_args.backbone.num_layer", "num_layers"),
        (["--seed_everythingg", "1"], "--seed_everythingg", "--seed_everything"),
        (["--trainer.logger.init_args.save_dirr", "x"], "save_dirr", "--trainer.logger.save_dir"),
    ],
)
def test_an_unknown_key_names_it_and_the_closest_valid_key(capsys, nothing_built, override, named, suggested):
    message = error_of(capsys, *override)
    assert named in message and "no such option" in message
    assert "Did you mean " in message and suggested in message.split("Did you mean ")[1]


@pytest.mark.parametrize(
    "override, allowed",
    [
        (["--model.backbone.arch", "layoutlmv4"], "one of 'layoutlm', 'layoutlmv2', 'layoutlmv3'"),
        (["--trainer.max_epochs", "abc"], "an integer or null"),
        (["--model.backbone.hidden_size=abc"], "an integer"),
        (["--model.lr", "fast"], "a number"),
    ],
)
def test_a_bad_value_names_the_key_the_value_and_what_is_allowed(capsys, nothing_built, override, allowed):
    key, value = override[0].split("=") if "=" in override[0] else override
    message = error_of(capsys, *override)
    assert f"{key}: {value!r} is not a valid value" in message and allowed in message


@pytest.mark.parametrize(
    "overrides",
    [
        ["--model.lr", "0.1", "--trainer.max_epochs", "2", "--model.backbone.arch", "layoutlm"],
        ["--model.init_args.backbone.hidden_size=16", "--seed_everything", "7", "--model.weight_decay", "-0.5"],
        ["--trainer.callbacks+=EarlyStopping", "--trainer.callbacks.monitor", "val/f1", "--model.freeze+=backbone.*"],
        ["--trainer.logger.init_args.save_dir", "elsewhere", "--experiment", "x", "--test_after_fit", "false"],
        ["--model.alignment", "null", "--trainer.precision", "bf16-mixed", "--print_config=skip_null"][:4],
    ],
)
def test_valid_overrides_still_parse(nothing_built, overrides):
    with pytest.raises(AssertionError, match="instantiated classes"):  # got past every check
        cli_main([*BASE, *overrides])


class _RunsCode:
    """Unpickling this runs a command: what a crafted checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _checkpoints(tmp_path: Path) -> dict[str, Path]:
    good = tmp_path / "good.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(64, 64)}, "hyper_parameters": {}}, good)
    files = {"missing": tmp_path / "missing.ckpt", "empty": tmp_path / "empty.ckpt"}
    files["empty"].write_bytes(b"")
    files["truncated"] = tmp_path / "truncated.ckpt"
    files["truncated"].write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    files["random"] = tmp_path / "random.ckpt"
    files["random"].write_bytes(os.urandom(4096))
    files["not a zip"] = tmp_path / "notes.ckpt"
    files["not a zip"].write_text("this is a text file\n")
    files["zip, not torch"] = tmp_path / "other.ckpt"
    with zipfile.ZipFile(files["zip, not torch"], "w") as archive:
        archive.writestr("readme.txt", "hello")
    files["corrupt member"] = tmp_path / "crc.ckpt"
    data = bytearray(good.read_bytes())
    middle = data.find(b"\x00" * 256, 1024)  # inside the tensor's storage: the CRC no longer matches
    data[middle : middle + 16] = b"\xff" * 16
    files["corrupt member"].write_bytes(bytes(data))
    files["crafted"] = tmp_path / "crafted.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": _RunsCode(tmp_path / "ran")}, files["crafted"])
    return files


def test_a_missing_or_corrupt_ckpt_path_is_one_paragraph_naming_the_file(capsys, nothing_built, tmp_path):
    for kind, path in _checkpoints(tmp_path).items():
        message = error_of(capsys, "--ckpt_path", str(path))
        assert f"--ckpt_path: the checkpoint file '{path}'" in message, (kind, message)
    assert not (tmp_path / "ran").exists()  # the crafted pickle was refused before it ran anything


def test_the_checkpoint_check_passes_a_real_checkpoint(tmp_path):
    good = tmp_path / "good.ckpt"
    torch.save({"state_dict": {"w": torch.ones(3)}, "epoch": 1}, good)
    cli_errors.check_checkpoint_file(good)
    cli_errors.check_checkpoint_file("last")  # Lightning's names are not files
    cli_errors.check_checkpoint_file(None)


def test_a_corrupt_init_from_is_one_paragraph(capsys, nothing_built, tmp_path):
    files = _checkpoints(tmp_path)
    message = error_of(capsys, "--model.backbone.init_from", str(files["crafted"]))
    assert f"model.backbone.init_from: the checkpoint file '{files['crafted']}'" in message
    assert "weights_only=True" in message and not (tmp_path / "ran").exists()


def test_the_console_script_exits_2_with_one_paragraph():
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO / "src")}
    out = subprocess.run(
        [sys.executable, "-m", "docalign.cli", *BASE, "--model.lrr", "1"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 2
    errors = [line for line in out.stderr.splitlines() if line.startswith("docalign: error:")]
    assert errors == [
        "docalign: error: --model.lrr: no such option under 'model'. Did you mean --model.lr? "
        "(Run with --help for every option.)"
    ], out.stderr
    assert "Traceback" not in out.stderr


def test_offline_advice_lists_every_missing_checkpoint_and_both_overlays(capsys, nothing_built):
    base = ["fit", "--config", str(EXPERIMENTS / "_base.yaml"), "--config", str(EXPERIMENTS / "funsd_aet.yaml")]
    message = error_of(capsys, base=base)
    for name in ("microsoft/layoutlmv3-base", "roberta-base", "deit_base_patch16_224.fb_in1k"):
        assert f"'{name}'" in message
    assert message.count("checkpoint(s)") == 1 and "4 checkpoint(s)" in message
    offline, offline_aet = EXPERIMENTS / "_offline.yaml", EXPERIMENTS / "_offline_aet.yaml"
    assert f"--config {offline} --config {offline_aet}" in message
    # with the first overlay given, only the AET encoders are left, and only the AET overlay is advised
    message = error_of(capsys, "--config", str(offline), base=base)
    assert "2 checkpoint(s)" in message and "roberta-base" in message and "layoutlmv3-base" not in message
    assert f"--config {offline_aet} (" in message and f"--config {offline} " not in message


def test_offline_advice_for_a_plain_experiment_names_only_the_plain_overlay(capsys, nothing_built):
    base = ["fit", "--config", str(EXPERIMENTS / "_base.yaml"), "--config", str(EXPERIMENTS / "funsd_ft.yaml")]
    message = error_of(capsys, base=base)
    assert "2 checkpoint(s)" in message and "_offline_aet.yaml" not in message
    assert f"--config {EXPERIMENTS / '_offline.yaml'} (" in message


def test_overlays_are_matched_by_the_keys_they_set():
    covering = dict(
        cli_errors.overlays_covering(
            ["model.backbone.pretrained", "model.init_args.alignment.init_args.image_encoder.timm_checkpoint", "x.y"],
            EXPERIMENTS,
        )
    )
    assert covering == {
        str(EXPERIMENTS / "_offline.yaml"): ["model.backbone.pretrained"],
        str(EXPERIMENTS / "_offline_aet.yaml"): ["model.init_args.alignment.init_args.image_encoder.timm_checkpoint"],
    }


def test_a_fit_whose_test_split_has_nothing_to_score_fails_with_the_counts(tmp_path, capsys):
    """Every CORD test annotation is truncated: the lenient reader skips them, and the run must not pass."""
    import shutil

    root = tmp_path / "cord"
    shutil.copytree(FIXTURES / "cord", root)
    for path in (root / "test" / "json").glob("*.json"):
        path.write_text('{"valid_line": [')
    args = cli_args("cord_ft", tmp_path, "--data.init_args.root", str(root), "--data.init_args.cache_dir", "null")
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["fit", *args])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "the test split has no scoreable documents (1 document(s) listed, 0 encoded window(s)" in err
    assert "invalid or truncated JSON" in err and "receipt_00900.json" in err
