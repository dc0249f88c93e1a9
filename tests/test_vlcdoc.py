"""VLCDoC: the cross-modal blocks and their masks, the two-view intra-modality term, the classification metrics
and the system (objective terms, weights, evaluation without side effects)."""

import math

import pytest
import torch
from test_losses import TEMP, assert_same_grads, naive_supcon, unit

from docalign.losses import supcon_intra_views
from docalign.metrics.confusion_image import confusion_image
from docalign.metrics.doc_accuracy import DocumentClassificationMetrics, confusion_matrix, macro_f1
from docalign.models.alignment import ImageEncoderConfig, TextEncoderConfig
from docalign.models.backbone import BackboneConfig
from docalign.models.vlcdoc import CrossModalLayer, VLCDocConfig, VLCDocModel
from docalign.systems import VLCDocClassification

VOCAB = 50
VISION = ImageEncoderConfig(timm_checkpoint=None, hidden_size=24, num_layers=1, num_heads=2)
TEXT = TextEncoderConfig(pretrained=None, hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64)
BACKBONE = BackboneConfig(
    text_init=None, hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64, image_size=32, patch_size=16
)


def tiny_model(**kwargs):
    torch.manual_seed(0)
    return VLCDocModel(VISION, TEXT, VLCDocConfig(depth=2, num_heads=2, embed_dim=8, **kwargs), VOCAB, 32, 16).eval()


def test_cross_modal_layer_shapes_and_a_padded_key_changes_nothing():
    torch.manual_seed(0)
    layer = CrossModalLayer(16, 2, 2.0, 0.0).eval()
    vision, text = torch.randn(2, 5, 16), torch.randn(2, 4, 16)
    pad = torch.tensor([[False, False, False, True], [False, False, False, False]])
    v, t = layer(vision, text, pad)
    assert v.shape == (2, 5, 16) and t.shape == (2, 4, 16)
    other = text.clone()
    other[0, 3] = 100.0  # a different padded token: every other output stays the same
    v2, t2 = layer(vision, other, pad)
    torch.testing.assert_close(v2, v)
    torch.testing.assert_close(t2[0, :3], t[0, :3])
    with pytest.raises(ValueError, match="width 15 must be divisible by model.vlcdoc.num_heads 2"):
        CrossModalLayer(15, 2, 2.0, 0.0)


def test_model_outputs_and_padding_the_text_changes_nothing():
    model = tiny_model()
    ids = torch.randint(5, VOCAB, (2, 6))
    mask = torch.ones(2, 6, dtype=torch.long)
    pixels = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        out = model(ids, None, mask, pixels)
        padded = model(
            torch.cat([ids, torch.randint(5, VOCAB, (2, 3))], 1),
            None,
            torch.cat([mask, torch.zeros(2, 3, dtype=torch.long)], 1),
            pixels,
        )
    assert out["visual"].shape == (2, 1 + 4, 32) and out["text"].shape == (2, 6, 32)
    assert out["pooled"].shape == (2, 64) and model.hidden_size == 64
    torch.testing.assert_close(out["vision_embed"].norm(dim=-1), torch.ones(2))
    for key in ("vision_embed", "text_embed", "pooled"):
        torch.testing.assert_close(padded[key], out[key], msg=key)
    torch.testing.assert_close(padded["text"][:, :6], out["text"])


def test_frozen_towers_get_no_gradients():
    model = tiny_model(freeze_vision=True).train()
    out = model(torch.randint(5, VOCAB, (2, 6)), None, torch.ones(2, 6, dtype=torch.long), torch.rand(2, 3, 32, 32))
    (out["pooled"].sum() + out["vision_embed"].sum()).backward()
    assert all(p.grad is None for p in model.vision_tower.parameters())
    assert all(p.grad is not None for p in model.text_tower.parameters() if p.requires_grad)
    assert model.vision_in.weight.grad is not None


def test_intra_views_term_equals_a_naive_loop_forward_and_gradients():
    vision, view, text = (unit(6, 8, seed=s, requires_grad=True) for s in (70, 71, 72))
    labels = torch.tensor([0, 1, 0, 2, 1, 0])  # class 2 has one document: its text anchor has no positive
    loss = supcon_intra_views(vision, view, text, labels, TEMP)["loss_intra"]
    both, both_labels = torch.cat([vision, view]), torch.cat([labels, labels])
    naive = (
        naive_supcon(both, both, both_labels, both_labels, TEMP, torch.arange(12))
        + naive_supcon(text, text, labels, labels, TEMP, torch.arange(6))
    ) / 2
    torch.testing.assert_close(loss.double(), naive)
    assert_same_grads(loss.double(), naive, (vision, view, text))


def test_intra_views_closed_form():
    # 2 documents of different classes, orthonormal features, the view equal to the image: each vision anchor has
    # one positive (its own view, logit s) among 3 keys (s, 0, 0); texts have no positive and are left out
    scale = 4.0
    feats = torch.eye(2, 8, dtype=torch.float64)
    labels = torch.tensor([0, 1])
    text = torch.eye(2, 8, dtype=torch.float64)
    vv = math.log(math.exp(scale) + 2) - scale
    value = supcon_intra_views(feats, feats, text, labels, 1 / scale)["loss_intra"].item()
    assert value == pytest.approx(vv / 2)


def test_confusion_matrix_macro_f1_and_its_image():
    gold = torch.tensor([0, 0, 1, 1, 2, -100])
    pred = torch.tensor([0, 1, 1, 1, 0, 2])
    confusion = confusion_matrix(pred, gold, 4)
    assert confusion.tolist() == [[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]]
    # per class F1: 0: 2*1/(2+1+1) = 0.5; 1: 2*2/(4+1+0) = 0.8; 2: 0; class 3 never occurs: left out
    assert macro_f1(confusion).item() == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    image = confusion_image(confusion, cell=4)
    assert image.shape == (3, 16, 16) and 0 <= image.min() and image.max() <= 1
    assert image[1, 6, 6] == 1.0 and image[0, 2, 6] == 0.5  # class 1 all right (green); half of class 0 -> 1 (red)
    metric = DocumentClassificationMetrics(num_classes=3)
    metric.update(
        torch.tensor([0, 0, 1]),
        torch.tensor([0, 1, 0]),
        torch.tensor([[2.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]]),
        torch.tensor([0, 0, 2]),
    )
    values = metric.compute()  # document 0's two windows averaged -> class 0 (right); document 1 right
    assert values["acc"].item() == 1.0 and values["macro_f1"].item() == 1.0


def tiny_system(**kwargs):
    torch.manual_seed(0)
    return VLCDocClassification(
        backbone=BACKBONE,
        vision=VISION,
        vlcdoc=VLCDocConfig(depth=1, num_heads=2, embed_dim=8),
        label_names=["a", "b", "c"],
        vocab_size=VOCAB,
        **kwargs,
    )


def batch():
    g = torch.Generator().manual_seed(1)
    return {
        "input_ids": torch.randint(5, VOCAB, (4, 6), generator=g),
        "attention_mask": torch.ones(4, 6, dtype=torch.long),
        "bbox": torch.zeros(4, 6, 4, dtype=torch.long),
        "pixel_values": torch.rand(4, 3, 32, 32, generator=g),
        "doc_label": torch.tensor([0, 1, 0, 2]),
        "doc_index": torch.arange(4),
        "window_index": torch.zeros(4),
    }


@pytest.mark.parametrize(
    "weights, terms",
    [
        ({}, {"loss_task", "loss_inter", "loss_intra"}),
        ({"inter_weight": 0.0}, {"loss_task", "loss_intra"}),
        ({"intra_weight": 0.0}, {"loss_task", "loss_inter"}),
    ],
)
def test_objective_terms_and_weights(weights, terms):
    system = tiny_system(**weights).train()
    b = batch()
    out = system(b)
    got = system.loss_terms(b, out)
    assert set(got) == terms
    assert (system.views is None) == ("loss_intra" not in terms)
    total = sum(system.weights[k] * v for k, v in got.items())
    total.backward()
    assert system.backbone.vision_proj.weight.grad is not None and system.classifier.weight.grad is not None
    assert all(torch.isfinite(v) for v in got.values())


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="all 0: nothing to train"):
        tiny_system(task_weight=0.0, inter_weight=0.0, intra_weight=0.0)
    with pytest.raises(ValueError, match="model.backbone.pretrained='microsoft/layoutlmv3-base'"):
        VLCDocClassification(backbone=BackboneConfig(pretrained="microsoft/layoutlmv3-base"), label_names=["a"])


def test_evaluation_augments_nothing_and_changes_no_parameter_or_buffer():
    system = tiny_system()
    before = {k: v.clone() for k, v in system.state_dict().items()}
    system.eval()
    b = batch()
    with torch.no_grad():
        first = system(b)["logits"]
        second = system(b)["logits"]
    torch.testing.assert_close(first, second)  # no random view, no dropout
    system.metrics["val"].update(b["doc_index"], b["window_index"], first, b["doc_label"])
    after = system.state_dict()
    assert before.keys() == after.keys()
    for k in before:
        torch.testing.assert_close(after[k], before[k], msg=k)
