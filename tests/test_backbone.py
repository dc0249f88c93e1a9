import pytest
import torch

from docalign.hub import CheckpointError, load_tokenizer
from docalign.models.backbone import BackboneConfig, build_backbone

TINY = BackboneConfig(
    text_init=None,
    hidden_size=36,
    num_layers=2,
    num_heads=2,
    intermediate_size=64,
    image_size=32,
    patch_size=16,
    dropout=0.0,
)


def inputs(batch=2, length=7, vocab=100, image=32):
    g = torch.Generator().manual_seed(0)
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


def test_output_shapes_at_tiny_size():
    model = build_backbone(TINY, vocab_size=100)
    out = model(*inputs())
    grid = 32 // 16
    assert out["text"].shape == (2, 7, 36)
    assert out["visual"].shape == (2, 1 + grid * grid, 36)
    assert out["pooled"].shape == (2, 36)
    text_only = model(*inputs()[:3])
    assert text_only["visual"] is None and text_only["text"].shape == (2, 7, 36)


def test_spatial_and_1d_bias_tables_receive_gradients():
    model = build_backbone(TINY, vocab_size=100)
    out = model(*inputs())
    (out["text"].sum() + out["visual"].sum()).backward()
    enc = model.hf.encoder
    for table in (enc.rel_pos_bias, enc.rel_pos_x_bias, enc.rel_pos_y_bias):
        assert table.weight.grad is not None and table.weight.grad.abs().sum() > 0


def test_padding_does_not_change_the_states_of_real_tokens():
    model = build_backbone(TINY, vocab_size=100).eval()
    ids, bbox, mask, pixels = inputs()
    short = model(ids[1:, :5], bbox[1:, :5], mask[1:, :5], pixels[1:])["text"]
    padded = model(ids[1:], bbox[1:], mask[1:], pixels[1:])["text"][:, :5]
    assert torch.allclose(short, padded, atol=1e-5)


def test_additive_fusion_inputs_change_the_output():
    model = build_backbone(TINY, vocab_size=100).eval()
    ids, bbox, mask, pixels = inputs()
    base = model(ids, bbox, mask, pixels)
    # (a constant vector would vanish in the LayerNorm that follows the sum)
    text_extra = torch.randn(2, 7, 36, generator=torch.Generator().manual_seed(1))
    plus = model(ids, bbox, mask, pixels, text_extra=text_extra, visual_extra=torch.zeros(2, 5, 36))
    assert not torch.allclose(base["text"], plus["text"])
    same = model(ids, bbox, mask, pixels, text_extra=torch.zeros(2, 7, 36))
    assert torch.allclose(base["text"], same["text"])


def test_minilm_warm_start_accounts_for_every_tensor():
    tok = load_tokenizer("minilm")
    assert len(tok) == 30522
    model = build_backbone(BackboneConfig(image_size=32), vocab_size=len(tok))
    report = model.load_report
    assert len(report.loaded) == 101 and not report.mismatched
    assert set(report.unused) == {"pooler.dense.weight", "pooler.dense.bias"}
    assert all(f"encoder.layer.{i}.attention.self.query.weight" in report.loaded for i in range(6))
    assert "embeddings.word_embeddings.weight" in report.loaded
    new = set(report.new)
    assert {
        "embeddings.x_position_embeddings.weight",
        "patch_embed.proj.weight",
        "encoder.rel_pos_x_bias.weight",
    } <= new
    assert not any(n.startswith("encoder.layer.") for n in new)
    # the copy is exact (BERT positions start at 0, as ours do)
    from transformers import AutoModel

    from docalign.hub import resolve_checkpoint

    bert = AutoModel.from_pretrained(resolve_checkpoint("minilm"))
    assert torch.equal(model.hf.embeddings.position_embeddings.weight, bert.embeddings.position_embeddings.weight)
    assert torch.equal(model.hf.encoder.layer[3].output.dense.weight, bert.encoder.layer[3].output.dense.weight)


def test_vocabulary_mismatch_is_refused():
    with pytest.raises(CheckpointError, match="tokenizer has 50265 tokens"):
        build_backbone(BackboneConfig(image_size=32), vocab_size=50265)


def test_unreachable_checkpoint_fails_fast_with_advice(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointError, match="_offline.yaml|local folder"):
        load_tokenizer("microsoft/layoutlmv3-base")
    with pytest.raises(CheckpointError, match="microsoft/layoutlmv3-base"):
        build_backbone(BackboneConfig(pretrained="microsoft/layoutlmv3-base"), vocab_size=50265)


def test_sinusoidal_layout_tables_are_smooth_and_scaled():
    from docalign.models.layout_init import sinusoidal_table

    table = sinusoidal_table(1024, 64, std=0.02)
    assert table.shape == (1024, 64) and abs(float(table.std()) - 0.02) < 1e-6
    # neighbouring coordinates are closer than distant ones; row 0 is sin(0)=0 / cos(0)=1 scaled
    near = (table[500] - table[501]).norm()
    far = (table[500] - table[900]).norm()
    assert near < far / 3
    assert torch.all(table[0, :32] == 0) and torch.allclose(table[0, 32:], table[0, 32].expand(32))


def test_layout_init_applies_to_new_tables_only_and_is_selectable():
    from docalign.models.layout_init import sinusoidal_table

    for mode in ("sinusoidal", "random"):
        for arch in ("layoutlm", "layoutlmv2", "layoutlmv3"):
            model = build_backbone(BackboneConfig(arch=arch, text_init="minilm", visual=False, layout_init=mode), 30522)
            table = model.hf.embeddings.x_position_embeddings.weight
            expected = sinusoidal_table(*table.shape)
            assert torch.equal(table, expected) == (mode == "sinusoidal"), (arch, mode)
    with pytest.raises(ValueError, match="layout_init"):
        build_backbone(
            BackboneConfig(
                text_init=None, hidden_size=24, num_layers=1, num_heads=2, intermediate_size=32, layout_init="zeros"
            ),
            100,
        )


def test_text_warm_start_starts_the_joint_layernorm_at_the_text_layernorm():
    model = build_backbone(BackboneConfig(text_init="minilm", image_size=32, patch_size=16), 30522)
    text_ln, joint_ln = model.hf.embeddings.LayerNorm, model.hf.LayerNorm
    assert torch.equal(text_ln.weight, joint_ln.weight) and torch.equal(text_ln.bias, joint_ln.bias)
    assert abs(float(joint_ln.weight.mean()) - 1.0) > 0.2  # MiniLM's gain (~0.62), not a fresh LayerNorm's 1


def _attention_dropouts(model):
    """(attention-probability dropout values, other dropout values) of a Hugging Face BERT-style model."""
    attention, other = set(), set()
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Dropout):
            (attention if name.endswith("attention.self.dropout") else other).add(module.p)
    return attention, other


@pytest.mark.parametrize("arch", ["layoutlm", "layoutlmv3"])
def test_attention_dropout_overrides_only_the_attention_probabilities(arch):
    from dataclasses import replace

    plain = build_backbone(replace(TINY, arch=arch, dropout=0.1), vocab_size=100)
    assert _attention_dropouts(plain.hf)[0] == {0.1}
    model = build_backbone(replace(TINY, arch=arch, dropout=0.1, attention_dropout=0.0), vocab_size=100)
    assert model.hf.config.attention_probs_dropout_prob == 0.0
    attention, other = _attention_dropouts(model.hf)
    assert attention == {0.0} and 0.1 in other  # hidden dropout is kept
    # in training mode, the attention of a model without attention dropout equals its eval-mode attention
    hf = model.hf.train()
    layer = hf.encoder.layer[0].attention.self
    hidden = torch.randn(2, 7, 36)
    assert torch.equal(layer(hidden)[0], layer.eval()(hidden)[0])


def test_the_alignment_text_encoder_takes_attention_dropout_from_config_even_when_pretrained():
    from docalign.models.alignment import AlignmentTextEncoder, TextEncoderConfig

    tokenizer = load_tokenizer("minilm")
    warm = AlignmentTextEncoder(TextEncoderConfig(pretrained="minilm"), len(tokenizer))
    assert _attention_dropouts(warm.model)[0] == {0.1}  # the checkpoint's own
    cut = AlignmentTextEncoder(TextEncoderConfig(pretrained="minilm", attention_dropout=0.0), len(tokenizer))
    assert _attention_dropouts(cut.model) == ({0.0}, {0.1})
    random_init = AlignmentTextEncoder(
        TextEncoderConfig(
            pretrained=None, hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64, attention_dropout=0.0
        ),
        100,
    )
    assert _attention_dropouts(random_init.model) == ({0.0}, {0.1})


def test_the_pretrained_alignment_text_encoder_keeps_its_first_layers_when_told():
    from docalign.models.alignment import AlignmentTextEncoder, TextEncoderConfig

    tokenizer = load_tokenizer("minilm")
    full = AlignmentTextEncoder(TextEncoderConfig(pretrained="minilm"), len(tokenizer))
    cut = AlignmentTextEncoder(TextEncoderConfig(pretrained="minilm", pretrained_layers=3), len(tokenizer))
    assert len(full.model.encoder.layer) == 6 and len(cut.model.encoder.layer) == 3
    # loaded in training mode (from_pretrained's eval mode would survive Lightning's fit: dropout off)
    assert all(module.training for module in full.modules())
    kept = cut.model.state_dict()
    # every kept tensor is the checkpoint's own (embeddings and layers 0-2), none newly initialised
    assert kept.keys() <= full.model.state_dict().keys()
    for name, tensor in kept.items():
        assert torch.equal(tensor, full.model.state_dict()[name]), name
    ids = torch.tensor([tokenizer("a receipt total")["input_ids"]])
    states = cut(ids, torch.ones_like(ids))
    assert states.shape == (1, ids.shape[1], 384)
    with pytest.raises(ValueError, match="pretrained_layers = 7, but 'minilm' has 6 layers"):
        AlignmentTextEncoder(TextEncoderConfig(pretrained="minilm", pretrained_layers=7), len(tokenizer))
    with pytest.raises(ValueError, match="choose 1 to 6"):
        AlignmentTextEncoder(TextEncoderConfig(pretrained="minilm", pretrained_layers=0), len(tokenizer))


def test_layoutlmv3_patch_stem_is_craft_pretrained_offline_and_warm_started(tmp_path, monkeypatch):
    """``backbone.patch_stem craft_vgg16_bn``: CRAFT's VGG16-BN trunk (from the installed package, offline) is the
    patch embedding; the page is normalised with ImageNet's statistics for it; its weights take ``lr``."""
    from dataclasses import replace

    from docalign.models.patch_stem import craft_checkpoint
    from docalign.systems import TokenClassification

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    config = replace(TINY, patch_stem="craft_vgg16_bn")
    model = build_backbone(config, vocab_size=100)
    stem = model.hf.patch_embed.proj[0]
    state = torch.load(craft_checkpoint(), map_location="cpu", weights_only=True)
    assert torch.equal(stem[0].weight, state["module.basenet.slice1.0.weight"])  # conv1_1
    assert torch.equal(stem[31].running_mean, state["module.basenet.slice4.31.running_mean"])  # conv4_3's BN
    out = model(*inputs())
    assert out["visual"].shape == (2, 1 + 4, 36)  # same tokens as the linear 16 px embedding
    page = torch.rand(1, 3, 32, 32)
    normalised = model.normalise_pixels(page)
    assert torch.allclose(normalised[0, 0], (page[0, 0] - 0.485) / 0.229)  # ImageNet statistics, as CRAFT's
    plain = build_backbone(TINY, vocab_size=100)
    assert torch.allclose(plain.normalise_pixels(page), (page - 0.5) / 0.5)  # unchanged without a stem
    system = TokenClassification(config, vocab_size=100, label_names=["O", "B-X"], lr=1e-5, new_lr=1e-3)
    lr_of = {id(p): g["lr"] for g in system.param_groups() for p in g["params"]}
    proj = system.backbone.hf.patch_embed.proj
    assert lr_of[id(proj[0][0].weight)] == 1e-5 and lr_of[id(proj[1].weight)] == 1e-3  # stem warm, 1x1 new
    from pathlib import Path

    from docalign.inference.export import not_transformers
    from docalign.inference.loading import TrainedModel

    trained = TrainedModel(system.eval(), load_tokenizer("minilm"), {}, Path("stem.ckpt"))
    assert "CNN stem (craft_vgg16_bn)" in not_transformers(trained)  # exported as docalign's own folder instead
    with pytest.raises(ValueError, match="patch_size 16"):
        build_backbone(replace(config, patch_size=8), vocab_size=100)
    with pytest.raises(ValueError, match="visual true"):
        build_backbone(replace(config, visual=False), vocab_size=100)
    with pytest.raises(ValueError, match="must be one of"):
        build_backbone(replace(config, patch_stem="resnet"), vocab_size=100)
    bad = tmp_path / "bad.pth"
    torch.save({"module.basenet.slice1.0.weight": torch.zeros(1)}, bad)
    with pytest.raises(CheckpointError, match="not a CRAFT checkpoint"):
        build_backbone(replace(config, patch_stem_file=str(bad)), vocab_size=100)


def test_layoutlmv3_frozen_patch_stem_gets_no_gradient_and_keeps_its_statistics(monkeypatch):
    """``backbone.patch_stem_frozen``: the CRAFT trunk stays in eval mode under ``train()`` (its pre-trained BatchNorm
    statistics survive a training forward) and gets no gradient, while the 1x1 projection does."""
    from dataclasses import replace

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = build_backbone(replace(TINY, patch_stem="craft_vgg16_bn", patch_stem_frozen=True), vocab_size=100)
    trunk, proj = model.hf.patch_embed.proj[0], model.hf.patch_embed.proj[1]
    stats = trunk[1].running_mean.clone()
    model.train()
    assert not trunk.training and model.hf.encoder.training
    out = model(*inputs())
    out["visual"].sum().backward()
    assert torch.equal(trunk[1].running_mean, stats)  # a train-mode BatchNorm would have moved them
    assert all(p.grad is None for p in trunk.parameters()) and proj.weight.grad is not None
    with pytest.raises(ValueError, match="patch_stem_frozen true needs a patch_stem"):
        build_backbone(replace(TINY, patch_stem_frozen=True), vocab_size=100)
