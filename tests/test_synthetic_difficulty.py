"""Difficulties of the synthetic documents (``synthetic_docs.Difficulty``): easy pages as first written, hard pages
whose class shows only in words and layout together; the DataModule option and the benchmark that runs them."""

import hashlib
import json
from pathlib import Path

import pytest

from docalign.cli import cli_main
from docalign.data import RVLCDIP
from docalign.data.synthetic_docs import (
    DIFFICULTIES,
    KINDS,
    LAYOUT_PARTNERS,
    TEXT_GROUPS,
    Difficulty,
    render_document,
)

from conftest import EXPERIMENTS, OFFLINE, TINY, assert_words_inked_in_their_boxes, load_benchmark

# Digests of (words, boxes to 0.1 px, label) and of the pixels of easy pages, rendered by the generator before it had
# a difficulty (this venv's PIL and DejaVu fonts: another font set draws other pages).
EASY_PAGES = {
    (0, 0): ("letter", 171, "5ee4c1257d0a31e8", "7625970849df9151"),
    (1, 5): ("scientific report", 140, "e2a4aca58f494276", "1aa0c4d577929767"),
    (2, 11): ("invoice", 39, "98ace009b6315dbf", "4fdc72c820eaf454"),
    (3, 7): ("specification", 35, "f03caee0e34f4e05", "4de5c8e737a4a9fb"),
}


def _digest(doc) -> tuple[str, int, str, str]:
    content = (doc.words, [tuple(round(v, 1) for v in box) for box in doc.boxes], doc.doc_label)
    return (
        doc.doc_label,
        len(doc.words),
        hashlib.sha256(repr(content).encode()).hexdigest()[:16],
        hashlib.sha256(doc.image.tobytes()).hexdigest()[:16],
    )


@pytest.mark.parametrize("seed, index", list(EASY_PAGES))
def test_the_default_is_the_easy_page_as_before(seed, index):
    assert _digest(render_document(seed, index)) == EASY_PAGES[seed, index]
    assert _digest(render_document(seed, index, difficulty="easy")) == EASY_PAGES[seed, index]
    assert _digest(render_document(seed, index, difficulty=Difficulty())) == EASY_PAGES[seed, index]


def test_hard_pages_depend_only_on_seed_index_kind_and_differ_from_easy():
    a, b = render_document(3, 7, "memo", "hard"), render_document(3, 7, "memo", "hard")
    assert (a.words, a.boxes, a.doc_label) == (b.words, b.boxes, b.doc_label) == (a.words, a.boxes, "memo")
    assert a.image.tobytes() == b.image.tobytes()
    assert [(q.question, q.answer_spans) for q in a.qa_pairs] == [(q.question, q.answer_spans) for q in b.qa_pairs]
    assert render_document(3, 7, "memo", DIFFICULTIES["hard"]).boxes == a.boxes
    assert (
        render_document(3, 8, "memo", "hard").words != a.words
        and render_document(4, 7, "memo", "hard").words != a.words
    )
    assert render_document(3, 7, "memo").words != a.words
    assert "difficulty=hard" in a.source and "difficulty" not in render_document(3, 7, "memo").source


def test_hard_pages_keep_words_in_their_boxes_on_the_page_and_answers_in_place():
    for i, kind in enumerate(KINDS):
        doc = render_document(1, i, kind, "hard")
        assert doc.doc_label == kind and len(doc.words) == len(doc.boxes) >= 3, kind
        assert_words_inked_in_their_boxes(doc, f"hard {kind}")


def test_hard_pages_share_words_within_a_group_and_templates_between_partners():
    assert sorted(k for group in TEXT_GROUPS for k in group) == sorted(KINDS)
    group_of = {kind: group for group in TEXT_GROUPS for kind in group}
    assert all(LAYOUT_PARTNERS[LAYOUT_PARTNERS[k]] == k and group_of[LAYOUT_PARTNERS[k]] != group_of[k] for k in KINDS)
    # a letter at times takes its partner's (the memo's) template: its questions are the memo's
    letters = [render_document(0, i, "letter", "hard") for i in range(12)]
    memo_questions = {qa.question for d in letters for qa in d.qa_pairs if "memo" in qa.question}
    assert memo_questions and any(not any("memo" in qa.question for qa in d.qa_pairs) for d in letters)
    # words of the letter's text group (resume, handwritten) are on letters; easy letters have none of them
    resume_words = {"education", "experience", "skills", "university", "employment"}
    assert any(resume_words & {w.lower() for w in d.words} for d in letters)
    easy = [render_document(0, i, "letter") for i in range(12)]
    assert not any(resume_words & {w.lower() for w in d.words} for d in easy)


def test_unknown_difficulties_and_knobs_are_refused():
    with pytest.raises(ValueError, match="unknown synthetic document difficulty 'medium'; the difficulties are easy"):
        render_document(0, 0, difficulty="medium")
    with pytest.raises(ValueError, match="difficulty knobs are probabilities in"):
        Difficulty(typos=1.5)
    with pytest.raises(ValueError, match="data.init_args.synthetic_difficulty must be one of easy, hard"):
        RVLCDIP(synthetic_docs={"train": 4, "val": 4, "test": 4}, synthetic_difficulty="medium")


def test_the_datamodule_option_reaches_the_pages(minilm_tokenizer):
    common = dict(synthetic_docs={"train": 16, "val": 4, "test": 4}, max_length=64, stride=16, image_size=32)
    hard, easy = RVLCDIP(synthetic_difficulty="hard", **common), RVLCDIP(**common)
    hard.setup("fit")
    easy.setup("fit")
    key = hard.reader.files("train")[3]
    assert hard.reader.read_file(key).words == render_document(key.seed, key.index, key.kind, "hard").words
    first = {w.doc_index: w.input_ids for w in reversed(hard.windows["train"])}
    assert first != {w.doc_index: w.input_ids for w in reversed(easy.windows["train"])}
    assert sorted({w.doc_label for w in hard.windows["train"]}) == list(range(16))  # labels stay the kinds'


def test_the_hard_overlay_sets_the_difficulty_through_the_cli(tmp_path):
    configs = [EXPERIMENTS / "_base.yaml", EXPERIMENTS / "rvlcdip_ft.yaml", OFFLINE, EXPERIMENTS / "_offline_docs.yaml"]
    configs += [EXPERIMENTS / "_offline_docs_hard.yaml", TINY]
    args = [a for c in configs for a in ("--config", str(c))]
    cli = cli_main([*args, "--trainer.logger.init_args.save_dir", str(tmp_path)], run=False)
    assert cli.datamodule.hparams.synthetic_difficulty == "hard"
    assert cli.datamodule.reader.difficulty == "hard"
    assert (EXPERIMENTS / "_offline_docs_hard.yaml").read_text().startswith("# Hard offline documents")


@pytest.fixture(scope="module")
def offline_docs():
    return load_benchmark("offline_docs")


def _run_folder(logs: Path, experiment: str, version: int, seed: int, difficulty: str, acc=None, steps=80) -> None:
    """A run folder as ``docalign fit`` leaves it: config.yaml, and metrics.json when it finished (``acc``)."""
    folder = logs / experiment / f"version_{version}"
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(f"data:\n  init_args:\n    synthetic_difficulty: {difficulty}\n")
    if acc is not None:
        metrics = {"experiment": experiment, "seed": seed, "global_steps": steps, "fit_seconds": 600.0}
        (folder / "metrics.json").write_text(json.dumps({**metrics, "test": {"test/acc": acc}}))


def test_offline_docs_finds_finished_runs_per_experiment_seed_and_difficulty(offline_docs, tmp_path):
    _run_folder(tmp_path, "rvlcdip_ft", 0, 0, "hard", acc=0.5)
    _run_folder(tmp_path, "rvlcdip_ft", 1, 1, "hard")  # cut off: no metrics.json
    _run_folder(tmp_path, "rvlcdip_ft", 2, 2, "easy", acc=0.99)
    _run_folder(tmp_path, "rvlcdip_ft", 10, 0, "hard", acc=0.7)  # a rerun of seed 0: the newest wins
    _run_folder(tmp_path, "rvlcdip_vlcdoc", 0, 1, "hard", acc=0.6)
    _run_folder(tmp_path, "rvlcdip_vlcdoc", 1, 0, "hard", acc=0.6, steps=40)  # another budget
    runs = offline_docs.finished_runs(tmp_path, "hard", 80)
    assert sorted(runs) == [("rvlcdip_ft", 0), ("rvlcdip_vlcdoc", 1)]
    assert runs["rvlcdip_ft", 0]["test"]["test/acc"] == 0.7
    todo = [(e, s) for s in (0, 1) for e in ("rvlcdip_ft", "rvlcdip_vlcdoc")]
    assert offline_docs.pending(todo, runs) == [("rvlcdip_vlcdoc", 0), ("rvlcdip_ft", 1)]
    assert list(offline_docs.finished_runs(tmp_path, "easy", 80)) == [("rvlcdip_ft", 2)]
    assert list(offline_docs.finished_runs(tmp_path, "hard", 40)) == [("rvlcdip_vlcdoc", 0)]


def test_offline_docs_hard_command_and_table(offline_docs, tmp_path):
    cmd = offline_docs.command("rvlcdip_vlcdoc_no_inter", 1, 80, tmp_path, "hard")
    configs = [cmd[i + 1] for i, a in enumerate(cmd) if a == "--config"]
    assert configs[3:6] == [
        "experiments/_offline_docs.yaml",
        "experiments/_offline_docs_hard.yaml",
        "experiments/_offline_vlcdoc.yaml",
    ]
    assert "experiments/_offline_docs_hard.yaml" not in offline_docs.command("rvlcdip_ft", 1, 80, tmp_path)
    logs, experiments, seeds = offline_docs.DEFAULTS["hard"]
    assert logs.name == "offline_docs_hard" and len(experiments) == 5 and seeds == [0, 1, 2]
    _run_folder(tmp_path, "rvlcdip_ft", 0, 0, "hard", acc=0.5)
    _run_folder(tmp_path, "rvlcdip_ft", 1, 1, "hard", acc=0.7)
    rows = {"rvlcdip_ft": list(offline_docs.finished_runs(tmp_path, "hard", 80).values())}
    assert "| rvlcdip_ft | 2 (0, 1) | 0.6000 ± 0.1414 |" in offline_docs.table(rows)
