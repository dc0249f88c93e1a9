"""The one record type every dataset reader yields.

A ``Document`` is one page (or one multi-page document flattened to one image) with its words in
reading order. Boxes are in the image's own pixel coordinates; scaling to the 0-1000 grid the models
use happens at encoding time, where the page size is known.
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
    word_boxes: Optional[list[tuple[float, float, float, float]]] = None

    def __post_init__(self) -> None:
        where = self.source or self.doc_id
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
        """(width, height) of the page in pixels."""
        return self.image.size
