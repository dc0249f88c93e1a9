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
