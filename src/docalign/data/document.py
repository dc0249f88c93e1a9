"""The one record type every dataset reader yields.

A ``Document`` is one page (or one multi-page document flattened to one image) with its words in
reading order. Boxes are in the image's own pixel coordinates; scaling to the 0-1000 grid the models
use happens at encoding time, where the page size is known.

Multi-page documents (Kleister-NDA) also set ``pages`` (one image per page, ``image`` is ``pages[0]``)
and ``word_pages`` (the 0-based page of each word): a word's box is then in pixels of *its* page. A
document without ``pages`` is a single page and behaves exactly as before.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from PIL import Image


@dataclass
class QAPair:
    """A question about the document; ``answer_spans`` are inclusive (first_word, last_word) indices."""

    question: str
    answers: list[str] = field(default_factory=list)
    answer_spans: list[tuple[int, int]] = field(default_factory=list)


@dataclass
class Document:
    """One document page.

    Attributes:
        doc_id: stable identifier (file stem, hub row id, generator index); used in error messages.
        image: the page as a PIL image (any mode; encoding converts to RGB).
        words: the page's words in reading order.
        boxes: one (x0, y0, x1, y1) box per word, in pixels of ``image``.
        word_labels: one string label per word (BIO tags such as ``B-menu.nm``), or None when the
            document is unlabelled at word level.
        doc_label: the document's class (classification datasets), or None.
        qa_pairs: questions and answers (document QA), possibly empty.
        source: where the record came from (a file path or a hub id), for error messages.
        pages: multi-page documents: every page's image (``image`` is the first); None for one page.
        word_pages: with ``pages``: the 0-based page index of each word (its box is in that page's pixels).
        key_values: key information extraction: the expected values per key (benchmark-written strings,
            e.g. ``{"party": ["Nike_Inc."], "term": ["2_years"]}``), or None when unlabelled.
        word_boxes: each word's own box (pixels) when ``boxes`` are segment-level (a reader's ``segment_boxes``);
            None: ``boxes`` are the words' own boxes, or the reader keeps none. Not a model input: only AETNet's
            PITA can use it (``pita_boxes: words``).
    """

    doc_id: str
    image: Image.Image
    words: list[str]
    boxes: list[tuple[float, float, float, float]]
    word_labels: Optional[list[str]] = None
    doc_label: Optional[str] = None
    qa_pairs: list[QAPair] = field(default_factory=list)
    source: str = ""
    pages: Optional[list[Image.Image]] = None
    word_pages: Optional[list[int]] = None
    key_values: Optional[dict[str, list[str]]] = None
    word_boxes: Optional[list[tuple[float, float, float, float]]] = None

    def __post_init__(self) -> None:
        where = self.source or self.doc_id
        if self.pages is not None:
            if not self.pages:
                raise ValueError(f"{where}: field 'pages' is empty (a multi-page document needs at least one page)")
            if self.word_pages is None or len(self.word_pages) != len(self.words):
                n = None if self.word_pages is None else len(self.word_pages)
                raise ValueError(f"{where}: field 'word_pages' has {n} entries but 'words' has {len(self.words)}")
            for i, page in enumerate(self.word_pages):
                if not 0 <= page < len(self.pages):
                    raise ValueError(f"{where}: field 'word_pages[{i}]' is {page}, not a page of {len(self.pages)}")
        elif self.word_pages is not None:
            raise ValueError(f"{where}: field 'word_pages' is set but 'pages' is not")
        if len(self.boxes) != len(self.words):
            raise ValueError(f"{where}: field 'boxes' has {len(self.boxes)} entries but 'words' has {len(self.words)}")
        if self.word_boxes is not None and len(self.word_boxes) != len(self.words):
            raise ValueError(
                f"{where}: field 'word_boxes' has {len(self.word_boxes)} entries but 'words' has {len(self.words)}"
            )
        if self.word_labels is not None and len(self.word_labels) != len(self.words):
            raise ValueError(
                f"{where}: field 'word_labels' has {len(self.word_labels)} entries but 'words' has {len(self.words)}"
            )
        for i, box in enumerate(self.boxes):
            if len(box) != 4:
                raise ValueError(f"{where}: field 'boxes[{i}]' must have 4 numbers, got {box!r}")

    @classmethod
    def from_ocr(cls, result: Any, doc_id: str, image: Image.Image, source: str = "") -> "Document":
        """The page ``image`` with the words and pixel boxes of ``result`` (a ``docalign.ocr.OcrResult``), no labels."""
        return cls(
            doc_id=doc_id,
            image=image,
            words=list(result.words),
            boxes=[tuple(float(v) for v in b) for b in result.boxes],
            source=source,
        )

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the (first) page in pixels."""
        return self.image.size

    @property
    def page_count(self) -> int:
        return len(self.pages) if self.pages is not None else 1

    def page_of(self, word: int) -> int:
        """The 0-based page of word ``word`` (0 for a single-page document)."""
        return self.word_pages[word] if self.word_pages is not None else 0

    def page_image(self, page: int) -> Image.Image:
        return self.pages[page] if self.pages is not None else self.image
