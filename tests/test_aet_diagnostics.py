"""AET's collapse diagnostics: cross-document CLS cosine, PITA matched vs mismatched, DITC/IMC against chance."""

import math

import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from test_aet import data, system, trainer  # noqa: F401  (data: the module's fixture)

from docalign.data.encoding import collate_windows
from docalign.losses import (
    batch_contrast,
    contrast_chance,
    ditc_loss,
    imc_loss,
    mean_cross_cosine,
    pita_similarity,
)


def two_documents(data):  # noqa: F811
    """A batch of the first window of two different training documents."""
    firsts = {w.doc_index: w for w in reversed(data.windows["train"])}
    return collate_windows(list(firsts.values())[:2], pad_token_id=data.tokenizer.pad_token_id)


def test_cross_document_cosine_is_the_off_diagonal_mean_leaving_out_one_documents_windows():
    x = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 3.0]])
    # pairs (0,1) cos 1, (0,2) 0, (1,2) 0, both directions: mean 1/3
    assert float(mean_cross_cosine(x)) == pytest.approx(1 / 3)
    # rows 0 and 1 are two windows of one document: only the cross-document pairs (cos 0) count
    assert float(mean_cross_cosine(x, torch.tensor([4, 4, 9]))) == 0.0
    assert float(mean_cross_cosine(torch.ones(3, 5))) == pytest.approx(1.0)  # collapsed
    assert mean_cross_cosine(x[:1]) is None and mean_cross_cosine(x[:2], torch.tensor([1, 1])) is None


def test_pita_similarity_by_hand():
    # one document, 3 patches; tokens 0, 1 in patch 0, token 2 in patch 2, token 3 in no patch
    visual = torch.tensor([[[1.0, 0.0], [5.0, 5.0], [0.0, 1.0]]])
    tokens = torch.tensor([[[2.0, 0.0], [4.0, 0.0], [0.0, 7.0], [1.0, 1.0]]])
    index = torch.tensor([[0, 0, 2, -1]])
    out = pita_similarity(visual, tokens, index)
    assert float(out["pita_matched"]) == pytest.approx(1.0)  # each patch's text points where its visual feature does
    assert float(out["pita_mismatched"]) == pytest.approx(0.0)  # patch 0's text vs patch 2's visual and back
    collapsed = pita_similarity(torch.ones(1, 3, 2), torch.ones(1, 4, 2), index)  # features that ignore the page
    assert float(collapsed["pita_matched"]) == pytest.approx(float(collapsed["pita_mismatched"])) == pytest.approx(1)
    assert pita_similarity(visual, tokens, torch.full((1, 4), -1)) == {}


def test_chance_is_log_of_the_candidate_keys_and_a_collapsed_encoder_scores_exactly_it():
    torch.manual_seed(0)
    same = F.normalize(torch.ones(4, 8), dim=-1)  # every document has the same feature: nothing to tell apart
    queue = same[:1].expand(6, -1).clone()
    loss = ditc_loss(same, same, same, same, queue, queue, 0.07)["loss_ditc"]
    chance = contrast_chance(4, 6)
    assert float(chance) == pytest.approx(math.log(10)) and float(loss) == pytest.approx(float(chance), rel=1e-5)
    # mask_same_document: queue rows of the query's own document are left out of its candidates
    docs, queue_ids = torch.tensor([0, 1, 2, 3]), torch.tensor([0, 0, 1, -1, 5, 5])
    masked = imc_loss(same, same, queue, same, same, queue, 0.07, docs, queue_ids, queue_ids)["loss_imc"]
    by_hand = torch.tensor([10 - 2, 10 - 1, 10, 10], dtype=torch.float).log().mean()
    chance = contrast_chance(4, 6, docs, queue_ids)
    assert float(chance) == pytest.approx(float(by_hand)) and float(masked) == pytest.approx(float(chance), rel=1e-5)
    # a collapsed encoder whose queued keys are stale (another direction) falls log((B + K) / B) under chance, but
    # not under the batch's own chance log(B): that needs telling documents apart
    stale = F.normalize(torch.tensor([[1.0] * 4 + [-1.0] * 4]), dim=-1).expand(6, -1).clone()
    fresh_only = ditc_loss(same, same, same, same, stale, stale, 0.07)["loss_ditc"]
    assert float(contrast_chance(4, 6) - fresh_only) == pytest.approx(math.log(10 / 4), abs=1e-3)
    assert float(contrast_chance(4, 0) - fresh_only) == pytest.approx(0.0, abs=1e-3)
    # an encoder that tells documents apart scores under chance
    distinct = torch.eye(4, 8)
    assert float(ditc_loss(distinct, distinct, distinct, distinct, None, None, 0.07)["loss_ditc"]) < math.log(4) - 1


def test_batch_contrast_for_evaluation_uses_other_documents_only():
    same = F.normalize(torch.ones(3, 4), dim=-1)
    out = batch_contrast(same, same, 0.1, torch.tensor([1, 1, 2]))
    # query 0: candidates {0 (itself, positive), 2}; 1: {1, 2}; 2: {0, 1, 2}
    chance = torch.tensor([2.0, 2.0, 3.0]).log().mean()
    assert float(out["ditc_batch_chance"]) == pytest.approx(float(chance))
    assert float(out["ditc_batch"]) == pytest.approx(float(chance), rel=1e-5)
    assert batch_contrast(same[:2], same[:2], 0.1, torch.tensor([7, 7])) == {}


def test_a_collapsed_image_encoder_reads_one(data):  # noqa: F811
    model = system(data)
    with torch.no_grad():  # the ViT's last LayerNorm outputs a constant: every page's features are the same
        model.alignment.encoders.image.vit.norm.weight.zero_()
        model.alignment.encoders.image.vit.norm.bias.fill_(1.0)
    model.eval()
    batch = two_documents(data)
    diag = model.alignment.diagnostics(batch, model(batch))
    assert float(diag["image_cls_cos"]) == pytest.approx(1.0) and float(diag["image_cls_cos_proj"]) == pytest.approx(1)
    assert -1 <= float(diag["text_cls_cos"]) <= 1  # (a random 1-layer text encoder's CLS is near-constant too: 1.0)
    assert 0 < float(diag["pita_tokens_in_one_patch"]) <= 1
    assert {"pita_matched", "pita_mismatched", "ditc_batch", "ditc_batch_chance"} <= set(diag)
    assert float(diag["ditc_batch"]) == pytest.approx(float(diag["ditc_batch_chance"]), rel=1e-4)


def test_every_aet_run_logs_the_diagnostics_to_tensorboard_in_training_and_validation(data, tmp_path):  # noqa: F811
    model = system(data)
    logger = TensorBoardLogger(str(tmp_path), name="aet")
    # whole validation: its first batch holds two windows of one document (no cross-document pair), the second two
    run = trainer(tmp_path, max_steps=2, limit_train_batches=2, limit_val_batches=None, logger=logger)
    run.fit(model, datamodule=data)
    events = EventAccumulator(str(tmp_path / "aet" / "version_0"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    common = {"image_cls_cos", "text_cls_cos", "image_cls_cos_proj", "text_cls_cos_proj", "pita_matched"}
    train = common | {"contrast_chance", "ditc_under_chance", "imc_under_chance"}
    train |= {"contrast_batch_chance", "ditc_under_batch_chance", "imc_under_batch_chance"}
    assert {f"train/diag/{n}" for n in train} <= tags
    assert {f"val/diag/{n}" for n in common | {"ditc_batch", "ditc_batch_chance"}} <= tags
    # the chance level grows with the queue: 2 batch keys, then 2 + 2 queued
    chance = [e.value for e in events.Scalars("train/diag/contrast_chance")]
    assert chance == pytest.approx([math.log(2), math.log(4)])
    loss, under = events.Scalars("train/loss_ditc")[0].value, events.Scalars("train/diag/ditc_under_chance")[0].value
    assert under == pytest.approx(math.log(2) - loss, abs=1e-5)
    # without the queue the chance stays the batch's: log(2) both steps, the second loss measured against it
    batch_chance = [e.value for e in events.Scalars("train/diag/contrast_batch_chance")]
    assert batch_chance == pytest.approx([math.log(2), math.log(2)])
    loss, under = (
        events.Scalars("train/loss_ditc")[1].value,
        events.Scalars("train/diag/ditc_under_batch_chance")[1].value,
    )
    assert under == pytest.approx(math.log(2) - loss, abs=1e-5)
