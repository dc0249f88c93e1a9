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
