"""AET's options (issue 14): fusion gate, PITA's features and boxes, the encoders' learning rate, view augmentation.
Each is off by default; each test would fail if its option did nothing."""

import dataclasses
import os

import pytest
import torch
from test_aet import data, system, trainer  # noqa: F401  (data: the module's fixture)
from torchvision.transforms import v2

from docalign.alignment import AETAlignment
from docalign.alignment.views import AlignmentViews, ViewAugmentation
from docalign.data.encoding import DocumentEncoder, collate_windows
from docalign.data.readers.funsd import FUNSD_LABELS, FUNSDReader
from docalign.data.repairs import RepairLog
from docalign.losses import patch_grid_side, pita_loss, token_patch_index
from docalign.models.alignment import ImageEncoderConfig
from docalign.systems import TokenClassification

from conftest import FIXTURES, FUNSD_MISSING, cli_args


def batch_of(data, split="train"):  # noqa: F811
    return collate_windows(data.windows[split][:2], pad_token_id=data.tokenizer.pad_token_id)


def test_defaults_are_the_papers(data):  # noqa: F811
    align = system(data).alignment
    assert align.fusion.image_gate is None and align.pita_image_proj is None
    assert (align.pita_features, align.pita_boxes, align.encoder_lr) == ("projection", "input", None)
    assert align.config["view_augmentation"] == dataclasses.asdict(ViewAugmentation())


# ---- fusion gate --------------------------------------------------------------------------------------------


def test_fusion_gate_starts_closed_and_learns(data, tmp_path):  # noqa: F811
    model = system(data, fusion_gate=True)
    model.eval()
    batch = batch_of(data)
    extra = model.alignment.fusion_inputs(batch)
    assert torch.count_nonzero(extra["visual_extra"]) == 0  # the image stream adds nothing at the start
    base = model.backbone
    args = (batch["input_ids"], batch["bbox"], batch["attention_mask"], batch["pixel_values"])
    gated = base(*args, text_extra=extra["text_extra"], visual_extra=extra["visual_extra"])["text"]
    no_image = base(*args, text_extra=extra["text_extra"], visual_extra=torch.zeros_like(extra["visual_extra"]))
    assert torch.equal(gated, no_image["text"])
    model.train()
    loss = model.training_step(batch, 0)["loss"]
    loss.backward()
    assert model.alignment.fusion.image_gate.grad is not None and model.alignment.fusion.image_gate.grad != 0
    trainer(tmp_path).fit(model, datamodule=data)
    assert float(model.alignment.fusion.image_gate) != 0.0  # opened by the optimiser
    assert "alignment.fusion.image_gate" in dict(model.named_parameters())


# ---- PITA's features and boxes --------------------------------------------------------------------------------


def pita_grads(model, batch):
    """PITA alone, backward: the gradient norms of the shared projection heads."""
    model.train()
    model.zero_grad()
    out = model(batch)
    terms, _ = model.alignment.loss_terms(batch, out)
    terms["loss_pita"].backward()
    enc = model.alignment.encoders
    return [p.grad for p in (enc.image_proj.weight, enc.text_proj.weight)], terms["loss_pita"], out


def test_pita_own_projection_leaves_the_contrastive_heads_alone(data):  # noqa: F811
    batch = batch_of(data)
    shared, _, _ = pita_grads(system(data), batch)
    assert all(g is not None and g.abs().sum() > 0 for g in shared)  # the paper's PITA moves the shared heads
    model = system(data, pita_features="own_projection")
    own, _, _ = pita_grads(model, batch)
    assert all(g is None for g in own)
    assert model.alignment.pita_image_proj.weight.grad.abs().sum() > 0


def test_pita_raw_compares_the_encoder_states(data):  # noqa: F811
    image = ImageEncoderConfig(hidden_size=16, num_layers=1, num_heads=2)  # the text encoder's width
    model = system(data, image_encoder=image, pita_features="raw", ditc_weight=0, imc_weight=0, glitc_weight=0)
    batch = batch_of(data)
    _, loss, out = pita_grads(model, batch)
    index = token_patch_index(batch["bbox"], batch["word_ids"] >= 0, patch_grid_side(32, 16))
    by_hand = pita_loss(out["align_image"][:, 1:], out["align_text"], index)["loss_pita"]
    torch.testing.assert_close(loss, by_hand)
    with pytest.raises(ValueError, match="pita_features 'raw'.*24 wide.*16"):
        system(data, pita_features="raw")  # ViT 24 wide, text 16
    with pytest.raises(ValueError, match="pita_features"):
        system(data, pita_features="projected")


def test_pita_over_word_boxes_reads_word_bbox(data):  # noqa: F811
    batch = batch_of(data)
    # segment-like input boxes spanning the whole page (no token inside one patch), word boxes inside patch 0
    batch["word_bbox"] = torch.where(batch["word_ids"][..., None] >= 0, torch.tensor([10, 10, 20, 20]), batch["bbox"])
    batch["bbox"] = torch.where(batch["word_ids"][..., None] >= 0, torch.tensor([0, 0, 1000, 1000]), batch["bbox"])
    for boxes, expect in (("input", 0.0), ("words", 1.0)):
        model = system(data, pita_boxes=boxes)
        model.eval()
        with torch.no_grad():
            diag = model.alignment.diagnostics(batch, model(batch))
        assert float(diag["pita_tokens_in_one_patch"]) == expect
    del batch["word_bbox"]  # data without word boxes: the input boxes
    model = system(data, pita_boxes="words")
    with torch.no_grad():
        assert float(model.alignment.diagnostics(batch, model(batch))["pita_tokens_in_one_patch"]) == 0.0


def test_funsd_reader_keeps_word_boxes_beside_segment_boxes_and_the_encoder_passes_them(minilm_tokenizer):
    root = FIXTURES / "funsd"
    plain = list(FUNSDReader(root).read("test"))
    segmented = list(FUNSDReader(root, segment_boxes=True).read("test"))
    assert all(d.word_boxes is None for d in plain)
    for p, s in zip(plain, segmented):
        assert s.word_boxes == p.boxes  # each word's own box, while the input boxes are the entities'
    assert any(s.boxes != p.boxes for p, s in zip(plain, segmented))
    encoder = DocumentEncoder(minilm_tokenizer, FUNSD_LABELS, max_length=64, stride=16, image_size=None)
    windows = encoder.encode(segmented[0], 0)
    batch = collate_windows(windows, minilm_tokenizer.pad_token_id)
    own = DocumentEncoder(minilm_tokenizer, FUNSD_LABELS, max_length=64, stride=16, image_size=None)
    plain_batch = collate_windows(own.encode(plain[0], 0), minilm_tokenizer.pad_token_id)
    assert torch.equal(batch["word_bbox"], plain_batch["bbox"])  # the word-level encoding's boxes, token for token
    assert "word_bbox" not in plain_batch


@pytest.mark.skipif(not os.environ.get("DOCALIGN_FUNSD"), reason=FUNSD_MISSING)
def test_on_real_funsd_word_boxes_put_far_more_words_inside_one_patch(minilm_tokenizer):
    """The findings' figure: on the 7x7 grid (112 px / 16 px) 12.9% of FUNSD training words lie inside one patch with
    segment boxes, 56.9% with word boxes (here on the first 30 training forms)."""
    docs = list(FUNSDReader(os.environ["DOCALIGN_FUNSD"], segment_boxes=True).read("train"))[:30]
    encoder = DocumentEncoder(
        minilm_tokenizer, FUNSD_LABELS, max_length=512, stride=128, image_size=None, repairs=RepairLog()
    )
    inside = {"bbox": [0, 0], "word_bbox": [0, 0]}
    for i, doc in enumerate(docs):
        batch = collate_windows(encoder.encode(doc, i), minilm_tokenizer.pad_token_id)
        words = batch["scored"] & (batch["word_ids"] >= 0)
        for key in inside:
            index = token_patch_index(batch[key], words, 7)
            inside[key][0] += int((index >= 0).sum())
            inside[key][1] += int(words.sum())
    segments, own = (inside[k][0] / inside[k][1] for k in ("bbox", "word_bbox"))
    assert 0.05 < segments < 0.25 and 0.45 < own < 0.70 and own > 3 * segments


# ---- the alignment encoders' learning rate ---------------------------------------------------------------------


def test_encoder_lr_is_a_group_of_its_own_for_the_online_encoders(data):  # noqa: F811
    model = system(data, encoder_lr=3e-4, lr=1e-5, new_lr=1e-3)
    lr_of = {id(p): g["lr"] for g in model.param_groups() for p in g["params"]}
    align = model.alignment
    for name, p in align.encoders.named_parameters():
        assert lr_of[id(p)] == 3e-4, name
    assert lr_of[id(align.temperature.value)] == 1e-3  # not an encoder parameter
    assert lr_of[id(model.classifier.weight)] == 1e-3 and not any(id(p) in lr_of for p in align.encoders_m.parameters())
    decay = {id(p): g["weight_decay"] for g in model.param_groups() for p in g["params"]}
    assert decay[id(align.encoders.image_proj.bias)] == 0.0 and decay[id(align.encoders.image_proj.weight)] > 0
    default = system(data, lr=1e-5, new_lr=1e-3)
    assert {g["lr"] for g in default.param_groups()} == {1e-3}  # random-init encoders: new_lr, as before
    with pytest.raises(ValueError, match="encoder_lr"):
        system(data, encoder_lr=0.0)


# ---- view augmentation -------------------------------------------------------------------------------------------


def test_view_augmentation_reaches_the_views_and_randaugment_changes_them(data):  # noqa: F811
    strong = ViewAugmentation(crop_scale=(0.9, 1.0), randaugment_ops=2, randaugment_magnitude=15, blur_p=0.0)
    views = system(data, view_augmentation=strong).alignment.views
    steps = views.transform.transforms
    assert steps[0].scale == (0.9, 1.0)
    assert isinstance(steps[1], v2.RandAugment) and steps[1].num_ops == 2 and steps[1].magnitude == 15
    assert not any(isinstance(s, v2.RandAugment) for s in system(data).alignment.views.transform.transforms)
    pixels = torch.rand(2, 3, 32, 32)
    none = ViewAugmentation(crop_scale=(1.0, 1.0), jitter=0.0, grayscale_p=0.0, blur_p=0.0)
    torch.manual_seed(0)
    assert torch.allclose(AlignmentViews.from_config(32, none)(pixels), pixels, atol=1e-6)  # strength 0: the image
    torch.manual_seed(0)
    only_ra = dataclasses.replace(none, randaugment_ops=3, randaugment_magnitude=20)
    out = AlignmentViews.from_config(32, only_ra)(pixels)
    assert out.shape == pixels.shape and 0 <= out.min() and out.max() <= 1 and not torch.allclose(out, pixels)
    for bad in (dict(crop_scale=(0.0, 1.0)), dict(blur_p=1.5), dict(randaugment_magnitude=31)):
        with pytest.raises(ValueError, match="view_augmentation"):
            ViewAugmentation(**bad)


def test_every_option_is_set_from_the_command_line(tmp_path):
    from docalign.cli import cli_main

    prefix = "--model.init_args.alignment.init_args."
    options = [
        *(prefix + "fusion_gate", "true"),
        *(prefix + "pita_features", "own_projection"),
        *(prefix + "pita_boxes", "words"),
        *(prefix + "encoder_lr", "0.0002"),
        *(prefix + "view_augmentation.randaugment_ops", "2"),
        *(prefix + "view_augmentation.crop_scale", "[0.5, 1.0]"),
    ]
    cli = cli_main(cli_args("demo_aet", tmp_path, *options), run=False)
    align = cli.model.alignment
    assert align.fusion.image_gate is not None and align.pita_image_proj is not None
    assert (align.pita_boxes, align.encoder_lr) == ("words", 0.0002)
    assert align.views.transform.transforms[0].scale == (0.5, 1.0)
    assert isinstance(align.views.transform.transforms[1], v2.RandAugment)
    assert isinstance(cli.model, TokenClassification) and isinstance(align, AETAlignment)


# ---- the pre-trained patch stem (CRAFT's VGG16-BN), offline --------------------------------------------------


def test_craft_patch_stem_loads_offline_from_the_installed_package(data, tmp_path, monkeypatch):  # noqa: F811
    from docalign.hub import CheckpointError
    from docalign.models.alignment import AlignmentImageEncoder
    from docalign.models.patch_stem import craft_checkpoint

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    config = ImageEncoderConfig(hidden_size=24, num_layers=1, num_heads=2, patch_stem="craft_vgg16_bn")
    encoder = AlignmentImageEncoder(config, 32, 16)
    state = torch.load(craft_checkpoint(), map_location="cpu", weights_only=True)
    stem = encoder.vit.patch_embed.proj[0]
    assert torch.equal(stem[0].weight, state["module.basenet.slice1.0.weight"])  # conv1_1
    assert torch.equal(stem[31].running_var, state["module.basenet.slice4.31.running_var"])  # conv4_3's BN
    out = encoder(torch.rand(2, 3, 32, 32))
    assert out.shape == (2, 1 + 4, 24)
    # the stem's parameters count as warm-started (the system's lr), the 1x1 projection and the transformer as new
    model = system(data, image_encoder=config, lr=1e-5, new_lr=1e-3)
    lr_of = {id(p): g["lr"] for g in model.param_groups() for p in g["params"]}
    vit = model.alignment.encoders.image.vit
    assert lr_of[id(vit.patch_embed.proj[0][0].weight)] == 1e-5 and lr_of[id(vit.patch_embed.proj[1].weight)] == 1e-3
    bad = tmp_path / "bad.pth"
    torch.save({"module.basenet.slice1.0.weight": torch.zeros(1)}, bad)
    with pytest.raises(CheckpointError, match="not a CRAFT checkpoint"):
        AlignmentImageEncoder(dataclasses.replace(config, patch_stem_file=str(bad)), 32, 16)
    with pytest.raises(ValueError, match="patch_stem"):
        AlignmentImageEncoder(dataclasses.replace(config, patch_stem="resnet"), 32, 16)


def test_frozen_craft_stem_keeps_its_weights_and_statistics_and_the_projection_trains(data, tmp_path, monkeypatch):  # noqa: F811
    """``image_encoder.patch_stem_frozen``: after a real training step the CRAFT trunk's weights and BatchNorm running
    statistics are bit-identical (eval-mode BatchNorm, no gradient, so no backward through it; also in the momentum
    twin), while its 1x1 projection trains; the state-dict names are the trainable stem's (checkpoints interchange)."""
    from docalign.models.alignment import AlignmentImageEncoder

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    config = ImageEncoderConfig(
        hidden_size=24, num_layers=1, num_heads=2, patch_stem="craft_vgg16_bn", patch_stem_frozen=True
    )
    model = system(data, image_encoder=config)
    vit = model.alignment.encoders.image.vit
    trunk, proj = vit.patch_embed.proj[0], vit.patch_embed.proj[1]
    before = {k: v.clone() for k, v in trunk.state_dict().items()}
    proj_before = proj.weight.detach().clone()
    model.train()
    assert not trunk.training and not trunk[1].training  # BatchNorm in eval mode under model.train()
    assert all(not p.requires_grad for p in trunk.parameters())
    trainer(tmp_path, max_steps=2, limit_train_batches=2).fit(model, datamodule=data)
    after = trunk.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # weights and running_mean/var untouched
    assert not torch.equal(proj.weight.detach(), proj_before)  # the 1x1 projection trained
    momentum = model.alignment.encoders_m.image.vit.patch_embed.proj[0]  # the EMA copy's trunk: unchanged too
    assert not momentum.training and all(torch.equal(before[k], v) for k, v in momentum.state_dict().items())
    trainable = AlignmentImageEncoder(dataclasses.replace(config, patch_stem_frozen=False), 32, 16)
    assert set(trainable.state_dict()) == set(AlignmentImageEncoder(config, 32, 16).state_dict())
    trainable.train()
    assert trainable.vit.patch_embed.proj[0][1].training  # the default trunk trains, BatchNorm included
    with pytest.raises(ValueError, match="patch_stem_frozen true needs a patch_stem"):
        AlignmentImageEncoder(dataclasses.replace(config, patch_stem=None), 32, 16)
