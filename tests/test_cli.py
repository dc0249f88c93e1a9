"""The real CLI entry point on every experiment, tiny; overrides, errors, artefacts."""

import json
import subprocess
import sys

import pytest
import yaml

from docalign.cli import cli_main

from conftest import REPO, cli_args, experiment_names

# The leave-one-out ablations (``*_no_*``) are one-key deltas of an experiment that runs here anyway: they run in
# ``make test-slow`` (about 3 minutes together), the rest in ``make test``.
ONE_STEP = [pytest.param(name, marks=pytest.mark.slow) if "_no_" in name else name for name in experiment_names()]


@pytest.mark.parametrize("experiment", ONE_STEP)
def test_every_experiment_runs_one_step(experiment, tmp_path):
    cli = cli_main(["fit", *cli_args(experiment, tmp_path)])
    assert cli.trainer.global_step >= 1
    log_dir = tmp_path / "logs" / experiment / "version_0"
    metrics = json.loads((log_dir / "metrics.json").read_text())
    assert metrics["experiment"] == experiment and "test" in metrics
    assert (log_dir / "config.yaml").exists() and (log_dir / "checkpoints" / "last.ckpt").exists()
    if cli.model.hparams.get("segment_decoding"):  # seqeval's F1 and the one given the gold segments beside it
        assert {"test/f1", "test/f1_segments"} <= set(metrics["test"]) and "test/f1_tokens" not in metrics["test"]


@pytest.mark.parametrize("task", ["funsd_ft", "cord_ft"])
def test_backbone_experiments_differ_only_in_the_backbone(task, tmp_path):
    resolved = {}
    names = [f"{task}_v1", f"{task}_v2", f"{task}_v3"] + (["funsd_ft_v3_frozen_bias"] if task == "funsd_ft" else [])
    for experiment in names:
        cli = cli_main(cli_args(experiment, tmp_path / experiment), run=False)
        config = cli.config.as_dict()
        model = config["model"]["init_args"]
        resolved[experiment] = (model["backbone"].pop("arch"), model.pop("freeze"))
        for drop in ("experiment", "trainer", "config"):
            config.pop(drop)
        config["data"]["init_args"].pop("cache_dir")
        resolved[experiment] += (config,)
        if experiment == "funsd_ft_v3_frozen_bias":  # Hugging Face's behaviour: the bias tables never learn
            frozen = sorted(n for n, p in cli.model.named_parameters() if not p.requires_grad)
            assert frozen == [
                "backbone.hf.encoder.rel_pos_bias.weight",
                "backbone.hf.encoder.rel_pos_x_bias.weight",
                "backbone.hf.encoder.rel_pos_y_bias.weight",
            ]
    expected = [
        ("layoutlm", None),
        ("layoutlmv2", None),
        ("layoutlmv3", None),
        ("layoutlmv3", ["backbone.hf.encoder.rel_pos*"]),
    ]
    assert [r[:2] for r in resolved.values()] == expected[: len(names)]
    rest = [r[2] for r in resolved.values()]
    for r in rest:
        assert r == rest[0]


def test_overrides_land_in_the_saved_config_and_versions_increase(tmp_path):
    for _ in range(2):
        cli_main(["fit", *cli_args("demo_ft", tmp_path, "--trainer.max_epochs", "1", "--model.lr", "3e-4")])
    saved = yaml.safe_load((tmp_path / "logs" / "demo_ft" / "version_1" / "config.yaml").read_text())
    assert saved["model"]["init_args"]["lr"] == 3e-4
    assert saved["trainer"]["max_epochs"] == 1
    assert saved["experiment"] == "demo_ft"
    hparams = yaml.safe_load((tmp_path / "logs" / "demo_ft" / "version_1" / "hparams.yaml").read_text())
    assert hparams["lr"] == 3e-4 and len(hparams["label_names"]) == 61  # linked from the data


def test_links_from_data_and_to_data(tmp_path):
    cli = cli_main(
        [
            "fit",
            *cli_args("demo_ft", tmp_path, "--model.backbone.image_size", "48", "--trainer.limit_train_batches", "1"),
        ]
    )
    assert cli.datamodule.hparams.image_size == 48
    assert cli.model.label_names == cli.datamodule.label_names
    assert cli.model.hparams.vocab_size == len(cli.datamodule.tokenizer) == 30522


def run_cli(*args, env_extra=None):
    import os

    env = dict(os.environ, HF_HUB_OFFLINE="1", **(env_extra or {}))
    return subprocess.run(
        [sys.executable, "-m", "docalign.cli", *args], cwd=REPO, capture_output=True, text=True, env=env, timeout=300
    )


def test_print_config_shows_the_resolved_config():
    out = run_cli(
        "fit",
        "--config",
        "experiments/_base.yaml",
        "--config",
        "experiments/demo.yaml",
        "--model.lr",
        "0.00042",
        "--print_config",
    )
    assert out.returncode == 0, out.stderr
    config = yaml.safe_load(out.stdout)
    assert config["model"]["init_args"]["lr"] == 0.00042
    assert config["model"]["init_args"]["backbone"]["text_init"] == "minilm"
    assert config["model"]["class_path"] == "docalign.systems.TokenClassification"
    assert config["model"]["init_args"]["alignment"]["class_path"] == "docalign.alignment.AETAlignment"  # default: AET


def test_an_alignment_weight_is_one_flag_on_the_command_line():
    out = run_cli(
        "fit",
        "--config",
        "experiments/_base.yaml",
        "--config",
        "experiments/cord_aet.yaml",
        "--model.alignment.init_args.ditc_weight",
        "0",
        "--print_config",
    )
    assert out.returncode == 0, out.stderr
    alignment = yaml.safe_load(out.stdout)["model"]["init_args"]["alignment"]["init_args"]
    assert alignment["ditc_weight"] == 0.0 and alignment["imc_weight"] == 0.4  # the rest is cord_aet's


TEXT_ENCODER = "--model.init_args.alignment.init_args.text_encoder"


@pytest.mark.parametrize(
    "overrides, field, expected",
    [
        ([f"{TEXT_ENCODER}.pretrained_layers", "null"], "pretrained_layers", None),  # demo_aet.yaml sets 2
        ([f"{TEXT_ENCODER}.pretrained_layers", "3"], "pretrained_layers", 3),
        (  # the short form, after a non-null value
            [f"{TEXT_ENCODER}.pretrained", "minilm", "--model.alignment.init_args.text_encoder.pretrained=null"],
            "pretrained",
            None,
        ),
    ],
)
def test_null_on_the_command_line_reaches_an_option_nested_in_the_alignment(overrides, field, expected, tmp_path):
    # jsonargparse hands such an override to the component's parser as text, where null became the string 'None'
    cli = cli_main(cli_args("demo", tmp_path, *overrides), run=False)
    assert cli.config.model.init_args.alignment.init_args.text_encoder[field] == expected
    assert cli.model.hparams["alignment"]["init_args"]["text_encoder"][field] == expected


def test_only_nested_nulls_of_components_are_given_as_objects():
    from docalign.cli import nested_nulls_as_objects

    argv = [
        "--config",
        "a.yaml",
        "--model.init_args.alignment.init_args.text_encoder.pretrained",
        "~",
        "--model.backbone.attention_dropout=null",
        "--model.lr",
        "null",  # one level: jsonargparse reads it as null already
        "--model.init_args.alignment.init_args.ditc_weight",
        "0",
        "--model.alignment.init_args.view_augmentation.crop_scale",
        "",  # an empty value is no null
        "--trainer.logger.init_args.a.b",
        "null",  # not a component
    ]
    out, nulls = nested_nulls_as_objects(argv, {"--model", "--data"})
    assert out == [
        "--config",
        "a.yaml",
        "--model",
        json.dumps({"init_args": {"alignment": {"init_args": {"text_encoder": {"pretrained": None}}}}}),
        "--model",
        json.dumps({"backbone": {"attention_dropout": None}}),
        *argv[5:],
    ]
    assert nulls == [
        "--model.init_args.alignment.init_args.text_encoder.pretrained=~",
        "--model.backbone.attention_dropout=null",
    ]


def test_a_null_for_a_nested_option_that_does_not_take_none_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(cli_args("demo", tmp_path, f"{TEXT_ENCODER}.num_layers", "null"), run=False)
    assert exit_info.value.code == 2
    assert "text_encoder.num_layers: 'null' is not a valid value; it must be an integer" in capsys.readouterr().err


def test_malformed_override_is_one_clear_error_not_a_traceback():
    out = run_cli(
        "fit",
        "--config",
        "experiments/_base.yaml",
        "--config",
        "experiments/demo.yaml",
        "--model.lr",
        "fast",
        "--print_config",
    )
    assert out.returncode != 0
    assert "Traceback" not in out.stderr and "lr" in out.stderr


def test_missing_offline_checkpoint_is_one_clear_error(tmp_path):
    out = run_cli(
        "fit",
        "--config",
        "experiments/_base.yaml",
        "--config",
        "experiments/demo.yaml",
        "--data.tokenizer",
        str(tmp_path / "no-such-model"),
        "--model.backbone.text_init",
        str(tmp_path / "no-such-model"),
    )
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert "no-such-model" in out.stderr and "_offline.yaml" in out.stderr


def test_unknown_experiment_lists_the_known_ones():
    out = subprocess.run(
        ["make", "--no-print-directory", "train", "EXP=nope"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert out.returncode != 0
    assert "unknown experiment EXP=nope" in out.stdout and "demo" in out.stdout


def test_optimizer_and_learning_rates_are_injected_from_config(tmp_path):
    cli = cli_main(
        [
            "fit",
            *cli_args(
                "demo_ft",
                tmp_path,
                "--model.optimizer",
                "torch.optim.SGD",
                "--model.optimizer.momentum",
                "0.9",
                "--model.lr",
                "0.01",
                "--model.new_lr",
                "0.1",
            ),
        ]
    )
    optimizer = cli.trainer.optimizers[0]
    assert type(optimizer).__name__ == "SGD" and optimizer.defaults["momentum"] == 0.9
    # tiny.yaml has no warm start, so every parameter is new and gets new_lr
    assert {group["initial_lr"] for group in optimizer.param_groups} == {0.1}
    assert {group["weight_decay"] for group in optimizer.param_groups} == {0.0, 0.01}
    scheduler = cli.trainer.lr_scheduler_configs[0]
    assert scheduler.interval == "step" and type(scheduler.scheduler).__name__ == "LambdaLR"


def test_aet_experiments_resolve_offline_with_both_overlays(capsys):
    """`_offline.yaml` + `_offline_aet.yaml` turn every AET experiment into one that needs no hub."""
    from conftest import EXPERIMENTS

    names = [n for n in experiment_names() if "_aet" in n and not n.startswith("demo")]
    assert {"funsd_aet", "cord_aet", "rvlcdip_aet", "docvqa_aet", "funsd_aet_no_pita", "cord_aet_no_momentum"} <= set(
        names
    )
    for name in names:
        with pytest.raises(SystemExit):
            cli_main(
                [
                    "fit",
                    "--config",
                    str(EXPERIMENTS / "_base.yaml"),
                    "--config",
                    str(EXPERIMENTS / f"{name}.yaml"),
                    "--config",
                    str(EXPERIMENTS / "_offline.yaml"),
                    "--config",
                    str(EXPERIMENTS / "_offline_aet.yaml"),
                    "--print_config",
                ]
            )
        model = yaml.safe_load(capsys.readouterr().out)["model"]["init_args"]
        config = model["alignment"]["init_args"]
        assert config["text_encoder"]["pretrained"] == "minilm" and config["image_encoder"]["timm_checkpoint"] is None
        assert model["backbone"]["pretrained"] is None and model["backbone"]["text_init"] == "minilm"
        if "_no_" in name:
            term = name.split("_no_")[1]
            assert (config["use_momentum"] is False) if term == "momentum" else config[f"{term}_weight"] == 0.0


@pytest.fixture(scope="module")
def tiny_parser():
    """The CLI's parser, built once from a tiny run, to resolve experiment files without building them."""
    from docalign.cli import DocAlignCLI, DocumentDataModule, DocumentSystem

    from conftest import EXPERIMENTS, TINY

    args = ["--config", str(EXPERIMENTS / "_base.yaml"), "--config", str(EXPERIMENTS / "demo_ft.yaml")]
    cli = DocAlignCLI(
        DocumentSystem,
        DocumentDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        parser_kwargs={"parser_mode": "omegaconf"},
        auto_configure_optimizers=False,
        run=False,
        args=[*args, "--config", str(TINY)],
    )
    return cli.parser


@pytest.mark.parametrize(
    "experiment, tokenizer",
    [
        ("cord_ft", "microsoft/layoutlmv3-base"),
        ("funsd_ft_v1", "microsoft/layoutlm-base-uncased"),
        ("rvlcdip_aet", "microsoft/layoutlmv3-base"),
        ("rvlcdip_vlcdoc", "bert-base-uncased"),  # VLCDoC's text tower
        ("tobacco_vlcdoc", "bert-base-uncased"),
        ("demo", "minilm"),
    ],
)
def test_an_unset_tokenizer_follows_the_backbone_and_the_monitor_the_system(tiny_parser, experiment, tokenizer):
    from docalign.cli import fill_from_system

    from conftest import EXPERIMENTS

    config = tiny_parser.parse_args(
        ["--config", str(EXPERIMENTS / "_base.yaml"), "--config", str(EXPERIMENTS / f"{experiment}.yaml")]
    )
    assert config.data.init_args.tokenizer is None  # no experiment restates its backbone's tokenizer
    fill_from_system(config)
    assert config.data.init_args.tokenizer == tokenizer
    (checkpoint,) = [c for c in config.trainer.callbacks if c.class_path.endswith("ModelCheckpoint")]
    assert (checkpoint.init_args.monitor, checkpoint.init_args.mode) == (
        ("val/acc", "max") if "rvlcdip" in experiment or "tobacco" in experiment else ("val/f1", "max")
    )
