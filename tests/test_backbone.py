import pytest
import torch

from docalign.models.backbone import BackboneConfig, build_backbone
from docalign.models.pretrained import CheckpointError, load_tokenizer

TINY = BackboneConfig(text_init=None, hidden_size=36, num_layers=2, num_heads=2, intermediate_size=64,
                      image_size=32, patch_size=16, dropout=0.0)


def inputs(batch=2, length=7, vocab=100, image=32):
    g = torch.Generator().manual_seed(0)
    x0 = torch.randint(0, 500, (batch, length, 2), generator=g)
    bbox = torch.cat([x0, x0 + torch.randint(1, 400, (batch, length, 2), generator=g)], dim=-1)
    mask = torch.ones(batch, length, dtype=torch.long)
    mask[1, 5:] = 0
    return (torch.randint(5, vocab, (batch, length), generator=g), bbox, mask,
            torch.randn(batch, 3, image, image, generator=g))


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
    assert {"embeddings.x_position_embeddings.weight", "patch_embed.proj.weight", "encoder.rel_pos_x_bias.weight"} <= new
    assert not any(n.startswith("encoder.layer.") for n in new)
    # the copy is exact (BERT positions start at 0, as ours do)
    from transformers import AutoModel

    from docalign.models.pretrained import resolve_checkpoint

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
