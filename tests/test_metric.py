import os

import pytest
import torch
from seqeval.metrics import f1_score

from docalign.data.encoding import IGNORE_INDEX
from docalign.metrics.entity_f1 import EntityF1

from conftest import FUNSD_MISSING

NAMES = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def ids(tags):
    return torch.tensor([NAMES.index(t) for t in tags])


def test_matches_hand_computed_entity_f1():
    # doc 0 gold: PER(0-1), LOC(3); pred: PER(0-1) correct, LOC missed, spurious PER(4)
    # doc 1 gold: LOC(0-1); pred: LOC(0) only -> wrong boundary
    gold0, pred0 = ["B-PER", "I-PER", "O", "B-LOC", "O"], ["B-PER", "I-PER", "O", "O", "B-PER"]
    gold1, pred1 = ["B-LOC", "I-LOC"], ["B-LOC", "O"]
    m = EntityF1(NAMES)
    m.update(torch.zeros(5, dtype=torch.long), torch.arange(5), ids(pred0), ids(gold0))
    m.update(torch.ones(2, dtype=torch.long), torch.arange(2), ids(pred1), ids(gold1))
    out = m.compute()
    # true positives 1; predicted entities 3; gold entities 3 -> P = R = F1 = 1/3
    assert torch.isclose(out["precision"], torch.tensor(1 / 3))
    assert torch.isclose(out["recall"], torch.tensor(1 / 3))
    assert torch.isclose(out["f1"], torch.tensor(1 / 3))


def test_per_type_scores_by_hand_and_as_seqeval_reports_them():
    from seqeval.metrics import classification_report

    gold0, pred0 = ["B-PER", "I-PER", "O", "B-LOC", "O"], ["B-PER", "I-PER", "O", "O", "B-PER"]
    gold1, pred1 = ["B-LOC", "I-LOC"], ["B-LOC", "O"]
    m = EntityF1(NAMES)
    m.update(torch.zeros(5, dtype=torch.long), torch.arange(5), ids(pred0), ids(gold0))
    m.update(torch.ones(2, dtype=torch.long), torch.arange(2), ids(pred1), ids(gold1))
    out = m.compute()
    # PER: 1 gold, 2 predicted, 1 right -> P 1/2, R 1, F1 2/3; LOC: 2 gold, 1 predicted (wrong boundary) -> 0
    expected = {"PER": (0.5, 1.0, 2 / 3), "LOC": (0.0, 0.0, 0.0)}
    report = classification_report([gold0, gold1], [pred0, pred1], output_dict=True, zero_division=0)
    for kind, (p, r, f) in expected.items():
        got = (float(out[f"precision_{kind}"]), float(out[f"recall_{kind}"]), float(out[f"f1_{kind}"]))
        assert got == pytest.approx((p, r, f), abs=1e-6)
        assert got == pytest.approx(tuple(report[kind][k] for k in ("precision", "recall", "f1-score")), abs=1e-6)
    assert set(EntityF1(NAMES).compute()) == set(out)  # an empty metric has the same names (zeros)


def test_word_order_windows_and_duplicates_do_not_matter():
    gold = ["B-PER", "I-PER", "O", "B-LOC", "I-LOC", "O"]
    pred = ["B-PER", "I-PER", "O", "B-LOC", "O", "O"]
    reference = f1_score([gold], [pred])
    m = EntityF1(NAMES)
    # two "windows" delivered out of order, plus a duplicated record (distributed sampler padding)
    m.update(
        torch.tensor([3, 3, 3]),
        torch.tensor([5, 3, 4]),
        ids([pred[5], pred[3], pred[4]]),
        ids([gold[5], gold[3], gold[4]]),
    )
    m.update(
        torch.tensor([3, 3, 3, 3]),
        torch.tensor([2, 0, 1, 3]),
        ids([pred[2], pred[0], pred[1], pred[3]]),
        ids([gold[2], gold[0], gold[1], gold[3]]),
    )
    golds, preds = m.sequences()
    assert golds == [gold] and preds == [pred]
    assert abs(float(m.compute()["f1"]) - reference) < 1e-6


def test_entities_do_not_leak_across_documents():
    m = EntityF1(NAMES)
    # doc 0 ends with B-PER, doc 1 starts with I-PER: must be two entities, not one
    m.update(torch.tensor([0, 1]), torch.tensor([0, 0]), ids(["B-PER", "I-PER"]), ids(["B-PER", "I-PER"]))
    golds, _ = m.sequences()
    assert golds == [["B-PER"], ["I-PER"]]


def test_empty_metric_is_zero():
    assert float(EntityF1(NAMES).compute()["f1"]) == 0.0


def test_segment_vote_by_hand():
    from docalign.metrics.entity_f1 import segment_vote

    # segment 7: types q, q, a -> q; segment 9: O, a -> tie, the first seen (O) wins; segment 4: one word a
    assert segment_vote(["B-q", "B-q", "I-a", "O", "B-a", "I-a"], [7, 7, 7, 9, 9, 4]) == [
        "B-q",
        "I-q",
        "I-q",
        "O",
        "O",
        "B-a",
    ]
    # two segments with the same type next to each other stay two entities
    assert segment_vote(["B-q", "I-q", "I-q"], [1, 1, 2]) == ["B-q", "I-q", "B-q"]
    assert segment_vote([], []) == []


def test_f1_is_seqeval_over_word_tags_and_f1_segments_is_given_the_gold_segments():
    # one document, gold: a 3-word question then a 2-word location; the model splits the question in two
    gold = ["B-PER", "I-PER", "I-PER", "B-LOC", "I-LOC"]
    pred = ["B-PER", "I-PER", "B-PER", "B-LOC", "I-LOC"]
    segments = torch.tensor([5, 5, 5, 8, 8])
    m = EntityF1(NAMES, segment_decoding=True)
    m.update(torch.zeros(5, dtype=torch.long), torch.arange(5), ids(pred), ids(gold), segments)
    out = m.compute()
    # f1, by hand: predicted PER(0-1), PER(2), LOC(3-4); gold PER(0-2), LOC(3-4): 1 hit of 3 predicted, of 2 gold
    # -> P 1/3, R 1/2, F1 0.4; and exactly seqeval's on the word tags
    assert abs(float(out["f1"]) - 0.4) < 1e-6 and abs(float(out["f1"]) - f1_score([gold], [pred])) < 1e-6
    assert abs(float(out["precision"]) - 1 / 3) < 1e-6 and abs(float(out["recall"]) - 0.5) < 1e-6
    assert float(out["f1_segments"]) == 1.0  # one PER over the first segment, one LOC over the second
    assert float(out["precision_segments"]) == 1.0 and float(out["recall_segments"]) == 1.0
    assert "f1_tokens" not in out
    plain = EntityF1(NAMES)  # without segment decoding: the same f1, and no segment scores
    plain.update(torch.zeros(5, dtype=torch.long), torch.arange(5), ids(pred), ids(gold))
    assert plain.compute()["f1"] == out["f1"] and "f1_segments" not in plain.compute()
    try:
        m.update(torch.zeros(1, dtype=torch.long), torch.arange(1), ids(["O"]), ids(["O"]))
    except ValueError as error:
        assert "segment" in str(error)
    else:
        raise AssertionError("segment decoding without segment keys must be refused")


# ---- segments reach the metric as the encoder's segment_ids ------------------------------------------------------


@pytest.mark.skipif(not os.environ.get("DOCALIGN_FUNSD"), reason=FUNSD_MISSING)
def test_funsd_segment_ids_group_words_as_equal_boxes_did_and_decode_to_the_same_f1(minilm_tokenizer):
    """On the real FUNSD test split with segment boxes (funsd_ft's layout): two consecutive words share a segment id
    exactly when they share a 0-1000 box (the rule segment decoding applied to the boxes before the encoder emitted
    the ids), and noisy predictions decoded by segment id score bit for bit what decoding by box scored."""
    from docalign.data.encoding import DocumentEncoder, collate_windows
    from docalign.data.readers.funsd import FUNSD_LABELS, FUNSDReader
    from docalign.data.repairs import RepairLog

    docs = list(FUNSDReader(os.environ["DOCALIGN_FUNSD"], segment_boxes=True).read("test"))
    names, repairs = FUNSD_LABELS, RepairLog(strict=True)
    encoder = DocumentEncoder(minilm_tokenizer, names, max_length=128, stride=32, image_size=None, repairs=repairs)
    windows = [w for i, doc in enumerate(docs) for w in encoder.encode(doc, i)]
    assert len(windows) > len(docs)  # long pages: segments are numbered per document, across its windows
    by_ids, by_boxes = EntityF1(names, segment_decoding=True), EntityF1(names, segment_decoding=True)
    box_keys: dict[tuple[int, ...], int] = {}
    words: dict[int, dict[int, tuple[tuple[int, ...], int]]] = {}
    generator = torch.Generator().manual_seed(0)
    for start in range(0, len(windows), 8):
        batch = collate_windows(windows[start : start + 8], minilm_tokenizer.pad_token_id)
        scored = batch["scored"] & (batch["labels"] != IGNORE_INDEX)
        pred = batch["labels"].clone()
        noise = torch.rand(pred.shape, generator=generator) < 0.3
        pred[noise] = torch.randint(0, len(names), pred.shape, generator=generator)[noise]
        doc = batch["doc_index"].unsqueeze(1).expand_as(scored)
        boxes = [tuple(b) for b in batch["bbox"][scored].tolist()]
        keys = torch.tensor([box_keys.setdefault(b, len(box_keys)) for b in boxes])
        args = (doc[scored], batch["word_ids"][scored], pred[scored], batch["labels"][scored])
        by_ids.update(*args, batch["segment_ids"][scored])
        by_boxes.update(*args, keys)
        for d, w, b, s in zip(
            doc[scored].tolist(), batch["word_ids"][scored].tolist(), boxes, batch["segment_ids"][scored].tolist()
        ):
            words.setdefault(d, {})[w] = (b, s)
    assert sorted(words) == list(range(len(docs)))
    for d, by_word in words.items():
        assert sorted(by_word) == list(range(len(docs[d].words)))  # every word scored once
        boxes, segments = zip(*(by_word[w] for w in sorted(by_word)))
        assert segments[0] == 0
        for i in range(1, len(segments)):
            assert segments[i] - segments[i - 1] == (boxes[i] != boxes[i - 1])
    assert by_ids.compute() == by_boxes.compute()  # every value equal, f1 and f1_segments included
    assert 0.5 < float(by_ids.compute()["f1_segments"]) < 1  # real entities, really decoded


class _Fixed(torch.nn.Module):
    """A stand-in backbone: text states that make the classifier's argmax a fixed function of the token."""

    hidden_size = 4

    def forward(self, input_ids, bbox, attention_mask, pixel_values=None):
        return {"text": torch.nn.functional.one_hot(input_ids % 4, 4).float()}


def test_token_classification_takes_segments_from_segment_ids_not_from_boxes():
    """Every word of the page has one box, but the encoder said the page has two segments (e.g. two entities that
    a reader kept apart): predictions, the metric and ``document_tags`` must follow ``segment_ids``. A consumer that
    grouped words by their boxes again would make one segment of the four words."""
    from docalign.models.backbone import BackboneConfig
    from docalign.systems.token_classification import TokenClassification, document_tags

    tiny = BackboneConfig(
        text_init=None, hidden_size=8, num_layers=1, num_heads=2, intermediate_size=8, image_size=32, patch_size=16
    )
    model = TokenClassification(backbone=tiny, label_names=NAMES, vocab_size=8, segment_decoding=True)
    model.backbone = _Fixed()
    model.classifier = torch.nn.Linear(4, len(NAMES))
    with torch.no_grad():  # token id t -> class t % 4 + 1: B-PER, I-PER, B-LOC, I-LOC
        model.classifier.weight.copy_(torch.cat([torch.zeros(1, 4), torch.eye(4)]) * 10)
        model.classifier.bias.zero_()
    model.eval()
    batch = {
        "input_ids": torch.tensor([[0, 4, 1, 2, 3, 0]]),
        "attention_mask": torch.ones(1, 6, dtype=torch.long),
        "bbox": torch.tensor([[[0] * 4] + [[10, 10, 90, 20]] * 4 + [[1000] * 4]]),
        "labels": ids(["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "O"])
        .unsqueeze(0)
        .masked_fill(torch.tensor([[True, False, False, False, False, True]]), IGNORE_INDEX),
        "word_ids": torch.tensor([[-1, 0, 1, 2, 3, -1]]),
        "segment_ids": torch.tensor([[-1, 0, 0, 1, 1, -1]]),
        "scored": torch.tensor([[False, True, True, True, True, False]]),
        "doc_index": torch.tensor([7]),
        "window_index": torch.tensor([0]),
    }
    with torch.no_grad():
        rows = model.predict_step(batch, 0)
        model._evaluate(batch, "val")
    assert [r["label"] for r in rows] == ["B-PER", "I-PER", "B-LOC", "I-LOC"]  # the undecoded predictions
    assert [r["segment"] for r in rows] == [0, 0, 1, 1]
    assert document_tags(rows, segment_decoding=True) == {7: ["B-PER", "I-PER", "B-LOC", "I-LOC"]}
    out = model.metrics["val"].compute()
    assert float(out["f1_segments"]) == 1.0  # by box, the four words would be one PER entity: F1 0
