"""``docalign predict``: one JSON per page from a trained model, entities from BIO, overlays, classifiers, QA."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from predict_helpers import save_checkpoint, tiny_hparams, write_pages

from docalign.inference.predict import bio_entities, main, union_box

from conftest import cli_args


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A real tiny ``docalign fit`` of demo_ft (synthetic receipts, 61 CORD tags): its run folder."""
    from docalign.cli import cli_main

    tmp = tmp_path_factory.mktemp("run")
    cli_main(["fit", *cli_args("demo_ft", tmp)])
    (run,) = (tmp / "logs" / "demo_ft").glob("version_*")
    return run


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pages")
    return folder, write_pages(folder)


def as_given(doc):
    """The page as ``docalign predict`` sees it from its words JSON: integer boxes, no labels."""
    from docalign.data.document import Document

    return Document(doc.doc_id, doc.image, doc.words, [tuple(float(round(v)) for v in b) for b in doc.boxes])


def read_outputs(out: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(out.glob("*.json"))}


def test_bio_entities_grouping():
    tags = ["B-q", "I-q", "O", "I-a", "I-a", "B-a", "S-h", "I-h", "E-h", "I-h", "x", "x"]
    assert bio_entities(tags) == [
        ("q", [0, 1]),
        ("a", [3, 4]),  # I- after O starts an entity (a model's lenient tags)
        ("a", [5]),
        ("h", [6]),  # S- is a whole entity: the I- after it starts another
        ("h", [7, 8]),
        ("h", [9]),  # E- closed the entity
        ("x", [10, 11]),  # a tag without a prefix is its own type
    ]
    assert bio_entities(["O", "O"]) == []
    assert union_box([[5, 6, 10, 12], [2, 8, 7, 20]]) == [2, 6, 10, 20]


def test_predict_pages_json_matches_the_evaluation_path(trained_run, pages, tmp_path, monkeypatch):
    """Words, boxes, labels and confidences per page; the labels are exactly what ``predict_step`` rows merged
    across windows give (the metric's predictions); entities follow from the labels; nothing lands in logs/."""
    from docalign.data.encoding import DocumentEncoder, collate_windows
    from docalign.inference.loading import checkpoint_of, load_trained
    from docalign.systems.token_classification import document_tags

    folder, docs = pages
    monkeypatch.chdir(tmp_path)
    before = sorted(p.relative_to(trained_run) for p in trained_run.rglob("*"))
    status = main(["--ckpt", str(trained_run), str(folder), "--words", str(folder / "words"), "--out", "out", "--batch-size", "64",
                   "--no-progress"])  # fmt: skip
    assert status == 0
    assert not (tmp_path / "logs").exists()
    assert sorted(p.relative_to(trained_run) for p in trained_run.rglob("*")) == before
    outputs = read_outputs(tmp_path / "out")
    assert sorted(outputs) == ["page0", "page1"]

    model = load_trained(checkpoint_of(trained_run))
    assert model.data["max_length"] == 64  # the run's settings, read from the checkpoint
    encoder = DocumentEncoder(model.tokenizer, model.label_names, max_length=64, stride=16, image_size=32)
    for i, doc in enumerate(docs):
        record = outputs[f"page{i}"]
        assert record["page"] == 1 and (record["width"], record["height"]) == doc.size
        assert record["model"]["task"] == "token_classification"
        assert record["words_from"]["words_file"].endswith(f"page{i}.json")
        assert [w["text"] for w in record["words"]] == doc.words
        assert [w["box"] for w in record["words"]] == [[round(v) for v in b] for b in doc.boxes]
        windows = encoder.encode(as_given(doc), 0)
        assert len(windows) > 1  # the page spans several sliding windows
        with torch.no_grad():
            rows = model.system.predict_step(collate_windows(windows, model.tokenizer.pad_token_id), 0)
        assert [w["label"] for w in record["words"]] == document_tags(rows)[0]
        assert all(0 < w["confidence"] <= 1 for w in record["words"])
        expected = bio_entities([w["label"] for w in record["words"]])
        assert [(e["label"], e["words"]) for e in record["entities"]] == expected
        for entity in record["entities"]:
            members = [record["words"][j] for j in entity["words"]]
            assert entity["text"] == " ".join(w["text"] for w in members)
            assert entity["box"] == union_box([w["box"] for w in members])
            assert entity["confidence"] == pytest.approx(sum(w["confidence"] for w in members) / len(members), abs=1e-4)


def test_overlay_and_pdf_pages(tmp_path):
    """Every PDF page is predicted (``<stem>_p<N>``); the overlay PNG is the page with coloured boxes drawn."""
    import pymupdf
    from PIL import Image

    from docalign.inference.overlay import colour

    ckpt = save_checkpoint(tmp_path / "m.ckpt", tiny_hparams("TokenClassification"))
    pdf = pymupdf.open()
    for n in range(2):
        page = pdf.new_page(width=300, height=200)
        page.insert_text((40, 60), f"Name: Alice {n}", fontsize=14)
    pdf.save(tmp_path / "form.pdf")
    words = tmp_path / "words"
    words.mkdir()
    for n in (1, 2):  # pixels at the default 144 dpi: 600 x 400
        (words / f"form_p{n}.json").write_text(
            json.dumps({"words": ["Name:", "Alice"], "boxes": [[80, 95, 150, 125], [160, 95, 240, 125]]})
        )
    args = ["--ckpt", str(ckpt), str(tmp_path / "form.pdf"), "--words", str(words), "--out", str(tmp_path / "out")]
    assert main([*args, "--overlay", str(tmp_path / "ov"), "--no-progress"]) == 0
    outputs = read_outputs(tmp_path / "out")
    assert sorted(outputs) == ["form_p1", "form_p2"] and outputs["form_p2"]["page"] == 2
    assert (outputs["form_p1"]["width"], outputs["form_p1"]["height"]) == (600, 400)
    overlay = Image.open(tmp_path / "ov" / "form_p1.png").convert("RGB")
    assert overlay.size == (600, 400)
    record = outputs["form_p1"]
    assert record["entities"], "the spread head labels these words"
    entity = record["entities"][0]
    x0, y0, x1, y1 = entity["box"]
    assert overlay.getpixel((x0 + 1, (y0 + y1) // 2)) == colour(entity["label"])  # the entity's box edge

    # the pixel limit is checked before rendering: the page is refused, named, and the run says it failed
    status = main([*args[:-1], str(tmp_path / "out2"), "--max-pixels", "1000", "--no-progress"])
    assert status == 1 and not list((tmp_path / "out2").glob("*.json"))


def test_bad_inputs_are_named(tmp_path, capsys):
    ckpt = save_checkpoint(tmp_path / "m.ckpt", tiny_hparams("TokenClassification"))
    folder = tmp_path / "pages"
    write_pages(folder, count=1)
    (folder / "words" / "page0.json").write_text(json.dumps({"words": ["a"], "boxes": [[1, 2, 3]]}))
    assert main(["--ckpt", str(ckpt), str(folder), "--words", str(folder / "words"), "--no-progress",
                 "--out", str(tmp_path / "out")]) == 1  # fmt: skip
    assert "page0.json: field 'boxes[0]' is not 4 finite numbers" in capsys.readouterr().err
    assert main(["--ckpt", str(tmp_path / "missing.ckpt"), str(folder)]) == 2
    assert "missing.ckpt does not exist" in capsys.readouterr().err
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    assert main(["--ckpt", str(tmp_path / "junk.ckpt"), str(folder)]) == 2
    assert "could not be read as a Lightning checkpoint" in capsys.readouterr().err
    assert main(["--ckpt", str(ckpt), str(tmp_path / "nowhere.png")]) == 2
    assert "nowhere.png: no such file or folder" in capsys.readouterr().err


def test_words_from_ocr_through_the_cache(tmp_path):
    """Without --words the page is OCR'd (rapidocr, the default) into the cache; a second run hits it."""
    from PIL import Image, ImageDraw, ImageFont

    ckpt = save_checkpoint(tmp_path / "m.ckpt", tiny_hparams("TokenClassification"))
    page = Image.new("RGB", (480, 120), "white")
    ImageDraw.Draw(page).text((20, 40), "INVOICE 2024", fill="black", font=ImageFont.load_default(size=36))
    page.save(tmp_path / "scan.png")
    args = ["--ckpt", str(ckpt), str(tmp_path / "scan.png"), "--ocr-cache-dir", str(tmp_path / "ocr"), "--no-progress"]
    for hit in (False, True):
        assert main([*args, "--out", str(tmp_path / f"out{hit}")]) == 0
        record = read_outputs(tmp_path / f"out{hit}")["scan"]
        assert record["words_from"] == {"engine": "rapidocr", "cache_hit": hit}
        assert " ".join(w["text"] for w in record["words"]).upper().replace(" ", "") == "INVOICE2024"
    assert list((tmp_path / "ocr" / "rapidocr").rglob("*.json"))


def test_classifier_output(tmp_path, pages):
    """The document class and its probabilities: the softmax of the mean of the page's windows' logits."""
    from docalign.data.encoding import DocumentEncoder, collate_windows
    from docalign.inference.loading import load_trained

    classes = ["letter", "form", "invoice"]
    ckpt = save_checkpoint(tmp_path / "c.ckpt", tiny_hparams("DocumentClassification", labels=classes))
    folder, docs = pages
    assert main(["--ckpt", str(ckpt), str(folder), "--words", str(folder / "words"), "--out", str(tmp_path / "o"),
                 "--overlay", str(tmp_path / "ov"), "--no-progress"]) == 0  # fmt: skip
    record = read_outputs(tmp_path / "o")["page0"]
    model = load_trained(ckpt)
    encoder = DocumentEncoder(model.tokenizer, [], max_length=64, stride=16, image_size=32, doc_label_names=classes)
    with torch.no_grad():
        logits = model.system(collate_windows(encoder.encode(as_given(docs[0]), 0), model.tokenizer.pad_token_id))[
            "logits"
        ]
    probs = logits.mean(0).softmax(-1)
    predicted = record["document_class"]
    assert predicted["label"] == classes[int(probs.argmax())]
    assert list(predicted["probabilities"]) == classes
    assert list(predicted["probabilities"].values()) == pytest.approx(probs.tolist(), abs=1e-4)
    assert sum(predicted["probabilities"].values()) == pytest.approx(1.0, abs=1e-3)
    assert "entities" not in record and "label" not in record["words"][0]
    assert (tmp_path / "ov" / "page0.png").is_file()


def test_qa_answers(tmp_path, pages):
    """``--question`` with a QA model: per question the best span over its windows, as ``predict_step`` scores it."""
    from docalign.data.document import Document, QAPair
    from docalign.data.qa_encoding import QAEncoder, collate_qa
    from docalign.inference.loading import load_trained

    ckpt = save_checkpoint(tmp_path / "qa.ckpt", tiny_hparams("ExtractiveQA", max_answer_words=5))
    folder, docs = pages
    questions = ["What is the total?", "Which shop?"]
    args = ["--ckpt", str(ckpt), str(folder / "page0.png"), "--words", str(folder / "words" / "page0.json")]
    assert (
        main(
            [
                *args,
                "--out",
                str(tmp_path / "o"),
                "--no-progress",
                "--batch-size",
                "64",
                *sum((["--question", q] for q in questions), []),
            ]
        )
        == 0
    )
    answers = read_outputs(tmp_path / "o")["page0"]["answers"]
    model = load_trained(ckpt)
    doc = as_given(docs[0])
    page = Document(doc.doc_id, doc.image, doc.words, doc.boxes, qa_pairs=[QAPair(q) for q in questions])
    encoder = QAEncoder(model.tokenizer, max_length=64, stride=16, image_size=32, max_question_tokens=16)
    with torch.no_grad():
        rows = model.system.predict_step(collate_qa(encoder.encode(page, 0), model.tokenizer.pad_token_id), 0)
    assert [a["question"] for a in answers] == questions
    for q, answer in enumerate(answers):
        best = max((r for r in rows if r["question_index"] == q), key=lambda r: r["score"])
        assert answer["answer"] == best["answer"] and answer["score"] == pytest.approx(best["score"], abs=1e-3)
        first, last = answer["words"]
        assert 1 <= last - first + 1 <= 5 and answer["answer"] == " ".join(doc.words[first : last + 1])
    assert main(args) == 2  # a QA model with no question: told to ask one


def test_run_folder_and_checkpoint_file_give_the_same_pages(trained_run, pages, tmp_path):
    """``--ckpt`` may be the run folder (its best checkpoint) or the checkpoint file itself: the same outputs."""
    from docalign.inference.loading import checkpoint_of

    best = checkpoint_of(trained_run)
    assert best.parent.name == "checkpoints" and best.name.startswith("best-")
    folder, _ = pages
    for name, ckpt in (("run", trained_run), ("file", best)):
        args = ["--ckpt", str(ckpt), str(folder), "--words", str(folder / "words"), "--no-progress"]
        assert main([*args, "--out", str(tmp_path / name)]) == 0
    run, file = read_outputs(tmp_path / "run"), read_outputs(tmp_path / "file")
    for page in run:
        assert run[page]["model"]["checkpoint"] == file[page]["model"]["checkpoint"] == str(best)
        assert run[page]["words"] == file[page]["words"] and run[page]["entities"] == file[page]["entities"]


def test_console_script_dispatch(monkeypatch, capsys):
    """``docalign predict``/``export`` are the plain commands; LightningCLI's predict is ``predict-split``."""
    from docalign.cli import main as docalign

    for command, expected in (("predict", "--overlay"), ("export", "OUT"), ("predict-split", "--ckpt_path")):
        monkeypatch.setattr("sys.argv", ["docalign", command, "--help"])
        with pytest.raises(SystemExit) as done:
            docalign()
        assert done.value.code == 0 and expected in capsys.readouterr().out


def test_segment_decoding_when_the_words_carry_segment_boxes(tmp_path, pages):
    """A model that scores per segment decodes per segment where words share boxes (as its metric does), and leaves
    one-box-per-word pages (OCR's) undecoded."""
    from docalign.data.document import Document
    from docalign.data.encoding import DocumentEncoder, collate_windows
    from docalign.inference.loading import load_trained
    from docalign.systems.token_classification import document_tags

    ckpt = save_checkpoint(tmp_path / "s.ckpt", tiny_hparams("TokenClassification", segment_decoding=True))
    folder, docs = pages
    doc = as_given(docs[0])
    boxes = [list(doc.boxes[i - i % 3]) for i in range(len(doc.words))]  # segments of three words sharing a box
    segmented = tmp_path / "words"
    segmented.mkdir()
    (segmented / "page0.json").write_text(json.dumps({"words": doc.words, "boxes": boxes}))
    for words, decoded in ((segmented / "page0.json", True), (folder / "words" / "page0.json", False)):
        out = tmp_path / f"out-{decoded}"
        args = ["--ckpt", str(ckpt), str(folder / "page0.png"), "--words", str(words), "--out", str(out)]
        assert main([*args, "--batch-size", "64", "--no-progress"]) == 0
        record = read_outputs(out)["page0"]
        assert record["segment_decoding"] is decoded
        model = load_trained(ckpt)
        page = Document(doc.doc_id, doc.image, doc.words, [w["box"] for w in record["words"]])
        encoder = DocumentEncoder(model.tokenizer, model.label_names, max_length=64, stride=16, image_size=32)
        with torch.no_grad():
            rows = model.system.predict_step(collate_windows(encoder.encode(page, 0), model.tokenizer.pad_token_id), 0)
        assert [w["label"] for w in record["words"]] == document_tags(rows, segment_decoding=decoded)[0]
    entities = read_outputs(tmp_path / "out-True")["page0"]["entities"]
    assert entities and all(e["words"][0] % 3 == 0 and len(e["words"]) <= 3 for e in entities)
