"""The synthetic documents of many kinds (``data.synthetic_docs``) and the DataModules that read them offline."""

import json
from collections import Counter

import numpy as np
import pytest

from docalign.cli import cli_main
from docalign.data import RVLCDIP, DocVQA, Tobacco3482
from docalign.data.readers.classification import RVL_CDIP_CLASSES, TOBACCO3482_CLASSES
from docalign.data.synthetic_docs import KINDS, TOBACCO3482_KINDS, render_document

from conftest import EXPERIMENTS, OFFLINE, TINY, TINY_AET, assert_words_inked_in_their_boxes

DOCS = EXPERIMENTS / "_offline_docs.yaml"


def test_a_document_depends_only_on_seed_index_and_kind():
    a, b = render_document(3, 7, "invoice"), render_document(3, 7, "invoice")
    assert (a.words, a.boxes, a.doc_label) == (b.words, b.boxes, b.doc_label)
    assert a.image.tobytes() == b.image.tobytes()
    assert [(q.question, q.answers, q.answer_spans) for q in a.qa_pairs] == [
        (q.question, q.answers, q.answer_spans) for q in b.qa_pairs
    ]
    assert render_document(3, 8, "invoice").words != a.words and render_document(4, 7, "invoice").words != a.words
    assert render_document(0, 5).doc_label == KINDS[5]  # default kind: index % 16
    with pytest.raises(ValueError, match="unknown document kind 'poem'"):
        render_document(0, 0, "poem")


def test_every_kind_has_words_in_boxes_a_label_and_answerable_questions():
    assert len(KINDS) == 16 and set(KINDS) == set(RVL_CDIP_CLASSES)
    assert set(TOBACCO3482_KINDS) == set(TOBACCO3482_CLASSES) and set(TOBACCO3482_KINDS.values()) <= set(KINDS)
    for i, kind in enumerate(KINDS):
        doc = render_document(1, i, kind)
        assert doc.doc_label == kind and len(doc.words) >= 3, kind
        assert doc.qa_pairs, f"{kind} has no question"
        for qa in doc.qa_pairs:
            first, last = qa.answer_spans[0]
            assert qa.question.endswith("?") and qa.answers == [" ".join(doc.words[first : last + 1])]
        assert_words_inked_in_their_boxes(doc, kind)
    questions = {qa.question for i in range(16) for qa in render_document(2, i, "invoice").qa_pairs}
    assert "What is the invoice date?" in questions


def test_documents_vary_within_a_kind():
    docs = [render_document(0, i, "letter") for i in range(12)]
    assert len({d.size for d in docs}) == 12
    assert len({len(d.words) for d in docs}) > 6
    heights = {round(float(np.median([b[3] - b[1] for b in d.boxes]))) for d in docs}  # font sizes
    assert len(heights) >= 3
    skewed = sum(abs(d.boxes[0][1] - d.boxes[0][3]) > 1.5 * np.median([b[3] - b[1] for b in d.boxes]) for d in docs)
    assert len({d.image.getpixel((0, 0)) // 8 for d in docs}) > 2 or skewed  # background tones (or skew) vary


def _features(doc):
    """A bag of the page's words (text) and a coarse 4x4 map of where its boxes lie and their height (layout)."""
    w, h = doc.size
    grid = np.zeros(17)
    for x0, y0, x1, y1 in doc.boxes:
        grid[min(3, int(4 * x0 / w)) * 4 + min(3, int(4 * y0 / h))] += 1
        grid[16] += (y1 - y0) / h
    return Counter(doc.words), grid / max(1, len(doc.boxes))


def test_the_class_shows_in_the_words_and_in_the_layout():
    """Nearest-centroid classifiers on held-out documents (another seed) beat chance (1/16) by far, one on the
    words alone, one on the box layout alone."""
    train = {k: [_features(render_document(0, i, k)) for i in range(4)] for k in KINDS}
    test = [(k, _features(render_document(1, i, k))) for k in KINDS for i in range(2)]
    text_centroids = {k: sum((f[0] for f in fs), Counter()) for k, fs in train.items()}
    layout_centroids = {k: np.mean([f[1] for f in fs], axis=0) for k, fs in train.items()}

    def cosine(a, b):
        dot = sum(v * b.get(t, 0) for t, v in a.items())
        return dot / (np.sqrt(sum(v * v for v in a.values())) * np.sqrt(sum(v * v for v in b.values())) + 1e-9)

    text_acc = np.mean([max(text_centroids, key=lambda k: cosine(f[0], text_centroids[k])) == y for y, f in test])
    layout_acc = np.mean(
        [min(layout_centroids, key=lambda k: np.abs(f[1] - layout_centroids[k]).sum()) == y for y, f in test]
    )
    assert text_acc >= 0.8, text_acc
    assert layout_acc >= 0.3, layout_acc


def test_classification_datamodules_read_balanced_synthetic_splits(minilm_tokenizer):
    common = dict(synthetic_docs={"train": 32, "val": 16, "test": 16}, max_length=64, stride=16, image_size=32)
    rvl = RVLCDIP(**common)
    assert rvl.root is None and rvl.ocr is None
    rvl.setup("fit")
    train_docs = {w.doc_index: w.doc_label for w in rvl.windows["train"]}
    assert Counter(train_docs.values()) == Counter({c: 2 for c in range(16)})
    assert set(rvl.reader.files("val")).isdisjoint(rvl.reader.files("train"))
    tobacco = Tobacco3482(**common)
    keys = tobacco.split_keys("train")
    assert [k.label for k in keys[:10]] == list(TOBACCO3482_CLASSES)
    assert [k.kind for k in keys[:10]] == [TOBACCO3482_KINDS[c] for c in TOBACCO3482_CLASSES]
    with pytest.raises(ValueError, match="data.init_args.synthetic_docs must map exactly train, val and test"):
        RVLCDIP(synthetic_docs={"train": 4})
    with pytest.raises(ValueError, match="counts must be integers >= 1"):
        DocVQA(synthetic_docs={"train": 4, "val": 0, "test": 2})


def test_docvqa_reads_synthetic_questions_with_located_answers():
    dm = DocVQA(
        synthetic_docs={"train": 8, "val": 4, "test": 4},
        max_length=128,
        stride=32,
        image_size=32,
        max_question_tokens=16,
    )
    dm.setup("test")
    windows = dm.windows["test"]
    assert windows and all(w.end_position != -100 for w in windows)  # every answer located
    assert any(w.start_position > 0 for w in windows)
    assert {w.question for w in windows} >= {"What is the invoice date?"} or len({w.question for w in windows}) > 3
    assert windows[0].words == render_document(2, windows[0].doc_index).words  # the test split is its own stream


@pytest.mark.parametrize("experiment", ["rvlcdip_ft", "rvlcdip_aet", "docvqa_ft"])
def test_experiments_train_and_test_offline_on_synthetic_documents(experiment, tmp_path):
    aet = ["--config", str(EXPERIMENTS / "_offline_aet.yaml")] if experiment.endswith("_aet") else []
    tiny_aet = ["--config", str(TINY_AET)] if aet else []
    qa = ["--data.init_args.max_question_tokens", "16"] if experiment.startswith("docvqa") else []
    cli = cli_main(
        [
            "fit",
            "--config",
            str(EXPERIMENTS / "_base.yaml"),
            "--config",
            str(EXPERIMENTS / f"{experiment}.yaml"),
            "--config",
            str(OFFLINE),
            *aet,
            "--config",
            str(DOCS),
            "--config",
            str(TINY),
            *tiny_aet,
            "--experiment",
            experiment,
            "--trainer.logger.init_args.save_dir",
            str(tmp_path),
            *qa,
        ]
    )
    assert cli.trainer.global_step >= 1
    metrics = json.loads((tmp_path / experiment / "version_0" / "metrics.json").read_text())
    assert ("test/anls" if qa else "test/acc") in metrics["test"]
