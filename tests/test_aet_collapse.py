"""benchmarks/aet_collapse.py without training: its commands name real options, its table reads the runs' events."""

from __future__ import annotations

import inspect

import pytest
from test_aet import data, system  # noqa: F401  (data: test_aet's fixture)

from conftest import load_benchmark


@pytest.fixture(scope="module")
def collapse():
    return load_benchmark("aet_collapse")


def test_each_variant_is_the_selected_configuration_with_one_change_and_real_options(collapse):
    import dataclasses

    from docalign.alignment import AETAlignment
    from docalign.models.alignment import ImageEncoderConfig

    base = collapse.VARIANTS["as_selected"]
    options = set(inspect.signature(AETAlignment).parameters)
    options |= {f"image_encoder.{field.name}" for field in dataclasses.fields(ImageEncoderConfig)}
    options.add("model.init_args.freeze")  # the system's own option, not the alignment's
    for name, overrides in collapse.VARIANTS.items():
        assert base.items() <= overrides.items(), name  # the CRAFT stem in every variant
        for key in overrides.keys() - base.keys():
            assert key.removeprefix(collapse.ALIGN + ".") in options, key
        cmd = collapse.command(name, 12)
        # the probe's settings come last, so they win over fit_args' defaults (max_steps -1)
        assert cmd[len(cmd) - cmd[::-1].index("--trainer.max_steps")] == "12"
        assert cmd[cmd.index("--experiment") + 1] == name and "--trainer.log_every_n_steps" in cmd
    weights = {k: v for k, v in collapse.VARIANTS["task_only"].items() if k.endswith("_weight")}
    assert len(weights) == 4 and set(weights.values()) == {"0.0"}


def test_each_freeze_variant_freezes_what_it_says_in_a_real_craft_aet_system(collapse, data, monkeypatch):  # noqa: F811
    """The ``model.freeze`` patterns of ``vit_vectors_frozen``, ``stem_projection_frozen`` and ``vit_blocks_frozen``,
    applied to a real AET system with the CRAFT stem: every pattern matches (a typo would raise), and each freezes its
    part of the online ViT only: the vectors (no matrix), the 1x1 projection, the transformer blocks."""
    import json

    from docalign.models.alignment import ImageEncoderConfig
    from docalign.models.freezing import match_parameters

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    vit = "alignment.encoders.image.vit."
    config = ImageEncoderConfig(hidden_size=24, num_layers=2, num_heads=2, patch_stem="craft_vgg16_bn")
    model = system(data, image_encoder=config)
    hits = {
        name: match_parameters(model, json.loads(collapse.VARIANTS[name]["model.init_args.freeze"]))
        for name in ("vit_vectors_frozen", "stem_projection_frozen", "vit_blocks_frozen")
    }
    assert all(n.startswith(vit) for found in hits.values() for n in found)  # never the momentum twin or the text
    vectors = hits["vit_vectors_frozen"]
    assert all(p.dim() == 1 or n.endswith(("cls_token", "pos_embed")) for n, p in vectors.items())
    assert {vit + "blocks.1.attn.qkv.bias", vit + "norm.weight", vit + "cls_token"} <= set(vectors)
    assert not any("patch_embed" in n for n in vectors)  # the stem's BatchNorm vectors are not the ViT's
    assert set(hits["stem_projection_frozen"]) == {vit + "patch_embed.proj.1.weight", vit + "patch_embed.proj.1.bias"}
    blocks = set(hits["vit_blocks_frozen"])
    assert blocks == {n for n, _ in model.named_parameters() if n.startswith(vit + "blocks.")}
    assert vit + "blocks.1.mlp.fc2.weight" in blocks and vit + "cls_token" not in blocks
    frozen = system(
        data, image_encoder=config, freeze=json.loads(collapse.VARIANTS["vit_blocks_frozen"]["model.init_args.freeze"])
    )
    assert not frozen.alignment.encoders.image.vit.blocks[0].attn.qkv.weight.requires_grad
    assert frozen.alignment.encoders.image.vit.patch_embed.proj[1].weight.requires_grad


def test_the_table_reads_each_steps_diagnostics_from_tensorboard(collapse, tmp_path, monkeypatch):
    from torch.utils.tensorboard import SummaryWriter

    monkeypatch.setattr(collapse, "RUNS", tmp_path)
    run = tmp_path / "as_selected" / "version_seed1"
    writer = SummaryWriter(str(run))
    for step, value in enumerate([0.9, 0.95, 0.99, 1.0], start=1):
        writer.add_scalar("train/diag/image_cls_cos", value, step)
    writer.add_scalar("train/diag/imc_under_chance", 2.0, 4)
    writer.add_scalar("train/diag/imc_under_batch_chance", -0.5, 4)
    writer.add_scalar("train/diag/pita_matched", 0.30, 4)
    writer.add_scalar("train/diag/pita_mismatched", 0.25, 4)
    writer.add_scalar("val/diag/ditc_batch", 2.5, 4)
    writer.add_scalar("val/diag/ditc_batch_chance", 2.0, 4)
    writer.close()
    body = collapse.report(4, 10.0, "python benchmarks/aet_collapse.py", list(collapse.VARIANTS))
    assert "(10 s). Machine" in body
    partial = collapse.report(4, 10.0, "python benchmarks/aet_collapse.py --variants task_only", ["task_only"])
    assert "(10 s; the variants it does not name ran in an earlier invocation)" in partial
    rows = {line.split(" | ")[0].lstrip("| "): line for line in body.splitlines() if line.startswith("| ")}
    assert rows["as_selected"].startswith(
        "| as_selected | 0.900 | 1.000 | - | 1.000 | - | - | +0.050 | 2.000 | -0.500 "
    )
    assert "2.500 (2.000)" in rows["as_selected"]
    assert "| task_only | not run |" in rows["task_only"]
    columns = rows["variant"].count("|")
    assert all(line.count("|") == columns for line in rows.values())


def bearing_runs(collapse) -> dict:
    """Per-variant scalars shaped like the committed probes (12 steps), every fact of ``READING`` true."""
    collapsed = [0.908, 0.95, 0.98, 0.999] + [1.0] * 8
    runs = {variant: {"train/diag/image_cls_cos": list(collapsed)} for variant in collapse.VARIANTS}
    runs["encoder_lr_1e-4"]["train/diag/image_cls_cos"] = [0.908] * 11 + [0.991]
    runs["encoder_lr_1e-5"]["train/diag/image_cls_cos"] = [0.908] * 11 + [0.895]
    runs["vit_blocks_frozen"] = {"train/diag/image_cls_cos": [0.908] * 11 + [0.970], "val/diag/image_cls_cos": [0.975]}
    runs["as_selected"]["train/diag/imc_under_chance"] = [2.022]
    runs["as_selected"]["train/diag/imc_under_batch_chance"] = [-0.463]
    return runs


def test_the_written_reading_is_kept_only_where_the_runs_bear_it_out(collapse):
    selection = {
        "chosen": "select_craft",
        "candidates": {"select_craft": {"val/f1": 0.349}, "select_craft_slow": {"val/f1": 0.332},
                       "select_craft_gate_pita_slow": {"val/f1": 0.338}},
    }  # fmt: skip
    runs = bearing_runs(collapse)
    assert collapse.reading_fails(runs, 12, selection) == []
    # a freeze that changes the curve, a batch that is told apart, a slow candidate that wins, a variant not run
    runs["vit_vectors_frozen"]["train/diag/image_cls_cos"][7] = 0.95
    runs["task_only"]["train/diag/ditc_under_batch_chance"] = [0.2]
    selection["candidates"]["select_craft_slow"]["val/f1"] = 0.36
    del runs["encoder_lr_1e-5"]
    fails = collapse.reading_fails(runs, 12, selection)
    assert fails == [
        "`encoder_lr_1e-5` stays within 0.02 of its start",
        "`vit_vectors_frozen` equals `as_selected` to the third decimal",
        "every `*_under_batch_chance` stays under 0",
        "the selection kept `select_craft` over both `*_slow` candidates on `val/f1`",
    ]
    assert collapse.reading_fails(bearing_runs(collapse), 12, None)[-1].startswith("the selection kept")


def test_the_report_leaves_the_written_reading_out_for_other_runs(collapse, tmp_path, monkeypatch):
    monkeypatch.setattr(collapse, "RUNS", tmp_path)  # nothing run: no fact of the reading holds
    body = collapse.report(12, 1.0, "python benchmarks/aet_collapse.py", list(collapse.VARIANTS))
    assert collapse.READING not in body
    assert "these runs do not bear it out: `as_selected` collapses within 4 steps" in body
