"""LayoutLM v1 and our detectron2-free LayoutLMv2 behind the backbone interface; freezing."""

from types import SimpleNamespace

import lightning as L
import pytest
import torch
from transformers import AutoModel, LayoutLMConfig, LayoutLMModel, LayoutLMv2Config
from transformers.models.layoutlmv2 import modeling_layoutlmv2 as hf_v2

from docalign.hub import resolve_checkpoint
from docalign.models.backbone import BackboneConfig, build_backbone
from docalign.models.freezing import UnfreezeAfter, count_parameters, freeze, match_parameters, unfreeze
from docalign.models.layoutlmv2 import fuse_qkv, grid_boxes
from docalign.models.spatial_attention import relative_position_bucket
from docalign.models.visual_cnn import ResNetGrid
from docalign.systems import TokenClassification

# tests/configs/tiny.yaml's sizes
TINY = dict(
    text_init=None,
    hidden_size=32,
    num_layers=2,
    num_heads=2,
    intermediate_size=64,
    image_size=32,
    patch_size=16,
    dropout=0.0,
)


def tiny(arch, **kw):
    return BackboneConfig(arch=arch, **{**TINY, **kw})


def inputs(batch=2, length=7, vocab=100, image=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randint(0, 500, (batch, length, 2), generator=g)
    bbox = torch.cat([x0, x0 + torch.randint(1, 400, (batch, length, 2), generator=g)], dim=-1)
    mask = torch.ones(batch, length, dtype=torch.long)
    mask[1, 5:] = 0
    return (
        torch.randint(5, vocab, (batch, length), generator=g),
        bbox,
        mask,
        torch.randn(batch, 3, image, image, generator=g),
    )


# --- relative position buckets ---------------------------------------------------------------------


def buckets(values, **kw):
    return relative_position_bucket(torch.tensor(values), **kw).tolist()


def test_bucket_exact_range_both_signs():
    # 1-D: 32 buckets, max 128 -> 16 per sign; j > i adds 16; distances 0..7 (< 16 // 2) are exact.
    assert buckets([0, -1, -7, 1, 7]) == [0, 1, 7, 16 + 1, 16 + 7]
    # 2-D: 64 buckets, max 256 -> 32 per sign, exact below 16.
    assert buckets([-15, 15], num_buckets=64, max_distance=256) == [15, 32 + 15]


def test_bucket_log_range():
    # 1-D: n >= 8 -> 8 + floor(ln(n / 8) / ln(128 / 8) * 8)
    #   n=8: 8 + 0 = 8;  n=11: ln(1.375)/ln(16) = 0.1149 -> 8 + floor(0.919) = 8
    #   n=12: ln(1.5)/ln(16) = 0.1462 -> 8 + floor(1.170) = 9;  n=32: ln 4/ln 16 = 0.5 -> 8 + 4 = 12
    #   n=64: 0.75 -> 8 + 6 = 14;  n=127: ln(15.875)/ln 16 = 0.9972 -> 8 + floor(7.977) = 15
    assert buckets([-8, -11, -12, -32, -64, -127]) == [8, 8, 9, 12, 14, 15]
    assert buckets([8, 12, 32, 127]) == [16 + 8, 16 + 9, 16 + 12, 16 + 15]
    # 2-D: n >= 16 -> 16 + floor(ln(n / 16) / ln(256 / 16) * 16)
    #   n=32: 0.25 * 16 = 4 -> 20;  n=64: 8 -> 24;  n=128: 12 -> 28;  n=255: ln(15.94)/ln 16 = 0.9986 -> 16 + 15 = 31
    assert buckets([-32, -64, -128, -255], num_buckets=64, max_distance=256) == [20, 24, 28, 31]
    assert buckets([32, 255], num_buckets=64, max_distance=256) == [32 + 20, 32 + 31]


def test_bucket_clamps_at_max_distance():
    # at and beyond max_distance every offset shares the last bucket of its sign
    assert buckets([-128, -129, -1000, 128, 5000]) == [15, 15, 15, 31, 31]
    assert buckets([-256, -1000, 256, 1000], num_buckets=64, max_distance=256) == [31, 31, 63, 63]


def test_bucket_unidirectional():
    # only j <= i is bucketed: positive offsets -> 0; 32 buckets exact below 16;
    # n=20: 16 + floor(ln(20/16)/ln(128/16) * 16) = 16 + floor(1.717) = 17
    assert buckets([3, 0, -5, -15, -20, -500], bidirectional=False) == [0, 0, 5, 15, 17, 31]


def test_bucket_agrees_with_the_t5_reference_everywhere():
    # pre-trained bias tables are indexed by T5's buckets: ours must agree on every offset
    offsets = torch.arange(-1100, 1101)
    for nb, md in ((32, 128), (64, 256)):
        assert torch.equal(
            relative_position_bucket(offsets, True, nb, md),
            hf_v2.relative_position_bucket(offsets, num_buckets=nb, max_distance=md),
        )


def test_grid_boxes_are_the_row_major_grid_of_the_page():
    assert grid_boxes(2, 2).tolist() == [
        [0, 0, 500, 500],
        [500, 0, 1000, 500],
        [0, 500, 500, 1000],
        [500, 500, 1000, 1000],
    ]
    hf = hf_v2.LayoutLMv2Model._calc_visual_bbox(
        SimpleNamespace(config=SimpleNamespace(image_feature_pool_shape=[7, 7])),
        [7, 7],
        torch.zeros(1, 1, 4, dtype=torch.long),
        "cpu",
        (1, 50),
    )
    assert torch.equal(grid_boxes(7, 7), hf[0])


# --- shapes, gradients, padding, fusion inputs -------------------------------------------------------


def test_output_shapes_at_tiny_size():
    ids, bbox, mask, pixels = inputs()
    v1 = build_backbone(tiny("layoutlm"), vocab_size=100)
    out = v1(ids, bbox, mask, pixels)  # the image is ignored
    assert out["text"].shape == (2, 7, 32) and out["visual"] is None and out["pooled"].shape == (2, 32)
    v2 = build_backbone(tiny("layoutlmv2"), vocab_size=100)
    out = v2(ids, bbox, mask, pixels)
    assert out["text"].shape == (2, 7, 32) and out["visual"].shape == (2, 49, 32) and out["pooled"].shape == (2, 32)
    assert v2(ids, bbox, mask)["visual"] is None
    grid3 = build_backbone(tiny("layoutlmv2", visual_grid=3, visual_fpn=False), vocab_size=100)
    assert grid3(ids, bbox, mask, pixels)["visual"].shape == (2, 9, 32)


@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
@pytest.mark.parametrize("fpn", [True, False])
def test_cnn_grid_for_any_image_size(arch, fpn):
    cnn = ResNetGrid(arch, (7, 7), fpn=fpn)
    assert cnn.out_channels == (256 if fpn else (512 if arch == "resnet18" else 2048))
    for size in (16, 32, 70):  # smaller than the CNN's stride, and not a multiple of it
        assert cnn(torch.randn(1, 3, size, size)).shape == (1, 49, cnn.out_channels)


def test_v2_bias_tables_and_cnn_receive_gradients():
    model = build_backbone(tiny("layoutlmv2"), vocab_size=100)
    out = model(*inputs())
    (out["text"].sum() + out["visual"].sum()).backward()
    enc = model.hf.encoder
    for table in (enc.rel_pos_bias, enc.rel_pos_x_bias, enc.rel_pos_y_bias):
        assert table.weight.grad is not None and table.weight.grad.abs().sum() > 0
    assert model.hf.visual.body.conv1.weight.grad.abs().sum() > 0
    assert model.hf.visual.lateral[0].weight.grad.abs().sum() > 0


@pytest.mark.parametrize("arch", ["layoutlm", "layoutlmv2"])
def test_padding_does_not_change_the_states_of_real_tokens(arch):
    model = build_backbone(tiny(arch), vocab_size=100).eval()
    ids, bbox, mask, pixels = inputs()
    short = model(ids[1:, :5], bbox[1:, :5], mask[1:, :5], pixels[1:])
    padded = model(ids[1:], bbox[1:], mask[1:], pixels[1:])
    assert torch.allclose(short["text"], padded["text"][:, :5], atol=1e-5)
    if arch == "layoutlmv2":
        assert torch.allclose(short["visual"], padded["visual"], atol=1e-5)


@pytest.mark.parametrize("arch", ["layoutlm", "layoutlmv2"])
def test_additive_fusion_inputs(arch):
    model = build_backbone(tiny(arch), vocab_size=100).eval()
    ids, bbox, mask, pixels = inputs()
    base = model(ids, bbox, mask, pixels)
    extra = torch.randn(2, 7, 32, generator=torch.Generator().manual_seed(1))
    assert not torch.allclose(base["text"], model(ids, bbox, mask, pixels, text_extra=extra)["text"])
    assert torch.allclose(base["text"], model(ids, bbox, mask, pixels, text_extra=torch.zeros(2, 7, 32))["text"])
    if arch == "layoutlmv2":
        visual_extra = torch.randn(2, 49, 32, generator=torch.Generator().manual_seed(2))
        assert not torch.allclose(base["visual"], model(ids, bbox, mask, pixels, visual_extra=visual_extra)["visual"])


def test_v2_rejects_boxes_outside_the_tables():
    model = build_backbone(tiny("layoutlmv2"), vocab_size=100)
    ids, bbox, mask, pixels = inputs()
    bbox[0, 1] = torch.tensor([10, 10, 5, 20])  # x1 < x0
    with pytest.raises(ValueError, match="bbox must hold"):
        model(ids, bbox, mask, pixels)


# --- warm starts ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def minilm():
    return AutoModel.from_pretrained(resolve_checkpoint("minilm")).eval()


def zero_layout_tables(emb):
    with torch.no_grad():
        for table in (
            emb.x_position_embeddings,
            emb.y_position_embeddings,
            emb.h_position_embeddings,
            emb.w_position_embeddings,
        ):
            table.weight.zero_()


def test_minilm_warm_start_of_v1_is_bert_plus_layout(minilm):
    model = build_backbone(BackboneConfig(arch="layoutlm", dropout=0.0), vocab_size=30522).eval()
    report = model.load_report
    assert len(report.loaded) == 103 and not report.unused and not report.mismatched
    assert sorted(report.new) == sorted(f"embeddings.{c}_position_embeddings.weight" for c in "xyhw")
    assert all(f"encoder.layer.{i}.output.dense.weight" in report.loaded for i in range(6))
    ref = dict(minilm.named_parameters())
    assert all(torch.equal(p, ref[n]) for n, p in model.hf.named_parameters() if n in report.loaded)
    # with the (new) 2-D tables at zero, v1 is exactly the BERT it came from
    zero_layout_tables(model.hf.embeddings)
    ids, bbox, mask, _ = inputs(vocab=30522)
    ours = model(ids, bbox, mask)
    bert = minilm(input_ids=ids, attention_mask=mask)
    assert torch.allclose(ours["text"][mask.bool()], bert.last_hidden_state[mask.bool()], atol=1e-5)
    assert torch.allclose(ours["pooled"], bert.pooler_output, atol=1e-5)


def test_minilm_warm_start_of_v2_fuses_qkv_exactly(minilm):
    model = build_backbone(BackboneConfig(arch="layoutlmv2", visual=False, dropout=0.0), vocab_size=30522).eval()
    report = model.load_report
    # 5 embedding tensors + 6 layers x 13 (fused qkv weight, q_bias, v_bias + 10 others) + 2 pooler
    assert len(report.loaded) == 5 + 6 * 13 + 2 and not report.mismatched
    assert report.unused == [f"encoder.layer.{i}.attention.self.key.bias" for i in range(6)]
    assert sorted(report.new) == sorted(
        [f"embeddings.{c}_position_embeddings.weight" for c in "xyhw"]
        + [f"encoder.{t}.weight" for t in ("rel_pos_bias", "rel_pos_x_bias", "rel_pos_y_bias")]
    )
    for i in range(6):
        ours, theirs = model.hf.encoder.layer[i].attention.self, minilm.encoder.layer[i].attention.self
        assert torch.equal(
            ours.qkv_linear.weight, torch.cat([theirs.query.weight, theirs.key.weight, theirs.value.weight])
        )
        assert torch.equal(ours.q_bias, theirs.query.bias) and torch.equal(ours.v_bias, theirs.value.bias)
    assert torch.equal(model.hf.embeddings.position_embeddings.weight, minilm.embeddings.position_embeddings.weight)
    # with the new layout and bias tables at zero, v2's text stream is exactly BERT (the dropped key
    # bias changes nothing: softmax ignores a per-row constant)
    zero_layout_tables(model.hf.embeddings)
    with torch.no_grad():
        for t in (model.hf.encoder.rel_pos_bias, model.hf.encoder.rel_pos_x_bias, model.hf.encoder.rel_pos_y_bias):
            t.weight.zero_()
    ids, bbox, mask, _ = inputs(vocab=30522)
    ours = model(ids, bbox, mask)
    bert = minilm(input_ids=ids, attention_mask=mask)
    assert torch.allclose(ours["text"][mask.bool()], bert.last_hidden_state[mask.bool()], atol=1e-4)
    assert torch.allclose(ours["pooled"], bert.pooler_output, atol=1e-4)


def test_v1_loads_a_layoutlm_checkpoint(tmp_path):
    source = LayoutLMModel(
        LayoutLMConfig(
            vocab_size=100,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=64,
        )
    )
    source.save_pretrained(tmp_path)
    model = build_backbone(BackboneConfig(arch="layoutlm", pretrained=str(tmp_path)), vocab_size=100)
    report = model.load_report
    assert len(report.loaded) == len(list(source.parameters())) and not report.new and not report.unused
    assert torch.equal(model.hf.embeddings.h_position_embeddings.weight, source.embeddings.h_position_embeddings.weight)


# --- a microsoft/layoutlmv2-* checkpoint, built with Hugging Face's own modules and names -----------

DETECTRON2 = {  # a sample of the detectron2 ResNeXt-FPN tensors such a checkpoint holds
    "layoutlmv2.visual.backbone.bottom_up.stem.conv1.weight": (64, 3, 7, 7),
    "layoutlmv2.visual.backbone.bottom_up.stem.conv1.norm.running_mean": (64,),
    "layoutlmv2.visual.backbone.bottom_up.res2.0.conv1.weight": (256, 64, 1, 1),
    "layoutlmv2.visual.backbone.fpn_lateral2.weight": (256, 256, 1, 1),
    "layoutlmv2.visual.backbone.fpn_output2.weight": (256, 256, 3, 3),
    "layoutlmv2.visual.pixel_mean": (3, 1, 1),
}


def hf_checkpoint(folder, fast_qkv):
    """A LayoutLMv2 checkpoint folder (config.json + model.safetensors) with Hugging Face's names and shapes.

    ``transformers.LayoutLMv2Model`` needs detectron2, but its embeddings, encoder and pooler are plain
    modules: their state dicts give the real names; the rest are listed from modeling_layoutlmv2.py.
    """
    from safetensors.torch import save_file

    torch.manual_seed(0)
    c = LayoutLMv2Config(
        vocab_size=100,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        coordinate_size=5,
        shape_size=6,
        max_position_embeddings=64,
        fast_qkv=fast_qkv,
        has_visual_segment_embedding=True,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    c.save_pretrained(folder)
    modules = {
        "embeddings": hf_v2.LayoutLMv2Embeddings(c),
        "encoder": hf_v2.LayoutLMv2Encoder(c),
        "pooler": hf_v2.LayoutLMv2Pooler(c),
    }
    with torch.no_grad():
        for module in modules.values():  # non-zero biases everywhere, the key bias included
            for name, p in module.named_parameters():
                if name.endswith("bias"):
                    p.normal_()
    state = {f"layoutlmv2.{m}.{k}": v.clone() for m, module in modules.items() for k, v in module.state_dict().items()}
    h = c.hidden_size
    state.update(
        {
            "layoutlmv2.embeddings.position_ids": torch.arange(64)[None],
            "layoutlmv2.visual_proj.weight": torch.randn(h, c.image_feature_pool_shape[-1]),
            "layoutlmv2.visual_proj.bias": torch.randn(h),
            "layoutlmv2.visual_segment_embedding": torch.randn(h),
            "layoutlmv2.visual_LayerNorm.weight": torch.rand(h) + 0.5,
            "layoutlmv2.visual_LayerNorm.bias": torch.randn(h),
        }
    )
    state.update({k: torch.randn(shape) for k, shape in DETECTRON2.items()})
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "model.safetensors"))
    return c, modules, state


@pytest.mark.parametrize("fast_qkv", [True, False])
def test_layoutlmv2_checkpoint_key_mapping_and_equivalence(tmp_path, fast_qkv):
    c, hf, state = hf_checkpoint(tmp_path, fast_qkv)
    model = build_backbone(BackboneConfig(arch="layoutlmv2", pretrained=str(tmp_path)), vocab_size=100).eval()
    report = model.load_report
    not_ours = {
        "layoutlmv2.embeddings.position_ids",
        "layoutlmv2.visual_proj.weight",
        "layoutlmv2.visual_proj.bias",
        *DETECTRON2,
    }
    if not fast_qkv:  # LayoutXLM-style separate projections: fused on load, the key bias is dropped
        not_ours |= {f"layoutlmv2.encoder.layer.{i}.attention.self.key.bias" for i in range(2)}
    assert sorted(report.unused) == sorted(not_ours) and not report.mismatched
    ours = dict(model.hf.named_parameters())
    assert set(report.new) == {n for n in ours if n.startswith(("visual.", "visual_proj."))}
    assert sorted(report.loaded) == sorted(set(ours) - set(report.new))
    source = fuse_qkv(state)
    assert all(torch.equal(ours[name], source[f"layoutlmv2.{name}"]) for name in report.loaded)
    if not fast_qkv:
        raw = hf["encoder"].layer[1].attention.self
        assert torch.equal(
            ours["encoder.layer.1.attention.self.qkv_linear.weight"],
            torch.cat([raw.query.weight, raw.key.weight, raw.value.weight]),
        )
        assert torch.equal(ours["encoder.layer.1.attention.self.v_bias"], raw.value.bias)
    # the same numbers as Hugging Face's forward, composed from its own functions (the visual encoder
    # and projection, which cannot be loaded, are ours in both)
    ids, bbox, mask, pixels = inputs(batch=2, length=7)
    positions = (mask.cumsum(1) - 1).clamp(min=0)
    me = SimpleNamespace(
        embeddings=hf["embeddings"],
        visual=model.hf.visual,
        visual_proj=model.hf.visual_proj,
        has_visual_segment_embedding=True,
        visual_segment_embedding=model.hf.visual_segment_embedding,
        visual_LayerNorm=model.hf.visual_LayerNorm,
        visual_dropout=torch.nn.Identity(),
        config=SimpleNamespace(image_feature_pool_shape=[7, 7, 256]),
    )
    with torch.no_grad():
        text = hf_v2.LayoutLMv2Model._calc_text_embeddings(me, ids, bbox, positions, torch.zeros_like(ids))
        vbox = hf_v2.LayoutLMv2Model._calc_visual_bbox(me, [7, 7], bbox, "cpu", (2, 7 + 49))
        vpos = torch.arange(49).repeat(2, 1)
        visual = hf_v2.LayoutLMv2Model._calc_img_embeddings(me, pixels, vbox, vpos)
        full_mask = torch.cat([mask, torch.ones(2, 49, dtype=mask.dtype)], 1)[:, None, None, :]
        expected = hf["encoder"](
            torch.cat([text, visual], 1),
            (1.0 - full_mask) * torch.finfo(torch.float32).min,
            bbox=torch.cat([bbox, vbox], 1),
            position_ids=torch.cat([positions, vpos], 1),
        ).last_hidden_state
        out = model(ids, bbox, mask, pixels)
    assert torch.allclose(out["text"], expected[:, :7], atol=1e-5)
    assert torch.allclose(out["visual"], expected[:, 7:], atol=1e-5)
    assert torch.allclose(out["pooled"], hf["pooler"](expected), atol=1e-5)


# --- freezing ------------------------------------------------------------------------------------


def tiny_system(**kw):
    return TokenClassification(
        backbone=tiny("layoutlm"),
        label_names=["O", "B-X", "I-X"],
        vocab_size=100,
        lr=1e-2,
        weight_decay=0.1,
        warmup_ratio=0.0,
        **kw,
    )


def batches(n=2):
    out = []
    for seed in range(n):
        ids, bbox, mask, _ = inputs(seed=seed)
        labels = torch.randint(0, 3, ids.shape, generator=torch.Generator().manual_seed(seed))
        out.append({"input_ids": ids, "bbox": bbox, "attention_mask": mask, "labels": labels})
    return out


def test_patterns_glob_regex_and_typos():
    system = tiny_system()
    assert set(match_parameters(system, ["backbone.hf.embeddings.*"])) == {
        f"backbone.hf.{n}" for n, _ in system.backbone.hf.embeddings.named_parameters(prefix="embeddings")
    }
    assert set(match_parameters(system, [r"re:backbone\.hf\.encoder\.layer\.1\."])) == {
        n for n, _ in system.named_parameters() if n.startswith("backbone.hf.encoder.layer.1.")
    }
    with pytest.raises(ValueError, match="matches no parameter"):
        freeze(system, ["backbone.embeddings.*"])
    names = freeze(system, ["backbone.hf.encoder.*"])
    trainable, total = count_parameters(system)
    assert trainable == total - sum(p.numel() for n, p in system.named_parameters() if n in names)
    unfreeze(system, ["backbone.hf.encoder.*"])
    assert count_parameters(system) == (total, total)


def test_frozen_weights_are_bit_identical_after_an_adamw_step_with_weight_decay():
    system = tiny_system(freeze=["backbone.hf.embeddings.*", "backbone.hf.encoder.layer.0.*"])
    frozen = {n: p.detach().clone() for n, p in system.named_parameters() if not p.requires_grad}
    trainable = system.backbone.hf.encoder.layer[1].output.dense.weight  # stays trainable
    before_trainable = trainable.detach().clone()
    assert frozen and all(n.startswith(("backbone.hf.embeddings.", "backbone.hf.encoder.layer.0.")) for n in frozen)
    groups = system.param_groups()
    assert sum(len(g["params"]) for g in groups) == len(list(system.parameters()))  # frozen ones included
    optimizer = torch.optim.AdamW(groups)
    assert any(g["weight_decay"] > 0 for g in groups)
    v2 = TokenClassification(backbone=tiny("layoutlmv2"), label_names=["O"], vocab_size=100, weight_decay=0.1)
    decayed = {id(p) for g in v2.param_groups() if g["weight_decay"] > 0 for p in g["params"]}
    assert all(id(p) not in decayed for n, p in v2.named_parameters() if n.endswith(("bias", "LayerNorm.weight")))
    # the trap the design avoids: a zero gradient is not "no gradient"; AdamW decays that weight
    control = system.classifier.weight
    before_control = control.detach().clone()
    batch = batches(1)[0]
    system.training_step(batch, 0).backward()
    # freezing after a backward pass must not leave a stale gradient for AdamW to apply
    late = freeze(system, ["backbone.hf.encoder.layer.1.attention.*"])
    frozen.update({n: p.detach().clone() for n, p in system.named_parameters() if n in late})
    control.grad.zero_()
    optimizer.step()
    assert not torch.equal(control, before_control)
    params = dict(system.named_parameters())
    assert all(torch.equal(params[n], v) for n, v in frozen.items())
    assert not torch.equal(trainable, before_trainable)


class Snapshots(L.Callback):
    def __init__(self, names):
        self.names, self.seen, self.trainable = names, [], []

    def on_train_epoch_end(self, trainer, pl_module):
        params = dict(pl_module.named_parameters())
        self.seen.append({n: params[n].detach().clone() for n in self.names})
        self.trainable.append(float(trainer.callback_metrics["train/trainable_params"]))


@pytest.mark.parametrize("ddp_safe", [False, True])
def test_unfreeze_after_epoch_n(ddp_safe):
    torch.manual_seed(0)
    system = tiny_system()
    watched = ["backbone.hf.embeddings.word_embeddings.weight", "backbone.hf.encoder.layer.1.output.dense.weight"]
    start = {n: p.detach().clone() for n, p in system.named_parameters() if n in watched}
    snaps = Snapshots(watched)
    trainer = L.Trainer(
        max_epochs=3,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        callbacks=[UnfreezeAfter(["backbone.hf.embeddings.*"], epoch=2, ddp_safe=ddp_safe), snaps],
    )
    trainer.fit(system, train_dataloaders=torch.utils.data.DataLoader(batches(), batch_size=None))
    emb, enc = watched
    assert torch.equal(snaps.seen[0][emb], start[emb]) and torch.equal(snaps.seen[1][emb], start[emb])
    assert not torch.equal(snaps.seen[2][emb], snaps.seen[1][emb])  # trains from epoch 2
    assert not torch.equal(snaps.seen[0][enc], start[enc])  # the rest trained all along
    n_emb = sum(p.numel() for p in system.backbone.hf.embeddings.parameters())
    total = sum(p.numel() for p in system.parameters())
    assert snaps.trainable == [total - n_emb, total - n_emb, total]
