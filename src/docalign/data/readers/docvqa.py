"""DocVQA (Mathew et al., WACV 2021): questions on document pages, extractive answers, the release's OCR.

Layout of a split folder ``root/{train,val,test}``::

    <split>_v1.0.json          questions (``<split>_v1.0_withQT.json`` is preferred when present)
    documents/<page>.png       page images
    ocr_results/<page>.json    the release's OCR (Microsoft Read API format)

Questions: ``{"data": [{"questionId", "question", "image": "documents/<page>.png", "docId",
"answers": [...]}, ...]}`` (the test split has no ``answers``). OCR: ``{"recognitionResults": [{"width",
"height", "unit": "pixel", "lines": [{"boundingBox": [x1, y1, ..., x4, y4], "text", "words":
[{"boundingBox": [8 numbers], "text"}, ...]}, ...]}]}``; a word's box is the hull of its 8 numbers,
scaled to the image when the OCR's width/height differ from it.

One ``Document`` per page, with its questions as ``qa_pairs`` in file order. Each answer is located as a
word span (inclusive word indices) by ``find_spans``, exact matches only: first case-insensitive with white
space ignored (``"$ 300"`` = words ``"$", "300"``), then on letters and digits only (``"Orcutt"`` = word
``"Orcutt,"``). ``answer_spans`` holds the first span of every answer found (no duplicates). Counts in
``stats``: ``questions``, ``answers not found`` (answer strings with no span) and ``questions with no
answer found`` (questions with answers, none located).

Hub copies (``DocVQAHubReader``): ``lmms-lab/DocVQA`` (config ``DocVQA``; splits ``validation``, 5,349 questions,
and ``test``, 5,188 questions without answers; no ``train``), or ``HuggingFaceM4/DocumentVQA`` (default config;
``train``, ``validation``, ``test``), one row per question: ``questionId``, ``question``, ``question_types``,
``image`` (the page), ``docId``, ``ucsf_document_id``, ``ucsf_document_page_no``, ``answers`` (list of strings;
null in test). They carry no OCR, so the words come from an OCR engine, as for RVL-CDIP.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from ..document import Document, QAPair
from .base import Box, Reader, find_spans, points_to_box, word_text
from .classification import OCRFunction, _OCRMixin
from .hub import HubReader, HubRow

DOCVQA_HUB_ID = "lmms-lab/DocVQA"
DOCVQA_HUB_CONFIG = "DocVQA"


def answer_key(text: str) -> str:
    """First matching key for answers: lower case, white space removed (``"$ 300"`` -> ``"$300"``)."""
    return "".join(text.lower().split())


def loose_answer_key(text: str) -> str:
    """Fallback matching key: lower-case letters and digits only (``"Orcutt"`` matches the word ``"Orcutt,"``)."""
    return "".join(ch for ch in text.lower() if ch.isalnum())


@dataclass
class DocVQAPage:
    """One page of a split and the questions asked about it (the reader's sample key)."""

    folder: Path
    image: str
    questions: list[tuple[str, list[str]]] = field(default_factory=list)

    @property
    def ocr_path(self) -> Path:
        return self.folder / "ocr_results" / f"{Path(self.image).stem}.json"


class _AnswerSpans:
    """``qa_pairs``: a page's questions with their answers located in its words (counted in ``self.stats``)."""

    stats: Any

    def qa_pairs(self, page: Any, words: list[str]) -> list[QAPair]:
        pairs = []
        for question, answers in page.questions:
            self.stats["questions"] += 1
            spans: list[tuple[int, int]] = []
            for answer in dict.fromkeys(answers):  # distinct answers, in order
                found = find_spans(words, answer, key=answer_key, exact_only=True) or find_spans(
                    words, answer, key=loose_answer_key, exact_only=True
                )
                if not found:
                    self.stats["answers not found"] += 1
                elif found[0][:2] not in spans:
                    spans.append(found[0][:2])
            if answers and not spans:
                self.stats["questions with no answer found"] += 1
            pairs.append(QAPair(question=question, answers=list(answers), answer_spans=spans))
        return pairs


class DocVQAReader(_AnswerSpans, Reader):
    """Reads DocVQA split folders (see the module docstring).

    Args:
        root: the folder holding ``train/``, ``val/`` and ``test/``.
        strict, repairs, max_pixels: see ``Reader``.
    """

    splits = ("train", "val", "test")

    def questions_file(self, split: str) -> Path:
        folder = self.root / split
        for name in (f"{split}_v1.0_withQT.json", f"{split}_v1.0.json"):
            if (folder / name).is_file():
                return folder / name
        found = sorted(folder.glob("*.json"))
        if len(found) != 1:
            raise FileNotFoundError(
                f"DocVQA {split}: expected {folder}/{split}_v1.0.json (root={self.root}), "
                f"found {[p.name for p in found]}"
            )
        return found[0]

    def files(self, split: str) -> list[DocVQAPage]:
        """The split's pages, in the order of their first question."""
        self.check_split(split)
        path = self.questions_file(split)
        where = str(path)
        data = self.read_json(path, "data")
        records = data.get("data") if isinstance(data, dict) else None
        if data is not None and not isinstance(records, list):
            self.repairs.report(where, "data", "missing or not a list of questions", "read no questions")
        pages: dict[str, DocVQAPage] = {}
        for i, record in enumerate(records if isinstance(records, list) else []):
            question = record.get("question") if isinstance(record, dict) else None
            image = record.get("image") if isinstance(record, dict) else None
            if not isinstance(question, str) or not isinstance(image, str):
                self.repairs.report(
                    where, f"data[{i}]", "needs string fields 'question' and 'image'", "skip the question"
                )
                continue
            if self.confined_path(path.parent, image, where, f"data[{i}].image", "skip the question") is None:
                continue
            answers = record.get("answers", [])
            if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
                self.repairs.report(
                    where,
                    f"data[{i}].answers",
                    f"not a list of strings: {answers!r}",
                    "keep the question without answers",
                )
                answers = []
            pages.setdefault(image, DocVQAPage(path.parent, image)).questions.append((question, answers))
        return list(pages.values())

    def dependencies(self, page: DocVQAPage) -> list[Path]:
        return [page.folder / page.image, page.ocr_path]

    def parse_ocr(
        self, page: DocVQAPage, image_size: tuple[int, int]
    ) -> Optional[tuple[list[str], list[Box], list[str]]]:
        """``(words, boxes, fields)`` from the page's OCR file, boxes in pixels of the image."""
        path = page.ocr_path
        where = str(path)
        data = self.read_json(path, "ocr")
        if data is None:
            return None
        results = data.get("recognitionResults") if isinstance(data, dict) else None
        if not isinstance(results, list) or not results or not isinstance(results[0], dict):
            self.repairs.report(where, "recognitionResults", "missing, empty or not a list of pages", "skip the page")
            return None
        result = results[0]
        sx, sy = 1.0, 1.0
        if (
            isinstance(result.get("width"), (int, float))
            and isinstance(result.get("height"), (int, float))
            and result["width"] > 0
            and result["height"] > 0
            and (result["width"], result["height"]) != image_size
        ):
            sx, sy = image_size[0] / result["width"], image_size[1] / result["height"]
            self.stats["boxes scaled to the image size"] += 1
        words: list[str] = []
        boxes: list[Box] = []
        fields: list[str] = []
        lines = result.get("lines")
        if not isinstance(lines, list):
            self.repairs.report(where, "recognitionResults[0].lines", "missing or not a list", "skip the page")
            return None
        for i, line in enumerate(lines):
            line_words = line.get("words") if isinstance(line, dict) else None
            if not isinstance(line_words, list):
                self.repairs.report(
                    where, f"recognitionResults[0].lines[{i}].words", "missing or not a list", "skip the line"
                )
                continue
            for j, word in enumerate(line_words):
                name = f"recognitionResults[0].lines[{i}].words[{j}]"
                text = word_text(
                    word.get("text") if isinstance(word, dict) else None,
                    where,
                    f"{name}.text",
                    self.repairs,
                    self.stats,
                )
                coords = word.get("boundingBox") if isinstance(word, dict) else None
                if text is None:
                    continue
                try:
                    if len(coords) != 8:
                        raise ValueError
                    xs = [float(v) * sx for v in coords[0::2]]
                    ys = [float(v) * sy for v in coords[1::2]]
                except (TypeError, ValueError):
                    self.repairs.report(
                        where, f"{name}.boundingBox", f"needs 8 numbers, got {coords!r}", "skip the word"
                    )
                    continue
                words.append(text)
                boxes.append(points_to_box(xs, ys))
                fields.append(f"{name}.boundingBox")
        return words, boxes, fields

    def read_file(self, page: DocVQAPage) -> Optional[Document]:
        where = str(page.ocr_path)
        image = self.open_image(page.folder / page.image, where)
        if image is None:
            return None
        parsed = self.parse_ocr(page, image.size)
        if parsed is None:
            return None
        words, boxes, fields = parsed
        if not self.require_words(where, words, "skip the page"):
            return None
        self.check_boxes(where, fields, boxes, image.size)
        return Document(
            doc_id=Path(page.image).stem,
            image=image,
            words=words,
            boxes=boxes,
            qa_pairs=self.qa_pairs(page, words),
            source=where,
        )


@dataclass
class DocVQAHubPage:
    """One page of a hub split: the rows (one per question) that show it, its name and its questions."""

    split: str
    rows: list[int]
    doc_id: str
    questions: list[tuple[str, list[str]]] = field(default_factory=list)


class DocVQAHubReader(_OCRMixin, _AnswerSpans, HubReader):
    """Reads a DocVQA hub copy through ``datasets`` (see the module docstring and ``readers.hub``).

    Pages: the rows are questions; rows whose page image has the same content (the SHA-256 of its encoded bytes)
    are one ``Document``, pages in the order of their first question and questions in row order as ``qa_pairs``,
    answers located exactly as ``DocVQAReader`` does (same ``stats`` counts). A page is named
    ``<ucsf_document_id>_<ucsf_document_page_no>`` like the release's image file (else its ``docId``, else
    ``<hub split>-<first row>``). Words and boxes come from ``ocr`` (required: the copies have no OCR); a page where
    OCR finds no words is skipped and counted, as in the folder reader.

    Splits: ours map to the copy's through ``hub_splits`` (default train -> train, val -> validation, test ->
    test); a split the copy lacks (``lmms-lab/DocVQA`` has no train) raises ``DataError`` naming the ones it has.

    Bad rows (named ``<hub id>[<hub split>][<row>]`` and the field; strict: raised): a null or non-string
    question, or a row without image bytes, skips the question; answers that are not a list of strings keep the
    question without answers (null answers, as in test, are no problem); an image that cannot be decoded skips
    the page.

    Args:
        hub_id: the dataset repository (default ``lmms-lab/DocVQA``), or a local folder of parquet files.
        ocr: ``image -> (words, boxes)`` in pixels of the image (e.g. the DataModule's cached OCR engine).
        config: the repository's configuration (default ``DocVQA``; None for a copy with only the default).
        revision: default None, the repository's main branch (the copies are parquet already).
        hub_splits: our split -> the copy's split.
        question_column, answers_column, image_column: column names.
        page_columns: the columns that name a page, joined by ``_`` (all must be non-empty).
        docid_column: the fallback name of a page.
        strict, repairs, max_pixels: see ``Reader``.
    """

    splits = ("train", "val", "test")
    instead = (
        "Read the DocVQA release folder instead (train/, val/ and test/ with <split>_v1.0.json, documents/ "
        "and ocr_results/): `--data.init_args.root /path/to/docvqa` or set DOCALIGN_DOCVQA."
    )

    def __init__(
        self,
        hub_id: str = DOCVQA_HUB_ID,
        *,
        ocr: Optional[OCRFunction] = None,
        config: Optional[str] = DOCVQA_HUB_CONFIG,
        revision: Optional[str] = None,
        hub_splits: Optional[dict[str, str]] = None,
        question_column: str = "question",
        answers_column: str = "answers",
        image_column: str = "image",
        page_columns: tuple[str, ...] = ("ucsf_document_id", "ucsf_document_page_no"),
        docid_column: Optional[str] = "docId",
        **kwargs: Any,
    ) -> None:
        if ocr is None:
            raise ValueError("DocVQAHubReader needs an OCR callable: the hub copies have no OCR words")
        self.hub_splits = dict(hub_splits or {"train": "train", "val": "validation", "test": "test"})
        kwargs.setdefault("id_column", None)
        super().__init__(hub_id, revision=revision, config=config, **kwargs)
        self.ocr = ocr
        self.question_column, self.answers_column, self.image_column = question_column, answers_column, image_column
        self.page_columns, self.docid_column = tuple(page_columns), docid_column

    def _column(self, data: Any, name: Optional[str]) -> list[Any]:
        return list(data[name]) if name and name in data.column_names else [None] * len(data)

    def _image_keys(self, data: Any) -> list[Optional[str]]:
        """Per row, the SHA-256 of the page image's encoded bytes (its path when the copy stores no bytes), or None."""
        if self.image_column not in data.column_names:
            return [None] * len(data)
        from datasets import Image as ImageFeature

        raw = data.select_columns([self.image_column]).cast_column(self.image_column, ImageFeature(decode=False))
        keys: list[Optional[str]] = []
        for batch in raw.iter(batch_size=64):
            for value in batch[self.image_column]:
                content = value.get("bytes") if isinstance(value, dict) else None
                path = value.get("path") if isinstance(value, dict) else None
                if content:
                    keys.append(hashlib.sha256(content).hexdigest())
                else:
                    keys.append(f"path:{path}" if path else None)
        return keys

    def page_name(self, names: list[Any], doc_id: Any, hub_split: str, index: int) -> str:
        if names and all(isinstance(v, (str, int)) and str(v).strip() for v in names):
            return "_".join(str(v).strip() for v in names)
        if doc_id is not None and str(doc_id).strip():
            return str(doc_id).strip()
        return f"{hub_split}-{index}"

    def files(self, split: str) -> list[DocVQAHubPage]:  # type: ignore[override]
        """The split's pages, in the order of their first question (questions in row order)."""
        data = self.dataset(split)
        hub_split = self.hub_splits[split]
        questions = self._column(data, self.question_column)
        answers = self._column(data, self.answers_column)
        doc_ids = self._column(data, self.docid_column)
        names = [self._column(data, c) for c in self.page_columns]
        pages: dict[str, DocVQAHubPage] = {}
        for i, (question, image_key) in enumerate(zip(questions, self._image_keys(data))):
            where = f"{self.hub_id}[{hub_split}][{i}]"
            if not isinstance(question, str) or not question.strip():
                reason = (
                    "missing (no such column, or a null value)"
                    if question is None
                    else f"not a non-empty string: {question!r}"
                )
                self.repairs.report(where, self.question_column, reason, "skip the question")
                continue
            if image_key is None:
                self.repairs.report(
                    where, self.image_column, "missing (no such column, or no image bytes)", "skip the question"
                )
                continue
            row_answers = answers[i]
            if row_answers is None:
                row_answers = []
            elif not isinstance(row_answers, list) or not all(isinstance(a, str) for a in row_answers):
                self.repairs.report(
                    where,
                    self.answers_column,
                    f"not a list of strings: {row_answers!r}",
                    "keep the question without answers",
                )
                row_answers = []
            if image_key not in pages:
                name = self.page_name([column[i] for column in names], doc_ids[i], hub_split, i)
                pages[image_key] = DocVQAHubPage(split, [], name)
            page = pages[image_key]
            page.rows.append(i)
            page.questions.append((question, list(row_answers)))
        return list(pages.values())

    def read_file(self, page: DocVQAHubPage) -> Optional[Document]:  # type: ignore[override]
        first = HubRow(page.split, page.rows[0], page.doc_id)
        where = self.where(first)
        row = self.row(first)
        if row is None:
            return None
        image, _ = self.page_image(row, self.image_column, where)
        if image is None:
            return None
        recognised = self._run_ocr(image, where)
        if recognised is None:
            return None
        words, boxes = recognised
        if not self.require_words(where, words, "skip the page"):
            return None
        self.check_boxes(where, [f"ocr box of word {i}" for i in range(len(words))], boxes, image.size)
        return Document(
            doc_id=page.doc_id, image=image, words=words, boxes=boxes, qa_pairs=self.qa_pairs(page, words), source=where
        )
