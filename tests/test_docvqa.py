"""Document QA end to end: ANLS and Levenshtein against hand-computed values, the QA encoding round trip and its
windows, span decoding and the merge of windows, the DocVQA DataModule on the release fixture (unlocated answers,
the test split, the cache), ANLS across 2 real processes, and `docalign fit` at tiny size."""

import json
import logging
import random
import shutil
import socket
from pathlib import Path

import lightning as L
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from PIL import Image
from test_training import scalars

from docalign.cli import cli_main
from docalign.conventions import IGNORE_INDEX
from docalign.data import DocumentDataModule, DocVQA
from docalign.data.document import Document, QAPair
from docalign.data.qa_encoding import SKIPPED, QAEncoder, collate_qa
from docalign.data.repairs import DataError, RepairLog
from docalign.metrics.anls import ANLS, anls_score, levenshtein, normalise_answer
from docalign.models.backbone import BackboneConfig
from docalign.systems.extractive_qa import ExtractiveQA, best_spans, span_text

from conftest import FIXTURES, cli_args

TINY = BackboneConfig(
    text_init=None, hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, image_size=32, patch_size=16
)


# ---- Levenshtein and ANLS --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "a, b, distance",
    [
        ("kitten", "sitting", 3),
        ("flaw", "lawn", 2),
        ("intention", "execution", 5),
        ("", "abc", 3),
        ("abc", "", 3),
        ("", "", 0),
        ("same", "same", 0),
        ("ab", "ba", 2),
        ("1/8/93", "1/8/1993", 2),
    ],
)
def test_levenshtein_on_known_pairs(a, b, distance):
    assert levenshtein(a, b) == distance == levenshtein(b, a)


def test_anls_per_question_matches_hand_computed_values():
    assert anls_score("1/8/93", ["1/8/93"]) == 1.0  # exact match
    assert anls_score("0123456789", ["0123456780"]) == pytest.approx(0.9)  # 1 edit in 10 characters
    assert anls_score("abcdefghij", ["abcdefgxyz"]) == pytest.approx(0.7)  # 3 edits in 10
    assert anls_score("abcd", ["abxy"]) == 0.0  # NL = 0.5 is not < 0.5
    assert anls_score("abcdef", ["abcxyz"]) == 0.0 and anls_score("cat", ["dog"]) == 0.0
    # several gold answers: the best one counts (1 edit in 11 characters beats 1 in 10, and "zzz" gives 0)
    assert anls_score("abcdefghij", ["abcdefghiX", "zzz", "abcdefghij!"]) == pytest.approx(1 - 1 / 11)
    assert anls_score("abcdefghij", ["zzz", "abcdefghiX"]) == pytest.approx(0.9)
    assert anls_score("Orcutt", ["R. H. Orcutt", "Orcutt"]) == 1.0
    # normalisation: case and white space (both ends, runs inside) do not matter; inner spaces do
    assert normalise_answer("  The   TOTAL\t") == "the total"
    assert anls_score("  THE  total ", ["the total"]) == 1.0
    assert anls_score("$300", ["$ 300"]) == pytest.approx(1 - 1 / 5)
    assert anls_score("", ["abc"]) == 0.0 and anls_score("", [""]) == 1.0 and anls_score("abc", []) == 0.0


def test_anls_metric_merges_windows_by_best_score_and_drops_sampler_repeats():
    metric = ANLS()
    # (doc 0, question 0): window 1 scores best and is exact -> 1.0 (window 0 alone would give 0)
    # (doc 0, question 1): one window, one edit in 10 characters -> 0.9
    # (doc 1, question 0): window 0 (-1.0) beats window 1 (-2.0) -> "cat" vs "dog" = 0; its repeat of window 1 with
    #   another score is dropped (the first record of a window counts)
    # (doc 2, question 0): no gold answer (test split): not scored
    metric.update(
        torch.tensor([0, 0, 1]),
        torch.tensor([0, 1, 0]),
        torch.tensor([0, 0, 0]),
        torch.tensor([-3.0, -0.5, -1.0]),
        ["wrong", "0123456789", "cat"],
        [["memo"], ["0123456780"], ["dog"]],
    )
    metric.update(
        torch.tensor([0, 1, 1, 2]),
        torch.tensor([0, 0, 0, 0]),
        torch.tensor([1, 1, 1, 0]),
        torch.tensor([-0.1, -2.0, 5.0, 0.0]),
        ["Memo", "dog", "dog", "x"],
        [["memo"], ["dog"], ["dog"], []],
    )
    best = metric.per_question()
    assert best[(0, 0)] == (1, pytest.approx(-0.1), 1.0) and best[(1, 0)][0] == 0
    assert float(metric.compute()) == pytest.approx((1.0 + 0.9 + 0.0) / 3)
    metric.reset()
    assert float(metric.compute()) == 0.0  # nothing seen: 0, not an error
    with pytest.raises(ValueError, match="one entry per record"):
        metric.update(torch.tensor([0]), torch.tensor([0]), torch.tensor([0]), torch.tensor([0.0]), ["a", "b"], [["a"]])


WORLD = 2
# 4 questions, 6 windows. The sampler pads rank 1 with a repeat of rank 0's first window (doc 0, q 0, window 0).
RECORDS = [  # doc, question, window, score, prediction, answers
    (0, 0, 0, -1.0, "abcdefghij", ["abcdefghiX"]),
    (0, 0, 1, -2.0, "zzz", ["abcdefghiX"]),
    (0, 1, 0, -0.5, "1998", ["1998"]),
    (1, 0, 0, -4.0, "no", ["yes"]),
    (1, 0, 1, -3.0, "yes", ["yes"]),
    (2, 0, 0, -1.0, "Orcut", ["Orcutt"]),
]


def _update(metric, rows):
    d, q, w, s, p, a = zip(*rows)
    metric.update(torch.tensor(d), torch.tensor(q), torch.tensor(w), torch.tensor(s), list(p), [list(x) for x in a])


def _anls_worker(rank, port):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        metric = ANLS()
        # interleaved like a DistributedSampler: rank r gets records r, r + 2, ...; rank 1 gets a padding repeat,
        # with another score (as if computed in another batch): it must not change the result
        rows = RECORDS[rank::WORLD] + ([(0, 0, 0, 9.0, "zzz", ["abcdefghiX"])] if rank == 1 else [])
        _update(metric, rows)
        expected = (0.9 + 1.0 + 1.0 + (1 - 1 / 6)) / 4
        assert float(metric.compute()) == pytest.approx(expected)
    finally:
        dist.destroy_process_group()


@pytest.mark.ddp
def test_anls_across_two_processes_equals_one_process():
    one = ANLS()
    _update(one, RECORDS)
    assert float(one.compute()) == pytest.approx((0.9 + 1.0 + 1.0 + (1 - 1 / 6)) / 4)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_anls_worker, args=(port,), nprocs=WORLD, join=True)


# ---- the QA encoding -------------------------------------------------------------------------------------------------


def qa_page(n_words, pairs, source="page.json"):
    words = [f"w{i}" for i in range(n_words)]
    boxes = [(10 * (i % 20), 10 * (i // 20), 10 * (i % 20) + 8, 10 * (i // 20) + 8) for i in range(n_words)]
    return Document("page-1", Image.new("L", (200, 200), 255), words, boxes, qa_pairs=pairs, source=source)


def assert_round_trip(windows, docs):
    """Each located answer's target tokens map back to exactly its words; no page word is lost."""
    for w in windows:
        pair = docs[w.doc_index].qa_pairs[w.question_index]
        if w.start_position <= 0:
            continue
        first, last = pair.answer_spans[0]
        covered = w.word_ids[w.start_position : w.end_position + 1]
        assert covered[0] == first and covered[-1] == last and sorted(set(covered)) == list(range(first, last + 1))
        # the start is the first word's first sub-token, the end the last word's last sub-token
        assert w.word_ids[w.start_position - 1] != first and w.word_ids[w.end_position + 1] != last
        assert " ".join(w.words[first : last + 1]) == " ".join(docs[w.doc_index].words[first : last + 1])
    for d, doc in enumerate(docs):
        seen = {i for w in windows if w.doc_index == d for i in w.word_ids if i >= 0}
        assert seen == set(range(len(doc.words)))


@pytest.mark.parametrize("tokenizer", ["minilm_tokenizer", "bpe_tokenizer"])
def test_qa_encoding_round_trip_on_the_release_fixture(tokenizer, request):
    from docalign.data.readers import DocVQAReader

    tok = request.getfixturevalue(tokenizer)
    reader = DocVQAReader(FIXTURES / "docvqa", strict=True)
    docs = list(reader.read("train")) + list(reader.read("val"))
    encoder = QAEncoder(tok, max_length=128, stride=8, image_size=32, max_question_tokens=64)
    windows = [w for i, doc in enumerate(docs) for w in encoder.encode(doc, i)]
    assert not encoder.repairs.counts  # no question was cut
    assert_round_trip(windows, docs)
    located = [w for w in windows if w.start_position > 0]
    # date, addressee (its first span, "R. H. Orcutt"), 1998, "$ 300": every located answer is some window's target
    assert {(w.doc_index, w.question_index) for w in located} == {(0, 0), (0, 1), (1, 0), (2, 0)}
    addressee = next(w for w in located if w.answers == ["R. H. Orcutt", "Orcutt"])
    assert addressee.words[5:8] == ["R.", "H.", "Orcutt"] and addressee.word_ids[addressee.start_position] == 5
    fax = next(w for w in windows if w.answers == ["910-741-0673"])  # not in the OCR: kept without a target
    assert (fax.start_position, fax.end_position) == (IGNORE_INDEX, IGNORE_INDEX)
    # layout: [CLS] question [SEP] page [SEP]; question tokens carry no word and the zero box
    w = located[0]
    n_question = w.word_ids.index(0) - 2 if 0 in w.word_ids else None
    question = tok(w.question.split(), is_split_into_words=True, add_special_tokens=False)["input_ids"]
    assert n_question == len(question) and w.input_ids[1 : 1 + n_question] == question
    assert w.input_ids[0] == tok.cls_token_id and w.input_ids[n_question + 1] == tok.sep_token_id
    assert w.input_ids[-1] == tok.sep_token_id and set(w.word_ids[: n_question + 2]) == {-1}
    assert w.bbox[: n_question + 1] == [[0, 0, 0, 0]] * (n_question + 1) and w.bbox[n_question + 1] == [1000] * 4
    assert all(label == IGNORE_INDEX for label in w.labels) and not any(w.scored)


def test_a_long_page_has_exactly_one_window_holding_the_span_and_loses_no_word(minilm_tokenizer):
    # 60 words of 1-2 sub-tokens in 32-token windows (the question takes a few): several windows per question.
    # Words 49-50 lie in one window only (45-56; its neighbours cover 36-47 and 54-59). A span in the overlap of two
    # windows is a target in both (test_a_span_is_a_target_exactly_in_the_windows_that_hold_all_its_sub_tokens).
    doc = qa_page(60, [QAPair("where is w49 ?", ["w49 w50"], [(49, 50)]), QAPair("first?", ["w0"], [(0, 0)])])
    encoder = QAEncoder(minilm_tokenizer, max_length=32, stride=6, image_size=None, max_question_tokens=8)
    windows = encoder.encode(doc, 0)
    by_question = [[w for w in windows if w.question_index == q] for q in (0, 1)]
    assert all(len(ws) >= 3 for ws in by_question)  # the page is cut into several windows per question
    assert [w.window_index for w in by_question[0]] == list(range(len(by_question[0])))
    for ws, (first, last) in zip(by_question, [(49, 50), (0, 0)]):
        holding = [w for w in ws if w.start_position > 0]
        assert len(holding) == 1
        assert holding[0].word_ids[holding[0].start_position] == first
        assert holding[0].word_ids[holding[0].end_position] == last
        assert all((w.start_position, w.end_position) == (0, 0) for w in ws if w is not holding[0])  # CLS
        assert max(len(w.input_ids) for w in ws) == 32
    assert_round_trip(windows, [doc])
    batch = collate_qa(windows, pad_token_id=minilm_tokenizer.pad_token_id)
    assert batch["start_positions"].shape == (len(windows),) and batch["words"][0] is doc.words


@pytest.mark.parametrize("span", [(20, 22), (31, 33), (0, 0), (39, 39), (20, 27)])
def test_a_span_is_a_target_exactly_in_the_windows_that_hold_all_its_sub_tokens(minilm_tokenizer, span):
    doc = qa_page(40, [QAPair("q", ["a"], [span])])
    windows = QAEncoder(minilm_tokenizer, max_length=16, stride=4, image_size=None, max_question_tokens=4).encode(
        doc, 0
    )
    total = sum(len(minilm_tokenizer.tokenize(word)) for word in doc.words[span[0] : span[1] + 1])
    assert len(windows) > 5
    for w in windows:
        held = sum(span[0] <= i <= span[1] for i in w.word_ids)
        if held == total:
            assert w.word_ids[w.start_position] == span[0] and w.word_ids[w.end_position] == span[1]
        else:  # not in this window, or cut by its edge: [CLS]
            assert (w.start_position, w.end_position) == (0, 0)
    # 8 words of 15 sub-tokens never fit in 12 page tokens: no window holds (20, 27); every other span has one
    assert any(w.start_position > 0 for w in windows) == (span != (20, 27))


def test_long_questions_and_bad_spans_are_repaired_and_counted_or_raised(minilm_tokenizer):
    long_question = " ".join(["word"] * 30)
    doc = qa_page(5, [QAPair(long_question, ["w1"], [(1, 1)]), QAPair("q", ["w9"], [(9, 9)])])
    repairs = RepairLog()
    encoder = QAEncoder(
        minilm_tokenizer, max_length=32, stride=4, image_size=None, max_question_tokens=8, repairs=repairs
    )
    first, second = encoder.encode(doc, 0)
    assert first.input_ids[1:10].count(minilm_tokenizer.convert_tokens_to_ids("word")) == 8
    assert first.input_ids[9] == minilm_tokenizer.sep_token_id and first.word_ids[first.start_position] == 1
    assert (second.start_position, second.end_position) == (IGNORE_INDEX, IGNORE_INDEX)
    assert sum(repairs.counts.values()) == 2 and "question of 30 sub-tokens" in repairs.summary()
    with pytest.raises(DataError, match=r"page\.json: field 'qa_pairs\[0\]\.question'"):
        QAEncoder(
            minilm_tokenizer,
            max_length=32,
            stride=4,
            image_size=None,
            max_question_tokens=8,
            repairs=RepairLog(strict=True),
        ).encode(doc, 0)
    bad_span = qa_page(5, [QAPair("q", ["w9"], [(3, 9)])])
    with pytest.raises(DataError, match=r"field 'qa_pairs\[0\]\.answer_spans\[0\]'.*\(3, 9\)"):
        QAEncoder(
            minilm_tokenizer,
            max_length=32,
            stride=4,
            image_size=None,
            max_question_tokens=8,
            repairs=RepairLog(strict=True),
        ).encode(bad_span, 0)
    with pytest.raises(ValueError, match="max_question_tokens=30"):
        QAEncoder(minilm_tokenizer, max_length=32, stride=4, max_question_tokens=30)


def test_training_skips_unlocated_answers_and_counts_them(minilm_tokenizer):
    doc = qa_page(5, [QAPair("a?", ["w1"], [(1, 1)]), QAPair("b?", ["nowhere"], []), QAPair("c?", [], [])])
    train = QAEncoder(
        minilm_tokenizer, max_length=32, stride=4, image_size=None, max_question_tokens=8, skip_unlocated=True
    )
    assert [w.question_index for w in train.encode(doc, 0)] == [0]
    assert train.stats[SKIPPED] == 2
    evaluation = QAEncoder(minilm_tokenizer, max_length=32, stride=4, image_size=None, max_question_tokens=8)
    assert [w.question_index for w in evaluation.encode(doc, 0)] == [0, 1, 2] and not evaluation.stats


# ---- decoding --------------------------------------------------------------------------------------------------------


def test_best_spans_picks_the_right_span_under_the_constraints():
    # tokens: [CLS] q q [SEP] w0 w1 w1 w2 w3 [SEP] pad      (w1 has two sub-tokens)
    word_ids = torch.tensor([[-1, -1, -1, -1, 0, 1, 1, 2, 3, -1, -1]] * 4)
    mask = torch.tensor([[1] * 10 + [0]] * 4)
    start = torch.zeros(4, 11)
    end = torch.zeros(4, 11)
    start[0, 5], end[0, 7] = 5.0, 5.0  # w1..w2
    start[1, 1], end[1, 2] = 50.0, 50.0  # the question tokens score highest: never a span
    start[1, 6], end[1, 6] = 3.0, 3.0  # -> w1 alone (its second sub-token)
    start[2, 8], end[2, 4] = 9.0, 9.0  # end before start (18): not allowed; (4, 4) and (8, 8) give 9
    start[2, 5], end[2, 7] = 5.0, 5.0  # -> w1..w2 (10)
    start[3, 10], end[3, 10] = 99.0, 99.0  # padding never counts
    start[3, 4], end[3, 8] = 4.0, 4.0  # w0..w3 (8) is 4 words: over max_answer_words=3
    end[3, 7] = 1.0  # -> w0..w2 (5)
    score, first, last = best_spans(start, end, word_ids, mask, max_answer_words=3)
    assert first.tolist() == [1, 1, 1, 0] and last.tolist() == [2, 1, 2, 2]
    # the score is log p_start + log p_end over the window's real tokens
    expected = torch.log_softmax(start[0, :10], 0)[5] + torch.log_softmax(end[0, :10], 0)[7]
    assert float(score[0]) == pytest.approx(float(expected))
    # a window without page words has no span
    score, first, last = best_spans(
        torch.zeros(1, 4), torch.zeros(1, 4), torch.tensor([[-1, -1, -1, -1]]), torch.ones(1, 4), max_answer_words=3
    )
    assert torch.isinf(score).all() and first.tolist() == last.tolist() == [-1]
    assert span_text(["R.", "H.", "Orcutt"], 0, 2) == "R. H. Orcutt" and span_text(["a"], -1, -1) == ""


def test_windows_of_one_question_merge_by_best_span_score():
    # one question, two windows over the words w0..w5; window 0 holds w0..w3, window 1 holds w2..w5
    words = ["Total", "cost", "$", "300", "paid", "today"]
    word_ids = torch.tensor([[-1, -1, -1, 0, 1, 2, 3, -1], [-1, -1, -1, 2, 3, 4, 5, -1]])
    mask = torch.ones(2, 8, dtype=torch.long)
    start, end = torch.zeros(2, 8), torch.zeros(2, 8)
    start[0, 0], end[0, 0] = 8.0, 8.0  # window 0 mostly says "not here" ([CLS]); its best span "cost" scores low
    start[0, 4], end[0, 4] = 2.0, 2.0
    start[1, 3], end[1, 4] = 6.0, 6.0  # window 1 is confident: "$ 300"
    score, first, last = best_spans(start, end, word_ids, mask, max_answer_words=20)
    texts = [span_text(words, f, e) for f, e in zip(first.tolist(), last.tolist())]
    assert texts == ["cost", "$ 300"] and score[1] > score[0]
    metric = ANLS()
    metric.update(
        torch.tensor([0, 0]), torch.tensor([0, 0]), torch.tensor([0, 1]), score, texts, [["$300", "$ 300"]] * 2
    )
    assert metric.per_question()[(0, 0)][0] == 1 and float(metric.compute()) == 1.0


def test_loss_masks_padding_and_ignores_windows_without_a_target():
    model = ExtractiveQA(backbone=TINY, vocab_size=100, qa_dropout=0.0)
    out = {"start_logits": torch.zeros(2, 4, requires_grad=True), "end_logits": torch.zeros(2, 4, requires_grad=True)}
    batch = {
        "attention_mask": torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]]),
        "start_positions": torch.tensor([1, IGNORE_INDEX]),
        "end_positions": torch.tensor([2, IGNORE_INDEX]),
    }
    assert model._loss(out, batch).item() == pytest.approx(torch.log(torch.tensor(3.0)).item())  # 3 real tokens
    batch["start_positions"] = batch["end_positions"] = torch.tensor([IGNORE_INDEX, IGNORE_INDEX])
    loss = model._loss(out, batch)
    assert float(loss) == 0.0 and loss.requires_grad


# ---- a short real training run on rendered pages ---------------------------------------------------------------------

FRUIT = ["apple", "banana", "cherry", "grape", "lemon", "mango", "melon", "orange", "peach", "plum", "pear", "lime"]


def fruit_page(seed):
    """5-9 distinct fruit names; two questions "where is the <fruit>?" whose answer is that word on the page."""
    rng = random.Random(seed)
    words = rng.sample(FRUIT, rng.randint(5, 9))
    boxes = [(20 * (i % 8), 20 * (i // 8), 20 * (i % 8) + 16, 20 * (i // 8) + 10) for i in range(len(words))]
    pairs = [QAPair(f"where is the {words[i]}?", [words[i]], [(i, i)]) for i in rng.sample(range(len(words)), 2)]
    return Document(
        f"fruit-{seed}", Image.new("L", (200, 100), 255), words, boxes, qa_pairs=pairs, source=f"rendered:fruit-{seed}"
    )


class FruitPages(DocumentDataModule):
    collate = staticmethod(collate_qa)
    sizes = {"train": (0, 128), "val": (1000, 8), "test": (2000, 16)}  # (first seed, pages)

    @property
    def label_names(self):
        return []

    def encoder(self):
        hp = self.hparams
        return QAEncoder(
            self.tokenizer, max_length=hp.max_length, stride=hp.stride, image_size=hp.image_size, max_question_tokens=12
        )

    def load_split(self, split):
        first, count = self.sizes[split]
        return [fruit_page(first + i) for i in range(count)]


def test_a_short_training_run_answers_questions_on_unseen_pages(tmp_path):
    """The answer depends on the question (two per page), so this needs targets, loss and decoding to agree."""
    L.seed_everything(0)
    data = FruitPages(max_length=48, stride=8, image_size=32, batch_size=8)
    # Without dropout and with a constant rate, seeds 0, 1, 2 reached 1.0, 0.94 and 1.0 (with cosine and dropout 0.1,
    # as low as 0.38: the question-word matching is learnt suddenly, or not within the budget).
    backbone = BackboneConfig(**{**vars(TINY), "dropout": 0.0})
    model = ExtractiveQA(
        backbone=backbone,
        vocab_size=data.vocab_size,
        lr=5e-3,
        warmup_ratio=0.05,
        schedule="constant_with_warmup",
        qa_dropout=0.0,
    )
    run = L.Trainer(
        accelerator="cpu",
        max_epochs=25,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=str(tmp_path),
    )
    run.fit(model, datamodule=data)
    (tested,) = run.test(model, datamodule=data)
    assert tested["test/anls"] >= 0.7 and tested["hp/test_anls"] == tested["test/anls"]  # chance: about 1/7
    predictions = [row for rows in run.predict(model, datamodule=data) for row in rows]
    assert len(predictions) == 32 and sum(row["answer"] in FRUIT for row in predictions) >= 24


# ---- the DataModule on the release fixture ---------------------------------------------------------------------------


def docvqa(root=FIXTURES / "docvqa", **kw):
    kw = {"cache_dir": None, "max_length": 64, "stride": 16, "image_size": 32, "max_question_tokens": 16, **kw}
    return DocVQA(root=str(root), **kw)


def test_datamodule_counts_skipped_training_questions_and_keeps_them_in_evaluation(tmp_path, caplog):
    # Make the val answer unlocatable: it is kept (no target) and still scored by ANLS.
    root = Path(shutil.copytree(FIXTURES / "docvqa", tmp_path / "docvqa"))
    questions = root / "val" / "val_v1.0.json"
    data = json.loads(questions.read_text())
    data["data"][0]["answers"] = ["$ 999"]
    questions.write_text(json.dumps(data))
    dm = docvqa(root)
    with caplog.at_level(logging.WARNING, logger="docalign.data"):
        dm.setup("fit")
    assert [(w.doc_index, w.question_index) for w in dm.windows["train"]] == [(0, 0), (0, 1), (1, 0)]  # fax skipped
    assert dm.reader.stats[SKIPPED] == 1
    assert any(SKIPPED + ": 1" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    (val,) = dm.windows["val"]
    assert val.answers == ["$ 999"] and val.start_position == IGNORE_INDEX
    batch = next(iter(dm.val_dataloader()))
    assert batch["answers"] == [["$ 999"]] and batch["words"] == [["Total", "cost", "$", "300"]]


def test_the_test_stage_scores_val_or_refuses_a_test_split_without_answers(caplog):
    dm = docvqa()
    with caplog.at_level(logging.WARNING, logger="docalign.data"):
        dm.setup("test")
    assert [w.answers for w in dm.windows["test"]] == [["$ 300", "$300"]]
    assert "scores the validation split" in caplog.text
    dm.setup("predict")  # predict reads the release's test split: answers to submit
    (predict,) = dm.windows["predict"]
    assert (
        predict.question == "when is the meeting?" and predict.answers == [] and predict.start_position == IGNORE_INDEX
    )
    with pytest.raises(DataError, match=r"test_v1\.0\.json: field 'answers'.*test_split val"):
        docvqa(test_split="test").setup("fit")
    with pytest.raises(ValueError, match="test_split"):
        docvqa(test_split="dev")
    with pytest.raises(ValueError, match="max_question_tokens"):
        docvqa(max_question_tokens=64)  # 64-token windows with stride 16 leave room for 44


def test_the_encoded_split_cache_keeps_qa_windows_and_counts(tmp_path, caplog):
    first = docvqa(cache_dir=str(tmp_path / "cache"))
    first.setup("fit")
    assert first.cache_events == {"train": "miss", "val": "miss"}
    second = docvqa(cache_dir=str(tmp_path / "cache"))
    with caplog.at_level(logging.WARNING, logger="docalign.data"):
        second.setup("fit")
    assert second.cache_events == {"train": "hit", "val": "hit"}
    fields = (
        "input_ids",
        "bbox",
        "word_ids",
        "segment_ids",
        "doc_index",
        "question_index",
        "window_index",
        "start_position",
        "end_position",
        "question",
        "answers",
        "words",
    )
    for split in ("train", "val"):
        assert [[getattr(w, f) for f in fields] for w in second.windows[split]] == [
            [getattr(w, f) for f in fields] for w in first.windows[split]
        ]
        assert all(torch.equal(a.image, b.image) for a, b in zip(first.windows[split], second.windows[split]))
    assert type(second.windows["train"][0]).__name__ == "QAWindow"
    # the skipped questions are reported again from the cache entry, not only on a fresh encode
    assert any(SKIPPED + ": 1" in r.getMessage() and "from the cache" in r.getMessage() for r in caplog.records)
    different = docvqa(cache_dir=str(tmp_path / "cache"), max_question_tokens=8)
    different.setup("fit")
    assert different.cache_events == {"train": "miss", "val": "miss"}


# ---- the CLI ---------------------------------------------------------------------------------------------------------


def test_docvqa_ft_fits_one_step_and_writes_val_anls(tmp_path):
    cli = cli_main(["fit", *cli_args("docvqa_ft", tmp_path)])
    assert type(cli.model) is ExtractiveQA and isinstance(cli.datamodule, DocVQA)
    assert cli.trainer.global_step >= 1
    assert cli.trainer.checkpoint_callback.monitor == "val/anls"
    log_dir = tmp_path / "logs" / "docvqa_ft" / "version_0"
    metrics = json.loads((log_dir / "metrics.json").read_text())
    assert set(metrics["best_val"]) == {"val/anls"} and 0.0 <= metrics["best_val"]["val/anls"] <= 1.0
    assert {"test/anls", "hp/test_anls", "test/loss"} <= set(metrics["test"])
    (val_anls,) = scalars(log_dir, "val/anls")  # one validation at the end of the tiny epoch
    assert scalars(log_dir, "hp/val_anls")[-1] == val_anls  # (after the HParams tab's NaN placeholder)
