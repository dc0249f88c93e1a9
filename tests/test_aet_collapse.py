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


def test_the_frozen_vit_vectors_are_real_parameters_and_only_vectors(collapse, data):  # noqa: F811
    """``vit_vectors_frozen``'s patterns freeze (``model.freeze``) the online ViT's CLS token, position embedding,
    biases and LayerNorm parameters of a real AET system: every pattern matches, no matrix and nothing else."""
    import json

    from docalign.models.alignment import ImageEncoderConfig
    from docalign.models.freezing import match_parameters

    patterns = json.loads(collapse.VARIANTS["vit_vectors_frozen"]["model.init_args.freeze"])
    model = system(data, image_encoder=ImageEncoderConfig(hidden_size=24, num_layers=2, num_heads=2), freeze=patterns)
    hits = match_parameters(model, patterns)
    assert all(p.dim() == 1 or name.endswith(("cls_token", "pos_embed")) for name, p in hits.items())
    assert all(name.startswith("alignment.encoders.image.vit.") and not p.requires_grad for name, p in hits.items())
    assert {"alignment.encoders.image.vit.blocks.1.attn.qkv.bias", "alignment.encoders.image.vit.norm.weight"} <= set(
        hits
    )
    assert model.alignment.encoders.image.vit.blocks[1].attn.qkv.weight.requires_grad  # matrices still train


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
