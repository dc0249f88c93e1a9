"""AETNet alignment-enriched tuning: fusion, momentum/queue discipline, loss weights, views, DDP."""

import functools
import json
import os
import subprocess
import sys

import lightning as L
import pytest
import torch
import yaml
from lightning.pytorch.loggers import TensorBoardLogger

from docalign.alignment import AETAlignment, AlignmentViews
from docalign.alignment import aet as aet_module
from docalign.conventions import PIXEL_MEAN, PIXEL_STD
from docalign.data import SyntheticReceipts
from docalign.data.encoding import collate_windows
from docalign.hub import CheckpointError
from docalign.models.alignment import AdditiveFusion, AlignmentImageEncoder, ImageEncoderConfig, TextEncoderConfig
from docalign.models.backbone import BackboneConfig
from docalign.systems import ExtractiveQA, TokenClassification

from conftest import EXPERIMENTS, FIXTURES, OFFLINE, TINY, TINY_AET, cli_args, is_aet

BACKBONE = BackboneConfig(
    text_init=None, hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64, image_size=32, patch_size=16
)
# Three different widths (ViT 24, text 16, fusion 32): both fusion maps are real linear maps.
IMAGE = ImageEncoderConfig(hidden_size=24, num_layers=1, num_heads=2)
TEXT = TextEncoderConfig(pretrained=None, hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32)
KEY_STATE = ("alignment.encoders_m.", "alignment.image_queue.", "alignment.text_queue.", "alignment.temperature.")
TERMS = ("ditc", "imc", "glitc", "pita")


@pytest.fixture(scope="module")
def data():
    dm = SyntheticReceipts(num_train=4, num_val=2, num_test=2, max_length=64, stride=16, image_size=32, batch_size=2)
    dm.setup()
    return dm


SYSTEM_ARGS = {"backbone", "label_names", "vocab_size", "lr", "new_lr", "freeze"}


def system(data, **overrides):
    """A TokenClassification with an AETAlignment component; ``overrides`` go to whichever takes them."""
    torch.manual_seed(0)
    args = {**dict(image_encoder=IMAGE, text_encoder=TEXT, embed_dim=16, queue_size=32), **overrides}
    own = dict(backbone=BACKBONE, label_names=data.label_names, vocab_size=data.vocab_size, lr=1e-3)
    own.update({k: args.pop(k) for k in list(args) if k in SYSTEM_ARGS})
    return TokenClassification(**own, alignment=functools.partial(AETAlignment, **args))


def trainer(tmp_path, **overrides):
    args = dict(
        accelerator="cpu",
        devices=1,
        max_steps=1,
        limit_train_batches=1,
        limit_val_batches=1,
        limit_test_batches=1,
        limit_predict_batches=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        log_every_n_steps=1,
        default_root_dir=str(tmp_path),
    )
    return L.Trainer(**{**args, **overrides})


def first_batch(data, split="train"):
    return collate_windows(data.windows[split][:2], pad_token_id=data.tokenizer.pad_token_id)


def key_state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items() if k.startswith(KEY_STATE)}


def assert_same(a, b):
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def count_calls(module):
    """A forward hook recording each call's first input (a spy on the real module, not a stand-in)."""
    seen = []
    module.register_forward_hook(lambda mod, args, out: seen.append(args[0].detach().clone()))
    return seen


# ---- fusion -------------------------------------------------------------------------------------------


def test_fusion_adds_the_alignment_encoders_outputs_and_the_task_loss_trains_them(data):
    model = system(data).eval()
    batch = first_batch(data)
    ids, bbox, mask, pixels = batch["input_ids"], batch["bbox"], batch["attention_mask"], batch["pixel_values"]
    with torch.no_grad():
        out = model(batch)
        aligned = model.alignment.encoders(pixels, ids, mask)
        visual_extra, text_extra = model.alignment.fusion(aligned["image"], aligned["text"])
        manual = model.backbone(ids, bbox, mask, pixels, text_extra=text_extra, visual_extra=visual_extra)
        plain = model.backbone(ids, bbox, mask, pixels)
    assert out["align_image"].shape == (2, 1 + 4, 24) and out["align_text"].shape == (2, ids.shape[1], 16)
    assert visual_extra.shape == (2, 5, 32) and text_extra.shape == (2, ids.shape[1], 32)
    assert torch.equal(out["text"], manual["text"]) and torch.equal(out["visual"], manual["visual"])
    assert not torch.allclose(out["text"], plain["text"])

    for encoder_param in (
        model.alignment.encoders.image.vit.norm.bias,
        model.alignment.encoders.text.model.embeddings.LayerNorm.bias,
    ):
        with torch.no_grad():
            encoder_param.add_(0.5)
            changed = model(batch)
        assert not torch.allclose(changed["text"], out["text"]) and not torch.allclose(changed["visual"], out["visual"])
        out = changed

    model.train()
    model._loss(model(batch)["logits"], batch["labels"]).backward()
    enc = model.alignment.encoders
    for param in (
        enc.image.vit.blocks[0].attn.qkv.weight,
        enc.text.model.encoder.layer[0].attention.self.query.weight,
        model.alignment.fusion.image.weight,
        model.alignment.fusion.text.weight,
    ):
        assert param.grad is not None and param.grad.abs().sum() > 0


def test_fusion_maps_are_the_identity_when_widths_match():
    fusion = AdditiveFusion(image_width=32, text_width=16, fusion_width=32)
    assert isinstance(fusion.image, torch.nn.Identity) and isinstance(fusion.text, torch.nn.Linear)
    image, text = torch.randn(2, 5, 32), torch.randn(2, 7, 16)
    visual_extra, text_extra = fusion(image, text)
    assert visual_extra is image and text_extra.shape == (2, 7, 32)


# ---- momentum encoders and queues: after the optimiser step, in training only ----------------------------


def test_forward_changes_nothing_and_the_training_step_updates_keys_after_the_optimizer_step(data, tmp_path):
    model = system(data, momentum=0.9)
    before = key_state(model)
    batch = first_batch(data)
    model.train()
    model(batch)
    model(batch)
    model.alignment.loss_terms(batch, model(batch))  # the losses too: keys computed, nothing written
    assert_same(before, key_state(model))

    trainer(tmp_path).fit(model, datamodule=data)
    after = key_state(model)
    online = dict(model.alignment.encoders.named_parameters())
    for name, value in model.alignment.encoders_m.named_parameters():
        # One EMA step with the *post-step* online weights: the update followed the optimiser step.
        assert torch.equal(value, before[f"alignment.encoders_m.{name}"].lerp(online[name], 1 - 0.9)), name
    assert any(not torch.equal(after[k], before[k]) for k in after if k.startswith("alignment.encoders_m."))
    for queue in (model.alignment.image_queue, model.alignment.text_queue):
        assert int(queue.filled) == 2 and int(queue.pointer) == 2
        torch.testing.assert_close(queue.items().norm(dim=-1), torch.ones(2))


def test_mask_same_document_leaves_the_queued_copies_of_the_batch_documents_out_of_the_negatives(data, tmp_path):
    model = system(data, mask_same_document=True)
    trainer(tmp_path, max_steps=3, limit_train_batches=None).fit(model, datamodule=data)
    ids = model.alignment.image_queue.item_ids()
    assert int(model.alignment.image_queue.filled) == 6 and torch.equal(ids, model.alignment.text_queue.item_ids())
    assert set(ids.tolist()) <= {w.doc_index for w in data.windows["train"]}  # the documents' ids, none unknown
    batch = first_batch(data)
    assert set(batch["doc_index"].tolist()) & set(ids.tolist())  # older copies are queued
    model.eval()  # no dropout; the same seed gives both calls the same augmented key view
    torch.manual_seed(5)
    masked, _ = model.alignment.loss_terms(batch, model(batch))
    model.alignment.mask_same_document = False
    torch.manual_seed(5)
    plain, _ = model.alignment.loss_terms(batch, model(batch))
    # removing negatives can only lower L_cl; the terms without queues are untouched
    assert masked["loss_ditc"] < plain["loss_ditc"] and masked["loss_imc"] < plain["loss_imc"]
    assert masked["loss_glitc"] == plain["loss_glitc"] and masked["loss_pita"] == plain["loss_pita"]


def test_evaluation_and_prediction_see_the_clean_image_and_leave_keys_bit_identical(data, tmp_path):
    model = system(data)
    views, key_images, online_images = (
        count_calls(model.alignment.views),
        count_calls(model.alignment.encoders_m.image),
        count_calls(model.alignment.encoders.image),
    )
    trainer(tmp_path).fit(model, datamodule=data)
    # One training step (augmented view for the momentum ViT only), then fit's validation (neither).
    assert len(views) == 1 and len(key_images) == 1 and len(online_images) == 2
    assert torch.equal(views[0], online_images[0]) and not torch.allclose(key_images[0], online_images[0])

    before = key_state(model)
    views.clear(), key_images.clear(), online_images.clear()
    run = trainer(tmp_path)
    run.validate(model, datamodule=data)
    run.test(model, datamodule=data)
    predictions = run.predict(model, datamodule=data)
    assert predictions and len(online_images) == 3
    assert views == [] and key_images == []
    assert torch.equal(online_images[-1], next(iter(data.predict_dataloader()))["pixel_values"])
    assert_same(before, key_state(model))


def test_views_are_per_sample_augmentations_of_the_collated_zero_one_pixels(data):
    collated = first_batch(data)["pixel_values"]
    assert torch.equal(collated[0], data.windows["train"][0].image.float() / 255)  # [0, 1], not normalised
    torch.manual_seed(0)
    pixels = torch.rand(1, 3, 32, 32).expand(4, -1, -1, -1).contiguous()  # four copies of one page
    view = AlignmentViews(32)(pixels)
    assert view.shape == pixels.shape and view.dtype == pixels.dtype
    assert view.min() >= 0 and view.max() <= 1  # still [0, 1]: no undo/redo of a normalisation
    assert not torch.allclose(view, pixels)
    assert not torch.allclose(view[0], view[1])  # a fresh draw per sample


def test_momentum_zero_makes_the_key_encoders_copies(data, tmp_path):
    model = system(data, momentum=0.0)
    trainer(tmp_path).fit(model, datamodule=data)
    online = model.alignment.encoders.state_dict()
    for name, value in model.alignment.encoders_m.state_dict().items():
        assert torch.equal(value, online[name]), name


def test_ema_waits_for_the_optimizer_step_under_gradient_accumulation(data, tmp_path):
    model = system(data, momentum=0.5)
    with torch.no_grad():  # key encoder != online encoder, so that a premature EMA update would show
        for param in model.alignment.encoders_m.parameters():
            param.add_(0.01)
    before = key_state(model)
    trainer(tmp_path, accumulate_grad_batches=2, limit_train_batches=2).fit(model, datamodule=data)
    online = dict(model.alignment.encoders.named_parameters())
    for name, value in model.alignment.encoders_m.named_parameters():  # exactly one EMA update for one optimiser step
        assert torch.equal(value, before[f"alignment.encoders_m.{name}"].lerp(online[name], 0.5)), name
    assert int(model.alignment.image_queue.filled) == 4  # but every batch's keys were queued


def test_no_momentum_ablation_takes_keys_from_the_online_encoders_without_gradient(data, tmp_path):
    model = system(data, use_momentum=False, views=False)
    assert model.alignment.encoders_m is None and model.alignment.views is None
    batch = first_batch(data)
    model.train()
    torch.manual_seed(1)
    out = model(batch)
    keys = model.alignment._keys(batch, out["align_text"])
    assert not keys["text_cls"].requires_grad
    assert torch.equal(keys["text_cls"], model.alignment.encoders.project_text(out["align_text"][:, 0]).detach())
    model.eval()  # without dropout, the online ViT on the (clean) view gives the online image CLS again
    with torch.no_grad():
        out = model(batch)
        keys = model.alignment._keys(batch, out["align_text"])
    torch.testing.assert_close(keys["image_cls"], model.alignment.encoders.project_image(out["align_image"][:, 0]))
    trainer(tmp_path).fit(model, datamodule=data)
    assert int(model.alignment.image_queue.filled) == int(model.alignment.text_queue.filled) == 2


# ---- loss weights and logging -------------------------------------------------------------------------


def spy_on_losses(monkeypatch):
    calls = {term: 0 for term in TERMS}
    for term in TERMS:
        real = getattr(aet_module, f"{term}_loss")

        def spy(*args, _real=real, _term=term, **kwargs):
            calls[_term] += 1
            return _real(*args, **kwargs)

        monkeypatch.setattr(aet_module, f"{term}_loss", functools.wraps(real)(spy))
    return calls


@pytest.mark.parametrize("off", TERMS)
def test_a_zero_weight_term_is_neither_computed_nor_logged(data, tmp_path, monkeypatch, off):
    calls = spy_on_losses(monkeypatch)
    run = trainer(tmp_path)
    run.fit(system(data, **{f"{off}_weight": 0.0}), datamodule=data)
    logged = run.callback_metrics
    assert calls == {term: int(term != off) for term in TERMS}
    assert f"train/loss_{off}" not in logged
    assert all(f"train/loss_{term}" in logged for term in TERMS if term != off)


def test_key_side_exists_only_when_a_contrastive_term_needs_it(data):
    model = system(data, ditc_weight=0.0, imc_weight=0.0, glitc_weight=0.0)
    align = model.alignment
    assert align.encoders_m is None and align.image_queue is None and align.temperature is None
    assert align.views is None and set(align.weights) == {"loss_task", "loss_pita"}


def test_every_term_is_logged_the_total_is_the_weighted_sum_and_weights_reach_hparams(data, tmp_path):
    weights = dict(task_weight=0.8, ditc_weight=1.2, imc_weight=0.7, glitc_weight=0.5, pita_weight=0.4)
    model = system(data, pita_mode="contrastive", **weights)
    run = trainer(tmp_path, logger=TensorBoardLogger(str(tmp_path), name="aet", default_hp_metric=False))
    run.fit(model, datamodule=data)
    logged = run.callback_metrics
    terms = {name: float(logged[f"train/loss_{name}"]) for name in ("task", *TERMS)}
    total = sum(weights[f"{name}_weight"] * value for name, value in terms.items())
    assert float(logged["train/loss"]) == pytest.approx(total, rel=1e-5)
    assert 0.001 <= float(logged["train/temperature"]) <= 0.5
    hparams = yaml.safe_load((tmp_path / "aet" / "version_0" / "hparams.yaml").read_text())
    recorded = hparams["alignment"]["init_args"]
    assert hparams["alignment"]["class_path"] == "docalign.alignment.aet.AETAlignment"
    assert {k: recorded[k] for k in weights} == weights
    assert recorded["pita_mode"] == "contrastive" and recorded["momentum"] == model.alignment.momentum


# ---- construction: optimiser groups and clear refusals ----------------------------------------------------


def test_param_groups_warm_start_the_text_encoder_and_leave_out_the_momentum_copies(data):
    model = system(data, text_encoder=TextEncoderConfig(pretrained="minilm"), lr=1e-5, new_lr=1e-3)
    lr_of = {id(p): group["lr"] for group in model.param_groups() for p in group["params"]}
    enc = model.alignment.encoders
    assert lr_of[id(enc.text.model.encoder.layer[0].attention.self.query.weight)] == 1e-5
    assert lr_of[id(enc.image.vit.blocks[0].attn.qkv.weight)] == 1e-3
    assert lr_of[id(model.alignment.temperature.value)] == 1e-3
    assert not any(id(p) in lr_of for p in model.alignment.encoders_m.parameters())
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert trainable <= set(lr_of)
    # from_pretrained's eval mode is undone: Lightning keeps submodules' modes, dropout must be on in training
    assert [name for name, module in model.named_modules() if not module.training] == []


def test_a_text_encoder_with_another_vocabulary_is_refused_with_advice(data):
    with pytest.raises(CheckpointError, match="data.tokenizer") as err:
        system(data, vocab_size=300, text_encoder=TextEncoderConfig(pretrained="minilm"))
    assert "30522" in str(err.value) and "300" in str(err.value) and "pretrained: null" in str(err.value)


def test_a_same_size_vocabulary_with_other_ids_is_refused_before_anything_is_built(tmp_path, capsys):
    """Equal sizes are not enough: a tokenizer that numbers two tokens the other way round is refused by the CLI."""
    from transformers import AutoConfig

    from docalign.cli import cli_main
    from docalign.hub import check_same_vocabulary, load_tokenizer, resolve_checkpoint

    swapped = tmp_path / "swapped-minilm"
    load_tokenizer("minilm").save_pretrained(swapped)
    AutoConfig.from_pretrained(resolve_checkpoint("minilm")).save_pretrained(swapped)
    spec = json.loads((swapped / "tokenizer.json").read_text())
    vocab = spec["model"]["vocab"]  # WordPiece: token -> id
    first, second = (token for token, index in vocab.items() if index in (1000, 1001))
    vocab[first], vocab[second] = vocab[second], vocab[first]
    (swapped / "tokenizer.json").write_text(json.dumps(spec))
    assert len(load_tokenizer(str(swapped))) == 30522
    check_same_vocabulary("minilm", "minilm", "alignment text encoder")  # same source: nothing to check
    with pytest.raises(CheckpointError, match="2 tokens with another id"):
        check_same_vocabulary("minilm", str(swapped), "alignment text encoder")
    with pytest.raises(SystemExit) as exit_info:
        cli_main(
            [
                "fit",
                *cli_args("demo_aet", tmp_path, "--model.alignment.init_args.text_encoder.pretrained", str(swapped)),
            ]
        )
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert str(swapped) in err and "vocabulary differs" in err and "Traceback" not in err


def test_bad_alignment_configurations_are_refused_clearly(data):
    with pytest.raises(ValueError, match="patch grids"):
        system(data, image_encoder=ImageEncoderConfig(hidden_size=24, num_layers=1, num_heads=2, patch_size=8))
    with pytest.raises(ValueError, match="patch grids"):
        system(data, image_encoder=ImageEncoderConfig(hidden_size=24, num_layers=1, num_heads=2, image_size=64))
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    with pytest.raises(CheckpointError, match="checkpoint_file"):
        system(data, image_encoder=ImageEncoderConfig(timm_checkpoint="deit_base_patch16_224.fb_in1k"))
    with pytest.raises(ValueError, match="layoutlmv3"):
        system(
            data, backbone=BackboneConfig(arch="layoutlm", text_init=None, hidden_size=32, num_layers=1, num_heads=2)
        )
    for bad in (dict(momentum=1.0), dict(momentum=-0.1), dict(pita_mode="dot"), dict(ditc_weight=-1.0)):
        with pytest.raises(ValueError):
            system(data, **bad)


# ---- experiments ------------------------------------------------------------------------------------------


def _resolved(experiment):
    from docalign.cli import DocAlignCLI, DocumentDataModule, DocumentSystem

    cli = DocAlignCLI(
        DocumentSystem,
        DocumentDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        parser_kwargs={"parser_mode": "omegaconf"},
        auto_configure_optimizers=False,
        run=False,
        args=[
            "--config",
            str(EXPERIMENTS / "_base.yaml"),
            "--config",
            str(EXPERIMENTS / f"{experiment}.yaml"),
            "--config",
            str(OFFLINE),
            "--config",
            str(TINY),
            *(["--config", str(TINY_AET)] if is_aet(experiment) else []),
        ],
    )
    return _flatten(cli.config.as_dict()), cli.model


def _flatten(config: dict) -> dict:
    """``{"model.init_args.lr": 1e-4, ...}`` from a resolved config (the included file names left out)."""
    flat = {}

    def walk(node, path):
        for key, value in node.items():
            if isinstance(value, dict):
                walk(value, f"{path}{key}.")
            elif key != "config":
                flat[f"{path}{key}"] = value

    walk(config, "")
    return flat


@pytest.mark.parametrize(
    "ablation, key, value",
    [
        ("demo_aet_no_ditc", "ditc_weight", 0.0),
        ("demo_aet_no_imc", "imc_weight", 0.0),
        ("demo_aet_no_glitc", "glitc_weight", 0.0),
        ("demo_aet_no_pita", "pita_weight", 0.0),
        ("demo_aet_no_momentum", "use_momentum", False),
    ],
)
def test_each_ablation_is_demo_aet_with_exactly_one_change(ablation, key, value):
    base, _ = _resolved("demo_aet")
    config, model = _resolved(ablation)
    changed = {k for k in base.keys() | config.keys() if base.get(k) != config.get(k)}
    assert changed == {f"model.init_args.alignment.init_args.{key}"}, changed
    assert model.hparams.alignment["init_args"][key] == value and isinstance(model.alignment, AETAlignment)


def test_the_embedded_default_demo_is_demo_aet():
    """(demo_aet is demo_ft plus alignment only: see test_each_aet_experiment_is_its_plain_experiment_plus_alignment_only.)"""
    demo, model = _resolved("demo")
    aet, _ = _resolved("demo_aet")
    assert isinstance(model.alignment, AETAlignment) and demo == aet


@pytest.fixture(scope="module")
def config_parser():
    """The CLI's parser (built once from a tiny run), to resolve experiment files without building them."""
    from docalign.cli import DocAlignCLI, DocumentDataModule, DocumentSystem

    cli = DocAlignCLI(
        DocumentSystem,
        DocumentDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        parser_kwargs={"parser_mode": "omegaconf"},
        auto_configure_optimizers=False,
        run=False,
        args=[
            "--config",
            str(EXPERIMENTS / "_base.yaml"),
            "--config",
            str(EXPERIMENTS / "demo_ft.yaml"),
            "--config",
            str(TINY),
        ],
    )
    return cli.parser


def _flat_config(parser, *files):
    args = [a for f in ("_base", *files) for a in ("--config", str(EXPERIMENTS / f"{f}.yaml"))]
    return _flatten(parser.parse_args(args).as_dict())


@pytest.mark.parametrize("offline", [False, True], ids=["hub", "offline"])
@pytest.mark.parametrize(
    "aet, plain",
    [
        ("demo_aet", "demo_ft"),
        ("funsd_aet", "funsd_ft"),
        ("cord_aet", "cord_ft"),
        ("rvlcdip_aet", "rvlcdip_ft"),
        ("docvqa_aet", "docvqa_ft"),
    ],
)
def test_each_aet_experiment_is_its_plain_experiment_plus_alignment_only(config_parser, aet, plain, offline):
    """Same system, data, schedule, backbone, optimiser and scoring as the plain experiment it is compared with: only
    the alignment component is added (with the hub checkpoints and with the offline overlays)."""
    overlays = ("_offline",) if offline else ()
    base = _flat_config(config_parser, plain, *overlays)
    config = _flat_config(config_parser, aet, *overlays, *(("_offline_aet",) if offline else ()))
    assert base.pop("model.init_args.alignment") is None
    aet_only = {k for k in config if k not in base}
    assert not {k for k in base if k not in config}
    changed = {k for k in base if base[k] != config[k]}
    assert not changed, {k: (base[k], config[k]) for k in changed}
    assert aet_only and all(k.startswith("model.init_args.alignment.") for k in aet_only)
    assert config["model.init_args.alignment.class_path"] == "docalign.alignment.AETAlignment"
    assert "model.init_args.alignment.init_args.ditc_weight" in aet_only


@pytest.mark.parametrize("task", ["funsd", "cord", "rvlcdip"])
def test_each_task_ablation_is_its_aet_experiment_with_exactly_one_change(config_parser, task):
    base = _flat_config(config_parser, f"{task}_aet")
    for part, key, value in [
        ("ditc", "ditc_weight", 0.0),
        ("imc", "imc_weight", 0.0),
        ("glitc", "glitc_weight", 0.0),
        ("pita", "pita_weight", 0.0),
        ("momentum", "use_momentum", False),
    ]:
        config = _flat_config(config_parser, f"{task}_aet_no_{part}")
        changed = {k for k in base.keys() | config.keys() if base.get(k) != config.get(k)}
        key = f"model.init_args.alignment.init_args.{key}"
        assert changed == {key} and config[key] == value, (part, changed)


def test_funsd_aet_mask_same_document_is_funsd_aet_with_the_mask_on(config_parser):
    base = _flat_config(config_parser, "funsd_aet")
    config = _flat_config(config_parser, "funsd_aet_mask_same_document")
    changed = {k for k in base.keys() | config.keys() if base.get(k) != config.get(k)}
    key = "model.init_args.alignment.init_args.mask_same_document"
    assert changed == {key} and config[key] is True


@pytest.mark.ddp
def test_demo_aet_on_two_ddp_cpu_processes_fills_the_queues_with_the_global_batch(tmp_path):
    args = [
        sys.executable,
        "-m",
        "docalign.cli",
        "fit",
        *cli_args(
            "demo_aet",
            tmp_path,
            "--trainer.accelerator",
            "cpu",
            "--trainer.devices",
            "2",
            "--trainer.strategy",
            "ddp",
            "--data.batch_size",
            "4",
            "--data.max_docs",
            "8",
            "--trainer.limit_val_batches",
            "null",
        ),
    ]
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    out = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "distributed_backend=gloo" in out.stdout + out.stderr  # really two processes, 2 windows each per step
    log_dir = tmp_path / "logs" / "demo_aet" / "version_0"
    metrics = json.loads((log_dir / "metrics.json").read_text())
    assert metrics["global_steps"] == 2 and "test/f1" in metrics["test"]
    state = torch.load(log_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    for queue in ("alignment.image_queue", "alignment.text_queue"):
        # 2 steps x global batch 4: each rank enqueued its 2 keys gathered with the other rank's 2.
        filled = int(state[f"{queue}.filled"])
        assert filled == 2 * 4, filled
        torch.testing.assert_close(state[f"{queue}.features"][:filled].norm(dim=-1), torch.ones(filled))


# ---- checkpoints written by the old AET subclasses ----------------------------------------------------------------

OLD = FIXTURES / "old_aet"
# Written before the alignment component existed (commit 6007468): `docalign fit` of demo_aet + tiny.yaml +
# tiny_aet.yaml with the fixture's 1,024-token tokenizer, seed 42, 2 steps, by the AETTokenClassification class; its
# optimiser state was stripped to keep the fixture small. The old code tested it to these metrics.
OLD_TEST_METRICS = {"test/loss": 3.960747718811035, "test/f1": 0.03773584961891174}


def test_a_checkpoint_of_the_old_aet_subclass_tests_to_the_same_metrics_through_the_cli(tmp_path):
    from docalign.cli import cli_main

    old = torch.load(OLD / "old_aet_tiny.ckpt", map_location="cpu", weights_only=True)
    assert old["hyper_parameters"]["_class_path"] == "docalign.systems.AETTokenClassification"
    assert any(k.startswith("alignment_m.") for k in old["state_dict"])  # the old layout
    cli = cli_main(
        [
            "test",
            "--config",
            str(EXPERIMENTS / "_base.yaml"),
            "--config",
            str(EXPERIMENTS / "demo_aet.yaml"),
            "--config",
            str(TINY),
            "--config",
            str(TINY_AET),
            "--data.tokenizer",
            str(OLD / "tokenizer"),
            "--trainer.logger.init_args.save_dir",
            str(tmp_path / "logs"),
            "--ckpt_path",
            str(OLD / "old_aet_tiny.ckpt"),
        ]
    )
    tested = {k: float(v) for k, v in cli.trainer.callback_metrics.items()}
    assert {k: tested[k] for k in OLD_TEST_METRICS} == OLD_TEST_METRICS
    assert isinstance(cli.model, TokenClassification) and isinstance(cli.model.alignment, AETAlignment)


def test_upgrade_checkpoint_maps_old_keys_and_hparams_so_load_from_checkpoint_rebuilds_the_model(tmp_path):
    from docalign.alignment import upgrade_checkpoint

    old = torch.load(OLD / "old_aet_tiny.ckpt", map_location="cpu", weights_only=True)
    old_keys = set(old["state_dict"])
    new = upgrade_checkpoint(old)
    assert len(new["state_dict"]) == len(old_keys) and all(
        k.startswith(("backbone.", "classifier.", "alignment.")) for k in new["state_dict"]
    )
    assert new["hyper_parameters"]["_class_path"] == "docalign.systems.TokenClassification"
    assert new["hyper_parameters"]["alignment"]["init_args"]["queue_size"] == 32
    torch.save(new, tmp_path / "new.ckpt")
    model = TokenClassification.load_from_checkpoint(tmp_path / "new.ckpt", map_location="cpu", weights_only=True)
    assert isinstance(model.alignment, AETAlignment) and model.alignment.encoders_m is not None
    state = model.state_dict()
    for key, value in new["state_dict"].items():
        assert torch.equal(state[key], value), key
    assert upgrade_checkpoint(new)["state_dict"].keys() == new["state_dict"].keys()  # a new checkpoint is left alone


def test_docvqa_aet_trains_extractive_qa_with_the_alignment_component(tmp_path):
    from docalign.cli import cli_main

    cli = cli_main(["fit", *cli_args("docvqa_aet", tmp_path, "--test_after_fit", "false")])
    assert type(cli.model) is ExtractiveQA and isinstance(cli.model.alignment, AETAlignment)
    logged = cli.trainer.callback_metrics
    assert all(f"train/loss_{term}" in logged for term in ("task", *TERMS)) and "val/anls" in logged
    assert int(cli.model.alignment.image_queue.filled) > 0


def test_each_pixel_consumer_normalises_once_for_itself(data):
    """The batch carries [0, 1] pixels; the random ViT normalises them with the fusion backbone's statistics, a
    pretrained timm ViT with its checkpoint's own (DeiT: ImageNet mean/std)."""
    vit = AlignmentImageEncoder(IMAGE, 32, 16).eval()
    pixels = first_batch(data)["pixel_values"]
    with torch.no_grad():
        assert torch.equal(vit(pixels), vit.vit.forward_features((pixels - PIXEL_MEAN) / PIXEL_STD))
        vit.pretrained = True
        vit.mean.copy_(torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        vit.std.copy_(torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
        imagenet = (pixels - vit.mean) / vit.std
        assert torch.equal(vit(pixels), vit.vit.forward_features(imagenet))
