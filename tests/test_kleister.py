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
