"""Kleister-NDA: the release reader, weak labels, the benchmark's F1, extraction and the rules baseline.

Everything runs on tests/fixtures/kleister_nda (tests/fixtures/make_kleister_fixture.py), never on ../shared.
"""

from __future__ import annotations

import lzma
import shutil
from pathlib import Path

import pytest

from docalign.data.readers.kleister import KleisterNDAReader, parse_expected_line, unescape_text
from docalign.data.repairs import DataError, RepairLog

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "kleister_nda"
SCANNED = "79d8da4d3470d03e1b0546b50bdfafa1.pdf"
THREE_PAGES = "54212aa881184e53af4e74a9b96b8148.pdf"


@pytest.fixture
def release(tmp_path: Path) -> Path:
    """A writable copy of the fixture release (for the bad-input cases)."""
    root = tmp_path / "kleister_nda"
    shutil.copytree(FIXTURE, root)
    return root


def test_rows_and_expected_values() -> None:
    reader = KleisterNDAReader(FIXTURE, render=False)
    rows = reader.rows("train")
    assert [r.line for r in rows] == [1, 2, 3]
    assert rows[0].filename == THREE_PAGES
    assert rows[0].keys == ["effective_date", "jurisdiction", "party", "term"]
    assert rows[0].expected == {
        "effective_date": ["2014-03-05"],
        "jurisdiction": ["New_York"],
        "party": ["Acme_Widgets_Inc.", "John_Q._Smith"],
        "term": ["2_years"],
    }
    assert "\f" in rows[0].texts["text_best"]  # page breaks unescaped
    assert set(rows[0].texts) == {"text_djvu", "text_tesseract", "text_textract", "text_best"}
    assert reader.rows("test-A")[0].expected is None
    assert reader.stats["decoy keys"] == 1  # the scanned document has no term


def test_escapes_and_pairs() -> None:
    assert unescape_text(r"a\nb\tc\fd\\n") == "a\nb\tc\fd\\n"
    assert parse_expected_line("party=A_B party=C term=2_years") == [
        ("party", "A_B"),
        ("party", "C"),
        ("term", "2_years"),
    ]
    assert parse_expected_line("oops") == [("", "oops")]


def test_multi_page_document_from_text_layer() -> None:
    reader = KleisterNDAReader(FIXTURE, dpi=72)
    doc = reader.read_file(reader.rows("train")[0])
    assert doc.page_count == 3 and len(doc.pages) == 3
    assert doc.image is doc.pages[0] and doc.pages[0].size == (595, 842)  # A4 at 72 dpi
    assert sorted(set(doc.word_pages)) == [0, 1, 2]
    assert doc.words[:3] == ["MUTUAL", "NON-DISCLOSURE", "AGREEMENT"]
    assert doc.words[doc.word_pages.index(1)] == "1."  # page 2 starts with its own first word
    x0, y0, x1, y1 = doc.boxes[0]
    assert 45 < x0 < x1 < 595 and 40 < y0 < y1 < 70  # where the generator wrote it (pixels at 72 dpi)
    assert reader.stats["pages"] == 3 and reader.stats["words"] == len(doc.words)
    assert reader.repairs.counts == {}
    at_144 = KleisterNDAReader(FIXTURE, dpi=144, render=False).read_file(reader.rows("train")[0])
    assert at_144.pages[0].size == (1190, 1684)
    assert at_144.boxes[0] == pytest.approx(tuple(2 * v for v in doc.boxes[0]), abs=0.01)


def test_scanned_page_without_ocr_is_a_counted_repair() -> None:
    reader = KleisterNDAReader(FIXTURE, render=False)
    docs = list(reader.read("train"))
    assert [d.doc_id for d in docs] == [THREE_PAGES[:-4], "61df95f806f78c9828a280c1ea5a431c"]
    assert any("no text layer and no OCR engine" in k for k in reader.repairs.counts)
    assert any("no words on any" in k for k in reader.repairs.counts)
    with pytest.raises(DataError, match="page 1.*no text layer"):
        KleisterNDAReader(FIXTURE, strict=True).read_file(reader.rows("train")[2])


def test_scanned_page_is_ocrd() -> None:
    from docalign.ocr import EngineUnavailable, get_engine

    engine = get_engine("tesseract")
    reader = KleisterNDAReader(FIXTURE, render=False, ocr=engine)
    try:
        doc = reader.read_file(reader.rows("train")[2])
    except EngineUnavailable as err:
        pytest.skip(f"tesseract not installed: {err}")
    assert reader.stats["pages OCR'd"] == 1
    text = " ".join(doc.words)
    assert "Orbital" in text and "Delaware" in text
    i = doc.words.index("Orbital")
    assert 45 < doc.boxes[i][0] < 595 and doc.boxes[i][3] < 842  # boxes scaled back to the 72-dpi page


def test_bad_pdf_missing_pdf_and_escaping_path(release: Path) -> None:
    rows_file = release / "train" / "in.tsv.xz"
    lines = lzma.decompress(rows_file.read_bytes()).decode().splitlines()
    (release / "documents" / THREE_PAGES).write_bytes(b"%PDF-1.4 this is not a pdf")
    lines[1] = "../../etc/passwd.pdf\t" + lines[1].split("\t", 1)[1]
    lines.append("missing.pdf\tparty")
    lines.append("short line")
    rows_file.write_bytes(lzma.compress(("\n".join(lines) + "\n").encode()))
    (release / "train" / "expected.tsv").write_text("party=A\nterm=2_years junk\n")
    reader = KleisterNDAReader(release, render=False)
    rows = reader.rows("train")
    assert len(rows) == 4  # the short line skipped
    assert list(reader.read("train")) == []
    summary = reader.repairs.summary()
    for reason in ("cannot be opened", "leaves the dataset folder", "not found", "1 column(s)", "not key=value"):
        assert reason in summary, reason
    assert "2 expected line(s) for 4 in.tsv line(s)" in summary
    assert rows[2].expected is None  # no expected line: unlabelled
    with pytest.raises(DataError, match="cannot be opened"):
        strict = KleisterNDAReader(release, repairs=RepairLog(strict=True))
        strict._rows["train"] = rows
        strict.read_file(rows[0])


def test_missing_split_names_the_layout(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="in.tsv.xz"):
        KleisterNDAReader(tmp_path).rows("dev-0")
    with pytest.raises(ValueError, match="splits"):
        KleisterNDAReader(FIXTURE).rows("dev")


# --- weak labels ---------------------------------------------------------------------------------------
from docalign.data.kleister_values import (  # noqa: E402
    KLEISTER_LABELS,
    ceiling,
    date_spans,
    name_key,
    term_spans,
    weak_labels,
)


@pytest.mark.parametrize(
    "text, iso",
    [
        ("as of March 5, 2014 by", "2014-03-05"),
        ("dated March 5th 2014.", "2014-03-05"),
        ("on Mar. 5, 2014", "2014-03-05"),
        ("this 12th day of January, 2009", "2009-01-12"),
        ("the 1st of July 2011", "2011-07-01"),
        ("5 March 2014", "2014-03-05"),
        ("Effective 7/1/2011,", "2011-07-01"),
        ("on 03/05/14 we", "2014-03-05"),
        ("made on 2016-08-22 between", "2016-08-22"),
    ],
)
def test_dates_in_their_written_forms(text: str, iso: str) -> None:
    spans = date_spans(text.split())
    assert [s.value for s in spans] == [iso]


def test_invalid_dates_are_not_dates() -> None:
    assert date_spans("February 30, 2014 and 13/45/2001 and 20__".split()) == []


@pytest.mark.parametrize(
    "text, value",
    [
        ("for two (2) years from", "2_years"),
        ("twenty-four (24) months after", "24_months"),
        ("a period of one year", "1_year"),
        ("for 18 months", "18_months"),
        ("a two-year period", "2_years"),
        ("within thirty days", "30_days"),
        ("for 55.5 months", "55.5_months"),
    ],
)
def test_terms_in_their_written_forms(text: str, value: str) -> None:
    assert [s.value for s in term_spans(text.split())] == [value]


def test_term_span_covers_its_words() -> None:
    words = "shall terminate twenty-four (24) months after".split()
    (span,) = term_spans(words)
    assert (span.first, span.last) == (2, 4)


def test_weak_labels_all_occurrences_and_missing_values() -> None:
    words = (
        "This Agreement between NIKE, Inc., and Eric Dean Sprunk dated April 18, 2001. NIKE, Inc. is in Oregon.".split()
    )
    labels = weak_labels(
        words,
        {
            "effective_date": ["2001-04-18"],
            "party": ["Nike_Inc.", "Eric_Dean_Sprunk", "Nobody_LLC"],
            "jurisdiction": ["Oregon"],
        },
    )
    tags = dict(zip(range(len(words)), labels.labels))
    assert [tags[i] for i in (3, 4)] == ["B-party", "I-party"]  # NIKE, Inc.,
    assert [tags[i] for i in (13, 14)] == ["B-party", "I-party"]  # the second occurrence too
    assert [tags[i] for i in (6, 7, 8)] == ["B-party", "I-party", "I-party"]
    assert [tags[i] for i in (10, 11, 12)] == ["B-effective_date", "I-effective_date", "I-effective_date"]
    assert tags[9] == "O" and tags[15] == "O"
    assert tags[17] == "B-jurisdiction"
    assert labels.missing == {"party": 1} and labels.missing_values == [("party", "Nobody_LLC")]
    assert set(labels.labels) <= set(KLEISTER_LABELS)
    assert ceiling([labels])["all"] == (4, 5)


def test_name_key_and_suffix_variants() -> None:
    assert name_key("Leggett & Platt, Inc.") == name_key("Leggett_and_Platt_Inc.".replace("_", " "))
    words = "Escalade, Incorporated, an Indiana corporation".split()
    assert weak_labels(words, {"party": ["Escalade_Inc."]}).labels[:2] == ["B-party", "I-party"]


def test_fixture_ceiling() -> None:
    reader = KleisterNDAReader(FIXTURE, render=False)
    results = [weak_labels(d.words, d.key_values) for d in reader.read("train")]
    assert ceiling(results)["all"] == (10, 10)  # both text documents (5 values each): every value found


# --- the metric ----------------------------------------------------------------------------------------
from docalign.metrics.kleister_f1 import format_line, kleister_f1  # noqa: E402


def test_f1_hand_computed() -> None:
    expected = ["effective_date=2014-03-05 party=Nike_Inc. party=Eric_Dean_Sprunk term=2_years", "jurisdiction=Texas"]
    predicted = ["party=NIKE_INC. party=Someone term=2_years effective_date=2014-03-06", "jurisdiction=Texas party=X"]
    s = kleister_f1(expected, predicted)
    # upper-cased: TP = NIKE_INC., 2_years, Texas = 3; FP = Someone, 03-06, X = 3; FN = Sprunk, 03-05 = 2
    assert (s["all"].tp, s["all"].fp, s["all"].fn) == (3, 3, 2)
    assert s["all"].f1 == pytest.approx(2 * (3 / 6) * (3 / 5) / (3 / 6 + 3 / 5))
    assert (s["party"].tp, s["party"].fp, s["party"].fn) == (1, 2, 1) and s["party"].f1 == pytest.approx(0.4)
    assert s["term"].f1 == 1.0 and s["effective_date"].f1 == 0.0 and s["jurisdiction"].f1 == pytest.approx(1.0)
    true_cased = kleister_f1(expected, predicted, upper=False)
    assert (true_cased["all"].tp, true_cased["party"].tp) == (2, 0)  # NIKE_INC. != Nike_Inc. when cased
    assert kleister_f1(["a=1 a=1"], ["a=1"], keys=["a"])["a"].fn == 1  # items are a multiset
    with pytest.raises(ValueError, match="1 predicted line"):
        kleister_f1(["a=1", "a=2"], ["a=1"])


def test_format_line_sorted_and_deduplicated() -> None:
    line = format_line({"term": ["2_years"], "party": ["B_Inc.", "A_LLC", "B_Inc."], "effective_date": []})
    assert line == "party=B_Inc. party=A_LLC term=2_years"
    assert format_line({"term": ["2_years"], "party": ["A"]}, keys=["party"]) == "party=A"


# --- extraction ----------------------------------------------------------------------------------------
from docalign.inference.kleister import (  # noqa: E402
    decode_spans,
    normalise_party,
    rules_extract,
    select_values,
    write_out_tsv,
)


def test_normalise_party_as_the_release_writes_it() -> None:
    assert normalise_party("NIKE, Inc.,") == "Nike_Inc."
    assert normalise_party("Leggett & Platt, Incorporated") == "Leggett_and_Platt_Inc."
    assert normalise_party("Leonard Green & Partners, L.P.") == "Leonard_Green_and_Partners_LP"
    assert normalise_party("Wynn Resorts, Limited") == "Wynn_Resorts_Ltd."
    assert normalise_party("Colt’s Manufacturing Company LLC") == "Colt's_Manufacturing_Company_LLC"


def test_decode_and_select_values() -> None:
    words = "between NIKE, Inc. and Jane Roe dated April 18, 2001 for two (2) years Nike Inc.".split()
    labels = ["O", "B-party", "I-party", "O", "B-party", "I-party", "O"]
    labels += ["B-effective_date", "I-effective_date", "I-effective_date", "O"]
    labels += ["B-term", "I-term", "I-term", "B-party", "I-party"]
    conf = [0.9] * len(words)
    conf[4] = conf[5] = 0.5
    spans = decode_spans(labels, conf)
    assert spans[0] == ("party", 1, 2, pytest.approx(0.9))
    values = select_values(words, spans)
    assert values["party"] == ["Nike_Inc.", "Jane_Roe"]  # two occurrences of Nike summed first
    assert values["effective_date"] == ["2001-04-18"] and values["term"] == ["2_years"]
    assert select_values(words, spans, max_parties=1)["party"] == ["Nike_Inc."]
    assert "party" not in select_values(words, spans, min_score=5.0)
    assert decode_spans(["I-party", "I-term", "O"], [1.0, 1.0, 1.0]) == [("party", 0, 0, 1.0), ("term", 1, 1, 1.0)]


def test_model_only_where_confident() -> None:
    from docalign.inference.kleister import combine, pick_values

    ranked = {"party": [("A_Inc.", 2.5), ("B_LLC", 0.4)], "term": [("2_years", 0.3)]}
    assert pick_values(ranked, min_score=1.0) == {"party": ["A_Inc."]}
    rules = {"party": ["C_Corp."], "term": ["1_year"], "jurisdiction": ["Texas"]}
    model = pick_values(ranked, min_score=1.0)
    assert combine(model, rules, ["party", "term"]) == {"party": ["A_Inc."], "jurisdiction": ["Texas"]}
    assert combine(model, rules, ["party", "term"], fallback=True)["term"] == ["1_year"]
    assert combine(model, rules, ["term"])["party"] == ["C_Corp."]


def test_rules_on_the_fixture_and_out_tsv(tmp_path: Path) -> None:
    reader = KleisterNDAReader(FIXTURE, render=False)
    rows = reader.rows("dev-0")
    docs = [reader.read_file(r) for r in rows]
    predicted = [rules_extract(d.words, r.keys) for d, r in zip(docs, rows)]
    assert predicted[0]["effective_date"] == ["2016-08-22"] and predicted[0]["jurisdiction"] == ["Texas"]
    assert predicted[1]["jurisdiction"] == ["Massachusetts"] and "term" not in predicted[1]
    out = write_out_tsv(tmp_path / "run" / "out.tsv", predicted, [r.keys for r in rows])
    lines = out.read_text().split("\n")
    assert len(lines) == 3 and lines[-1] == ""  # one line per document, in in.tsv order
    expected = (FIXTURE / "dev-0" / "expected.tsv").read_text().splitlines()
    scores = kleister_f1(expected, lines[:2])
    assert scores["jurisdiction"].f1 == 1.0 and scores["effective_date"].f1 == 1.0


def test_extraction_command_with_the_rules(tmp_path: Path, capsys) -> None:
    import json

    from docalign.inference.kleister import main

    assert main(["--root", str(FIXTURE), "--split", "dev-0", "--out", str(tmp_path)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["documents"] == 2 and report["f1_uc"]["jurisdiction"] == 1.0
    assert len((tmp_path / "dev-0" / "out.tsv").read_text().splitlines()) == 2
    assert main(["--root", str(FIXTURE), "--split", "test-A", "--out", str(tmp_path)]) == 0
    assert "f1_uc" not in json.loads(capsys.readouterr().out)  # no expected.tsv: out.tsv only
    assert (tmp_path / "test-A" / "out.tsv").read_text().count("\n") == 1


@pytest.mark.slow
def test_trained_model_to_out_tsv(tmp_path: Path, capsys) -> None:
    """kleister_ft shrunk to one tiny step on the fixture, then its checkpoint on dev-0 and test-A."""
    import json

    from docalign.cli import cli_main
    from docalign.inference.kleister import main

    from conftest import cli_args

    cli = cli_main(["fit", *cli_args("kleister_ft", tmp_path)])
    run = Path(cli.trainer.log_dir)
    capsys.readouterr()
    for split, lines in (("dev-0", 2), ("test-A", 1)):
        assert main(["--root", str(FIXTURE), "--split", split, "--ckpt", str(run)]) == 0
        report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        out = run / "kleister" / split / "out.tsv"
        assert report["out"] == str(out) and len(out.read_text().split("\n")) == lines + 1
    assert set(report["model_keys"]) == {"effective_date", "jurisdiction", "party", "term"}


# --- long-document encoding ----------------------------------------------------------------------------
def test_windows_over_pages_keep_pages_and_score_every_word_once(minilm_tokenizer) -> None:
    import torch

    from docalign.data.encoding import DocumentEncoder, collate_windows

    reader = KleisterNDAReader(FIXTURE)
    doc = reader.read_file(reader.rows("train")[0])
    encoder = DocumentEncoder(minilm_tokenizer, KLEISTER_LABELS, max_length=32, stride=8, image_size=32)
    windows = encoder.encode(doc, 0)
    assert len(windows) > 3
    scored = [w.word_ids[t] for w in windows for t in range(len(w.input_ids)) if w.scored[t]]
    assert sorted(scored) == list(range(len(doc.words)))  # merged per word: each scored exactly once
    for w in windows:
        pages = [p for p in w.page_ids if p >= 0]
        assert pages == [doc.word_pages[i] for i in w.word_ids if i >= 0]
        assert w.page_index == max(sorted(set(pages)), key=pages.count)
    by_page = {w.page_index: w.image for w in windows}
    assert sorted(by_page) == [0, 1, 2]
    assert not torch.equal(by_page[0], by_page[2])  # each window sees its own page
    batch = collate_windows(windows[:3], minilm_tokenizer.pad_token_id)
    assert batch["page_ids"].shape == batch["input_ids"].shape and batch["page_index"].shape == (3,)
    assert (batch["page_ids"][batch["word_ids"] < 0] == -1).all()


def test_boxes_scale_by_their_own_page(minilm_tokenizer) -> None:
    from PIL import Image

    from docalign.data.document import Document
    from docalign.data.encoding import normalise_boxes

    pages = [Image.new("RGB", (100, 200)), Image.new("RGB", (400, 100))]
    doc = Document(
        "d", pages[0], ["a", "b"], [(50, 100, 100, 200), (200, 50, 400, 100)], pages=pages, word_pages=[0, 1]
    )
    assert normalise_boxes(doc, RepairLog()) == [[500, 500, 1000, 1000], [500, 500, 1000, 1000]]
    with pytest.raises(ValueError, match="word_pages\\[1\\]"):
        Document("d", pages[0], ["a", "b"], [(0, 0, 1, 1)] * 2, pages=pages, word_pages=[0, 2])
    with pytest.raises(ValueError, match="'word_pages' is set but 'pages' is not"):
        Document("d", pages[0], ["a"], [(0, 0, 1, 1)], word_pages=[0])
