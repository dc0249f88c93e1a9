import torch
from seqeval.metrics import f1_score

from docalign.metrics.entity_f1 import EntityF1

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


def test_word_order_windows_and_duplicates_do_not_matter():
    gold = ["B-PER", "I-PER", "O", "B-LOC", "I-LOC", "O"]
    pred = ["B-PER", "I-PER", "O", "B-LOC", "O", "O"]
    reference = f1_score([gold], [pred])
    m = EntityF1(NAMES)
    # two "windows" delivered out of order, plus a duplicated record (distributed sampler padding)
    m.update(torch.tensor([3, 3, 3]), torch.tensor([5, 3, 4]), ids([pred[5], pred[3], pred[4]]),
             ids([gold[5], gold[3], gold[4]]))
    m.update(torch.tensor([3, 3, 3, 3]), torch.tensor([2, 0, 1, 3]), ids([pred[2], pred[0], pred[1], pred[3]]),
             ids([gold[2], gold[0], gold[1], gold[3]]))
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
    assert segment_vote(["B-q", "B-q", "I-a", "O", "B-a", "I-a"], [7, 7, 7, 9, 9, 4]) == \
        ["B-q", "I-q", "I-q", "O", "O", "B-a"]
    # two segments with the same type next to each other stay two entities
    assert segment_vote(["B-q", "I-q", "I-q"], [1, 1, 2]) == ["B-q", "I-q", "B-q"]
    assert segment_vote([], []) == []


def test_box_key_is_equal_exactly_for_equal_boxes():
    from docalign.metrics.entity_f1 import box_key

    boxes = torch.tensor([[0, 0, 1000, 1000], [1000, 1000, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1], [0, 0, 1000, 1000]])
    keys = box_key(boxes).tolist()
    assert keys[0] == keys[4] and len(set(keys)) == 4


def test_segment_decoding_scores_decoded_and_reports_undecoded():
    # one document, gold: a 3-word question then a 2-word location; the model splits the question in two
    gold = ["B-PER", "I-PER", "I-PER", "B-LOC", "I-LOC"]
    pred = ["B-PER", "I-PER", "B-PER", "B-LOC", "I-LOC"]
    segments = torch.tensor([5, 5, 5, 8, 8])
    m = EntityF1(NAMES, segment_decoding=True)
    m.update(torch.zeros(5, dtype=torch.long), torch.arange(5), ids(pred), ids(gold), segments)
    out = m.compute()
    assert float(out["f1"]) == 1.0  # one PER over the first segment, one LOC over the second
    # undecoded: predicted PER(0-1), PER(2), LOC(3-4); gold PER(0-2), LOC(3-4): P = 1/3, R = 1/2 -> F1 0.4
    assert abs(float(out["f1_tokens"]) - 0.4) < 1e-6
    try:
        m.update(torch.zeros(1, dtype=torch.long), torch.arange(1), ids(["O"]), ids(["O"]))
    except ValueError as error:
        assert "segment" in str(error)
    else:
        raise AssertionError("segment decoding without segment keys must be refused")
