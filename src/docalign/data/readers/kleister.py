"""Kleister-NDA (Stanislawek et al., ICDAR 2021): non-disclosure agreements from EDGAR, key information
``effective_date``, ``jurisdiction``, ``party``, ``term``, read from the benchmark's own release layout::

    documents/<md5>.pdf              every document (printed from HTML with Puppeteer: a text layer)
    in-header.tsv                    column names of in.tsv: filename, keys, text_djvu, text_tesseract,
                                     text_textract, text_best
    {train,dev-0,test-A}/in.tsv.xz   one document per line (xz-compressed; plain in.tsv also accepted)
    {train,dev-0}/expected.tsv       one line per in.tsv line: ``key=value`` pairs separated by spaces,
                                     spaces and colons in values written as ``_`` (test-A: withheld)

TSVs are read with no quoting (``csv.QUOTE_NONE``: a double quote is an ordinary character). The four
text columns are the release's own OCR/extraction outputs with ``\\n``, ``\\t``, ``\\f`` (page break) and
``\\\\`` escaped; ``KleisterRow.texts`` holds them unescaped.

A ``Document`` per in.tsv line: ``pages`` has one image per PDF page rendered at ``dpi`` (``render=False``:
blank 1-bit pages of the right size, for text-only uses such as weak labels and the rules baseline), the
words and their boxes (pixels of their page at ``dpi``) come from the PDF's text layer
(``page.get_text("words")``, in content order), ``word_pages`` gives each word's page, and
``key_values`` the expected values (None on test-A). A page with no text layer is rendered and read by
``ocr`` (an ``OcrEngine`` or any callable image -> ``OcrResult``; wrap it in ``docalign.ocr.CachedEngine``
to cache it), counted in ``stats["pages OCR'd"]``.

Bad input, counted in ``repairs`` (strict: ``DataError`` naming the file and field):
- a file name that leaves ``documents/``, a missing or unparsable PDF, a PDF with no page -> skip the document;
- a page with no text layer and no OCR engine, or whose image cannot be rendered, or whose OCR finds
  nothing -> keep the page with no words (the document keeps its other pages);
- a document with no words on any page -> skip the document;
- an in.tsv line with too few columns -> skip the line; ``expected.tsv`` shorter than ``in.tsv`` -> the
  documents without an expected line are unlabelled (``key_values`` None);
- an expected pair with no ``=`` or an empty value -> skip the pair.
Known properties of the release, counted in ``stats``, not errors: decoy keys (a key listed in ``keys``
with no expected value: the benchmark's documented way of saying "no value", ``stats["decoy keys"]``),
expected keys absent from the ``keys`` column (3 train lines; kept), pages, words, pages OCR'd, seconds
spent reading PDFs.
"""

from __future__ import annotations

import csv
import io
import lzma
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from PIL import Image

from ...conventions import MAX_PAGE_PIXELS
from ..document import Document
from ..images import PDF_POINTS_PER_INCH
from ..kleister_values import KLEISTER_LABELS, weak_labels
from .base import Box, Reader

KLEISTER_KEYS: tuple[str, ...] = ("effective_date", "jurisdiction", "party", "term")
__all__ = [
    "KLEISTER_KEYS",
    "KLEISTER_LABELS",
    "KleisterNDAReader",
    "KleisterRow",
    "parse_expected_line",
    "unescape_text",
]
KLEISTER_COLUMNS: tuple[str, ...] = ("filename", "keys", "text_djvu", "text_tesseract", "text_textract", "text_best")
DEFAULT_KLEISTER_DPI = 72

csv.field_size_limit(2**31 - 1)  # text columns of long documents exceed csv's 128 KiB default


def unescape_text(text: str) -> str:
    """The release's escaped text (``\\n``, ``\\t``, ``\\f``, ``\\\\``) -> plain text (``\\f`` -> form feed)."""
    out, i = [], 0
    table = {"n": "\n", "t": "\t", "f": "\f", "\\": "\\"}
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] in table:
            out.append(table[text[i + 1]])
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def parse_expected_line(line: str) -> list[tuple[str, str]]:
    """``"k1=v1 k2=v2"`` -> ``[("k1", "v1"), ("k2", "v2")]``; a token without ``=`` is ``("", token)``."""
    pairs = []
    for token in line.split():
        key, eq, value = token.partition("=")
        pairs.append((key, value) if eq else ("", token))
    return pairs


@dataclass
class KleisterRow:
    """One in.tsv line: the document's file name, its keys, the release's text layers and expected values."""

    split: str
    line: int  # 1-based line of in.tsv
    filename: str
    keys: list[str]
    texts: dict[str, str] = field(default_factory=dict)  # column name -> unescaped text
    expected: Optional[dict[str, list[str]]] = None  # None: unlabelled (test-A)

    @property
    def where(self) -> str:
        return f"{self.split}/in.tsv:{self.line} ({self.filename})"


OcrCallable = Callable[[Image.Image], Any]


class KleisterNDAReader(Reader):
    """Reads the Kleister-NDA release (see the module docstring for the layout and the repairs).

    Args:
        root: the release folder (``documents/``, ``train/``, ``dev-0/``, ``test-A/``, ``in-header.tsv``).
        dpi: rendering resolution of the page images; word boxes are in pixels at this resolution.
        render: render page images (False: blank pages of the right size; pages without a text layer are
            still rendered for OCR).
        ocr: the OCR for pages without a text layer (None: such pages keep no words, counted).
        ocr_dpi: the resolution pages are rendered at for OCR (boxes are scaled back to ``dpi``).
        max_pages: read at most this many pages per document (None: all), counted when it cuts.
        label: weak word labels (``Document.word_labels``, BIO over ``KLEISTER_LABELS``) from the expected values
            (``docalign.data.kleister_values.weak_labels``); values not found counted in ``stats`` per key.
        strict, repairs, max_pixels: see ``Reader`` (``max_pixels`` bounds every rendered page).
    """

    splits = ("train", "dev-0", "test-A")

    def __init__(
        self,
        root: str | Path,
        *,
        dpi: int = DEFAULT_KLEISTER_DPI,
        render: bool = True,
        ocr: Optional[OcrCallable] = None,
        ocr_dpi: int = 200,
        max_pages: Optional[int] = None,
        label: bool = True,
        max_pixels: Optional[int] = MAX_PAGE_PIXELS,
        **kwargs: Any,
    ) -> None:
        super().__init__(root, max_pixels=max_pixels, **kwargs)
        if dpi <= 0 or ocr_dpi <= 0:
            raise ValueError(f"KleisterNDAReader: dpi and ocr_dpi must be positive, got {dpi} and {ocr_dpi}")
        self.dpi, self.render, self.ocr, self.ocr_dpi, self.max_pages = dpi, render, ocr, ocr_dpi, max_pages
        self.label = label
        self.seconds = 0.0  # time spent reading PDFs (rendering, text layer, OCR)
        self._rows: dict[str, list[KleisterRow]] = {}

    # --- the TSVs ---------------------------------------------------------------------------------
    def _input_path(self, split: str) -> Path:
        folder = self.root / split
        for name in ("in.tsv.xz", "in.tsv"):
            if (folder / name).is_file():
                return folder / name
        raise FileNotFoundError(
            f"Kleister-NDA {split} not found: no {folder}/in.tsv.xz (root={self.root}; expected documents/, "
            "train/, dev-0/, test-A/ with in.tsv.xz, and expected.tsv for train and dev-0)"
        )

    def columns(self) -> tuple[str, ...]:
        """The in.tsv column names from ``in-header.tsv`` (the release's documented ones when it is absent)."""
        header = self.root / "in-header.tsv"
        if not header.is_file():
            self.stats["in-header.tsv absent (documented columns used)"] += 1
            return KLEISTER_COLUMNS
        names = tuple(header.read_text(encoding="utf-8").rstrip("\n").split("\t"))
        if names[:2] != ("filename", "keys"):
            self.repairs.report(
                str(header), "columns", f"expected filename, keys first, got {names[:2]}", "use the documented columns"
            )
            return KLEISTER_COLUMNS
        return names

    def rows(self, split: str) -> list[KleisterRow]:
        """The split's in.tsv lines in file order (with expected values for train and dev-0)."""
        self.check_split(split)
        if split in self._rows:
            return self._rows[split]
        path = self._input_path(split)
        raw = lzma.open(path, "rb").read() if path.suffix == ".xz" else path.read_bytes()
        columns = self.columns()
        rows: list[KleisterRow] = []
        reader = csv.reader(io.StringIO(raw.decode("utf-8"), newline=""), delimiter="\t", quoting=csv.QUOTE_NONE)
        for n, cells in enumerate(reader, start=1):
            if len(cells) < 2:
                self.repairs.report(
                    f"{split}/{path.name}:{n}", "columns", f"{len(cells)} column(s), need 2+", "skip the line"
                )
                continue
            texts = {name: unescape_text(cell) for name, cell in zip(columns[2:], cells[2:])}
            rows.append(KleisterRow(split, n, cells[0], cells[1].split(), texts))
        self._attach_expected(split, rows)
        self._rows[split] = rows
        return rows

    def _attach_expected(self, split: str, rows: list[KleisterRow]) -> None:
        path = self.root / split / "expected.tsv"
        if not path.is_file():
            self.stats[f"{split}: no expected.tsv (unlabelled)"] += 1
            return
        lines = path.read_text(encoding="utf-8").split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        if len(lines) != len(rows):
            self.repairs.report(
                str(path),
                "lines",
                f"{len(lines)} expected line(s) for {len(rows)} in.tsv line(s)",
                "leave the documents without an expected line unlabelled",
            )
        for row, line in zip(rows, lines):
            expected: dict[str, list[str]] = {}
            for key, value in parse_expected_line(line):
                if not key or not value:
                    self.repairs.report(
                        f"{path}:{row.line}", "pair", f"{key}={value!r} is not key=value", "skip the pair"
                    )
                    continue
                if key not in row.keys:  # 3 train lines of the release: a property of it, not bad input
                    self.stats["expected keys not in the keys column (kept)"] += 1
                expected.setdefault(key, []).append(value)
            self.stats["decoy keys"] += sum(1 for k in row.keys if k not in expected)
            row.expected = expected

    # --- the Reader interface ---------------------------------------------------------------------
    def files(self, split: str) -> list[KleisterRow]:
        return self.rows(split)

    def pdf_path(self, row: KleisterRow) -> Optional[Path]:
        return self.confined_path(self.root / "documents", row.filename, row.where, "filename")

    def dependencies(self, row: KleisterRow) -> list[Path]:
        path = self.pdf_path(row)
        return [self._input_path(row.split)] + ([path] if path is not None else [])

    def read_file(self, row: KleisterRow) -> Optional[Document]:
        path = self.pdf_path(row)
        if path is None:
            return None
        start = time.perf_counter()
        try:
            return self._read_pdf(row, path)
        finally:
            self.seconds += time.perf_counter() - start
            self.stats["seconds reading PDFs (x1000)"] = int(1000 * self.seconds)

    def _read_pdf(self, row: KleisterRow, path: Path) -> Optional[Document]:
        try:
            import pymupdf
        except ImportError:  # older PyMuPDF releases only have the ``fitz`` name
            import fitz as pymupdf
        where = row.where
        if not path.is_file():
            self.repairs.report(where, "filename", f"PDF {path} not found", "skip the document")
            return None
        try:
            pdf = pymupdf.open(path)
        except Exception as err:  # noqa: BLE001 - PyMuPDF raises several unrelated types for bad files
            self.repairs.report(
                where, "filename", f"PDF {path} cannot be opened ({type(err).__name__}: {err})", "skip the document"
            )
            return None
        with pdf:
            if pdf.page_count == 0:
                self.repairs.report(where, "filename", f"PDF {path} has no page", "skip the document")
                return None
            count = pdf.page_count
            if self.max_pages is not None and count > self.max_pages:
                self.stats["documents cut to max_pages"] += 1
                count = self.max_pages
            pages: list[Image.Image] = []
            words: list[str] = []
            boxes: list[Box] = []
            word_pages: list[int] = []
            for p in range(count):
                page = pdf[p]
                field_name = f"page {p + 1}"
                zoom = self.dpi / PDF_POINTS_PER_INCH
                size = (max(1, round(page.rect.width * zoom)), max(1, round(page.rect.height * zoom)))
                if self.max_pixels is not None and size[0] * size[1] > self.max_pixels:
                    self.repairs.report(
                        where,
                        field_name,
                        f"page of {size[0]}x{size[1]} pixels at {self.dpi} dpi, over max_pixels",
                        "skip the document",
                    )
                    return None
                try:
                    layer = page.get_text("words")
                except Exception as err:  # noqa: BLE001
                    self.repairs.report(
                        where, field_name, f"text layer unreadable ({type(err).__name__}: {err})", "OCR the page"
                    )
                    layer = []
                page_words = [
                    (w[4].strip(), (w[0] * zoom, w[1] * zoom, w[2] * zoom, w[3] * zoom)) for w in layer if w[4].strip()
                ]
                image = None
                if self.render:
                    image = self._render(pymupdf, page, self.dpi, where, field_name)
                if not page_words:
                    page_words = self._ocr_page(pymupdf, page, zoom, where, field_name)
                if image is None:
                    image = Image.new("1", size, 1)
                pages.append(image)
                for text, box in page_words:
                    words.append(text)
                    boxes.append(box)
                    word_pages.append(p)
                self.stats["pages"] += 1
        if not words:
            self.repairs.report(where, "words", f"no words on any of the {count} page(s)", "skip the document")
            return None
        self.stats["words"] += len(words)
        word_labels = None
        if self.label and row.expected is not None:
            weak = weak_labels(words, row.expected)
            word_labels = weak.labels
            for key, n in weak.found.items():
                self.stats[f"{key} values found"] += n
            for key, n in weak.missing.items():
                self.stats[f"{key} values not found"] += n
        return Document(
            doc_id=Path(row.filename).stem,
            image=pages[0],
            words=words,
            boxes=boxes,
            source=where,
            pages=pages,
            word_pages=word_pages,
            word_labels=word_labels,
            key_values=row.expected,
        )

    def _render(self, pymupdf: Any, page: Any, dpi: int, where: str, field_name: str) -> Optional[Image.Image]:
        zoom = dpi / PDF_POINTS_PER_INCH
        try:
            pix = page.get_pixmap(matrix=pymupdf.Matrix(zoom, zoom), alpha=False, colorspace=pymupdf.csRGB)
        except Exception as err:  # noqa: BLE001
            self.repairs.report(
                where, field_name, f"page cannot be rendered ({type(err).__name__}: {err})", "keep a blank page"
            )
            return None
        return Image.frombytes("RGB", (pix.width, pix.height), pix.samples)

    def _ocr_page(self, pymupdf: Any, page: Any, zoom: float, where: str, field_name: str) -> list[tuple[str, Box]]:
        """Words of a page with no text layer, read by ``ocr`` at ``ocr_dpi`` (boxes scaled to ``dpi``)."""
        if self.ocr is None:
            self.repairs.report(where, field_name, "no text layer and no OCR engine", "keep the page with no words")
            return []
        image = self._render(pymupdf, page, self.ocr_dpi, where, field_name)
        if image is None:
            self.repairs.report(where, field_name, "no text layer and no usable image", "keep the page with no words")
            return []
        result = self.ocr(image)
        self.stats["pages OCR'd"] += 1
        scale = zoom / (self.ocr_dpi / PDF_POINTS_PER_INCH)
        out = [
            (str(w).strip(), tuple(float(v) * scale for v in b))
            for w, b in zip(result.words, result.boxes)
            if str(w).strip()
        ]
        if not out:
            self.repairs.report(
                where, field_name, "no text layer and OCR found no words", "keep the page with no words"
            )
        return out  # type: ignore[return-value]
