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
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ..document import Document, QAPair
from .base import Box, Reader, find_spans, points_to_box


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


class DocVQAReader(Reader):
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
            raise FileNotFoundError(f"DocVQA {split}: expected {folder}/{split}_v1.0.json (root={self.root}), "
                                    f"found {[p.name for p in found]}")
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
        for i, record in enumerate(records or []):
            question = record.get("question") if isinstance(record, dict) else None
            image = record.get("image") if isinstance(record, dict) else None
            if not isinstance(question, str) or not isinstance(image, str):
                self.repairs.report(where, f"data[{i}]", "needs string fields 'question' and 'image'", "skip the question")
                continue
            answers = record.get("answers", [])
            if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
                self.repairs.report(where, f"data[{i}].answers", f"not a list of strings: {answers!r}",
                                    "keep the question without answers")
                answers = []
            pages.setdefault(image, DocVQAPage(path.parent, image)).questions.append((question, answers))
        return list(pages.values())

    def dependencies(self, page: DocVQAPage) -> list[Path]:
        return [page.folder / page.image, page.ocr_path]

    def parse_ocr(self, page: DocVQAPage, image_size: tuple[int, int]
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
        if isinstance(result.get("width"), (int, float)) and isinstance(result.get("height"), (int, float)) \
                and result["width"] > 0 and result["height"] > 0 \
                and (result["width"], result["height"]) != image_size:
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
                self.repairs.report(where, f"recognitionResults[0].lines[{i}].words", "missing or not a list",
                                    "skip the line")
                continue
            for j, word in enumerate(line_words):
                name = f"recognitionResults[0].lines[{i}].words[{j}]"
                text = word.get("text") if isinstance(word, dict) else None
                coords = word.get("boundingBox") if isinstance(word, dict) else None
                if not isinstance(text, str):
                    self.repairs.report(where, f"{name}.text", f"missing or not a string: {text!r}", "skip the word")
                    continue
                if not text.strip():
                    self.stats["empty words skipped"] += 1
                    continue
                try:
                    if len(coords) != 8:
                        raise ValueError
                    xs = [float(v) * sx for v in coords[0::2]]
                    ys = [float(v) * sy for v in coords[1::2]]
                except (TypeError, ValueError):
                    self.repairs.report(where, f"{name}.boundingBox", f"needs 8 numbers, got {coords!r}", "skip the word")
                    continue
                words.append(text.strip())
                boxes.append(points_to_box(xs, ys))
                fields.append(f"{name}.boundingBox")
        return words, boxes, fields

    def qa_pairs(self, page: DocVQAPage, words: list[str]) -> list[QAPair]:
        pairs = []
        for question, answers in page.questions:
            self.stats["questions"] += 1
            spans: list[tuple[int, int]] = []
            for answer in dict.fromkeys(answers):  # distinct answers, in order
                found = (find_spans(words, answer, key=answer_key, exact_only=True)
                         or find_spans(words, answer, key=loose_answer_key, exact_only=True))
                if not found:
                    self.stats["answers not found"] += 1
                elif found[0][:2] not in spans:
                    spans.append(found[0][:2])
            if answers and not spans:
                self.stats["questions with no answer found"] += 1
            pairs.append(QAPair(question=question, answers=list(answers), answer_spans=spans))
        return pairs

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
        return Document(doc_id=Path(page.image).stem, image=image, words=words, boxes=boxes,
                        qa_pairs=self.qa_pairs(page, words), source=where)
