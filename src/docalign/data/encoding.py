"""Documents -> model inputs: sub-word tokens, first-sub-token labels, 0-1000 boxes, image tensors.

Long documents are cut into overlapping windows of ``max_length`` tokens instead of being truncated.
Every word is *scored* by exactly one window (the one in which its first sub-token lies furthest from
the window's edges), so predictions merge back to one label per word and no word is lost. Each window
carries its ``window_index`` (0, 1, ... in page order), so a (document, window) pair names one window.

Segments (``word_segments``): a segment is a maximal run of consecutive words, in reading order, whose
0-1000 boxes are equal (segment-level boxes, ``segment_boxes: true``, give an entity's or a line's words
one box). Every token carries its word's segment index within the document (``segment_ids``, -1 on
special tokens); segment decoding (``metrics.entity_f1``) reads these ids and nothing downstream looks at
boxes again. The rule uses the model's inputs only: two runs of one box separated by another box are two
segments, and two adjacent entities that share one box are one segment (FUNSD has none: on its train and
test splits the runs are exactly the annotation's entities).

Multi-page documents (``Document.pages``): the token sequence runs over all pages in order and is windowed
the same way; every token carries its word's page (``page_ids``), boxes are scaled by the size of the
word's own page, and each window takes the image of the page that holds most of its tokens
(``page_index``; ties: the earliest page), so a window of page 7's words sees page 7. The per-page image
tensors are built once per document and shared by its windows.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Sequence

import torch
from PIL import Image

from ..conventions import IGNORE_INDEX, PAGE_SCALE
from .document import Document
from .repairs import RepairLog


@dataclass
class EncodedWindow:
    """One model input. Shapes are per window: L tokens (no padding yet)."""

    input_ids: list[int]  # (L,)
    bbox: list[list[int]]  # (L, 4), 0-1000
    labels: list[int]  # (L,), label id on a word's first sub-token, -100 elsewhere
    word_ids: list[int]  # (L,), index of the word in the document, -1 for special tokens
    segment_ids: list[int]  # (L,), index of the word's segment in the document (word_segments), -1 special
    scored: list[bool]  # (L,), True on the one token whose prediction counts for its word
    doc_index: int  # index of the document in its split
    window_index: int  # index of the window among its document's windows (QA: its question's)
    image: torch.Tensor | None  # (3, S, S) uint8, shared by the windows of one document
    doc_label: int = IGNORE_INDEX  # the document's class id (classification), -100 when it has none
    page_ids: list[int] | None = None  # (L,), the page of each token's word (-1 special); None: one page
    page_index: int = 0  # the page whose image ``image`` is
    # (L, 4) 0-1000, each token's word's own box when the document has ``word_boxes`` (segment boxes in ``bbox``);
    # None otherwise. Only AETNet's PITA reads it (``pita_boxes: words``).
    word_bbox: list[list[int]] | None = None


def normalise_boxes(doc: Document, repairs: RepairLog) -> list[list[int]]:
    """Pixel boxes -> integer boxes on the 0-1000 grid, repairing inverted and out-of-page boxes.

    A multi-page document's word is scaled by the size of its own page (``Document.word_pages``)."""
    where = doc.source or doc.doc_id
    sizes = [page.size for page in doc.pages] if doc.pages is not None else [doc.size]
    for p, (width, height) in enumerate(sizes):
        if width <= 0 or height <= 0:
            field = "image" if doc.pages is None else f"pages[{p}]"
            raise ValueError(f"{where}: field '{field}' has an empty size {(width, height)}")
    out = []
    for i, box in enumerate(doc.boxes):
        width, height = sizes[doc.word_pages[i]] if doc.word_pages is not None else sizes[0]
        x0, y0, x1, y1 = (float(v) for v in box)
        if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
            raise ValueError(f"{where}: field 'boxes[{i}]' is not finite: {box!r}")
        if x1 < x0 or y1 < y0:
            repairs.report(where, f"boxes[{i}]", f"inverted box {box!r}", "swap its corners")
            x0, x1 = min(x0, x1), max(x0, x1)
            y0, y1 = min(y0, y1), max(y0, y1)
        if x0 < 0 or y0 < 0 or x1 > width or y1 > height:
            repairs.report(
                where, f"boxes[{i}]", f"box {box!r} outside the {width}x{height} page", "clip it to the page"
            )
            x0, x1 = min(max(x0, 0.0), width), min(max(x1, 0.0), width)
            y0, y1 = min(max(y0, 0.0), height), min(max(y1, 0.0), height)
        out.append(
            [
                int(PAGE_SCALE * x0 / width),
                int(PAGE_SCALE * y0 / height),
                int(PAGE_SCALE * x1 / width),
                int(PAGE_SCALE * y1 / height),
            ]
        )
    return out


def word_segments(boxes: list[list[int]]) -> list[int]:
    """Per word, the index of its segment: a new segment starts at every word whose box differs from the
    previous word's (see the module docstring).

    >>> word_segments([[1, 1, 5, 5], [1, 1, 5, 5], [6, 1, 9, 5], [1, 1, 5, 5]])
    [0, 0, 1, 2]
    """
    out: list[int] = []
    for i, box in enumerate(boxes):
        out.append(0 if i == 0 else out[-1] + (box != boxes[i - 1]))
    return out


def image_to_tensor(image: Image.Image, size: int) -> torch.Tensor:
    """Any PIL image -> (3, size, size) uint8 RGB tensor (bilinear resize, aspect not kept)."""
    rgb = image.convert("RGB").resize((size, size), Image.BILINEAR)
    return torch.frombuffer(bytearray(rgb.tobytes()), dtype=torch.uint8).view(size, size, 3).permute(2, 0, 1)


def window_starts(n_tokens: int, content: int, stride: int) -> list[int]:
    """Start offsets of windows of ``content`` tokens overlapping by ``stride`` that cover ``n_tokens``."""
    if not 0 <= stride < content:
        raise ValueError(f"stride must be in [0, {content}) for windows of {content} tokens, got {stride}")
    starts = [0]
    while starts[-1] + content < n_tokens:
        starts.append(starts[-1] + content - stride)
    return starts


class DocumentEncoder:
    """Encodes ``Document`` records for a layout-aware model.

    Args:
        tokenizer: a Hugging Face *fast* tokenizer (WordPiece or BPE); BPE tokenizers must have been
            loaded with ``add_prefix_space=True``.
        label_names: the tag set; ``word_labels`` are mapped to their index.
        doc_label_names: the document classes; ``doc_label`` is mapped to its index and copied to every
            window of the document. None (default): documents are not classified, ``doc_label`` stays -100.
            A separate list (not ``label_names``) so that word tags and document classes never mix.
        max_length: tokens per window, special tokens included.
        stride: tokens shared by consecutive windows of a long document.
        image_size: side of the square image tensor (None: no image).
        repairs: where problems are counted (or raised, if strict).
    """

    def __init__(
        self,
        tokenizer: Any,
        label_names: Sequence[str],
        max_length: int = 512,
        stride: int = 128,
        image_size: int | None = 224,
        repairs: RepairLog | None = None,
        doc_label_names: Sequence[str] | None = None,
    ) -> None:
        if not getattr(tokenizer, "is_fast", False):
            raise TypeError("DocumentEncoder needs a fast tokenizer (it maps sub-tokens back to words)")
        self.tokenizer = tokenizer
        self.label_names = list(label_names)
        self.label2id = {name: i for i, name in enumerate(self.label_names)}
        self.doc_label_names = list(doc_label_names) if doc_label_names is not None else None
        self.doc_label2id = {name: i for i, name in enumerate(self.doc_label_names or [])}
        self.max_length = max_length
        self.stride = stride
        self.image_size = image_size
        self.repairs = repairs if repairs is not None else RepairLog()
        self._unk = tokenizer.unk_token or tokenizer.pad_token

    def _label_ids(self, doc: Document) -> list[int] | None:
        if doc.word_labels is None:
            return None
        where = doc.source or doc.doc_id
        ids = []
        for i, label in enumerate(doc.word_labels):
            if label not in self.label2id:
                self.repairs.report(where, f"word_labels[{i}]", f"unknown label {label!r}", "label the word 'O'")
                label = "O"
            ids.append(self.label2id[label])
        return ids

    def _doc_label_id(self, doc: Document) -> int:
        """The class id of ``doc.doc_label``; -100 when not classifying, unlabelled, or (lenient) unknown."""
        if self.doc_label_names is None or doc.doc_label is None:
            return IGNORE_INDEX
        if doc.doc_label not in self.doc_label2id:
            self.repairs.report(
                doc.source or doc.doc_id,
                "doc_label",
                f"unknown class {doc.doc_label!r} (known: {', '.join(self.doc_label_names)})",
                "leave the document unlabelled (-100)",
            )
            return IGNORE_INDEX
        return self.doc_label2id[doc.doc_label]

    def _tokenize(self, doc: Document) -> tuple[list[int], list[int]]:
        """Sub-token ids and, per sub-token, its word index. Words with no sub-token become UNK."""
        if not doc.words:
            return [], []
        words = list(doc.words)
        enc = self.tokenizer(words, is_split_into_words=True, add_special_tokens=False)
        word_ids = enc.word_ids()
        present = set(word_ids)
        missing = [i for i in range(len(words)) if i not in present]
        if missing:
            where = doc.source or doc.doc_id
            for i in missing:
                self.repairs.report(
                    where, f"words[{i}]", f"word {words[i]!r} has no sub-token", f"encode it as {self._unk}"
                )
                words[i] = self._unk
            enc = self.tokenizer(words, is_split_into_words=True, add_special_tokens=False)
            word_ids = enc.word_ids()
        return list(enc["input_ids"]), list(word_ids)

    def encode(self, doc: Document, doc_index: int) -> list[EncodedWindow]:
        """All windows of one document (at least one, even for a page with no words)."""
        if not doc.words and self.doc_label_names is None:  # classification: a blank page is a legitimate sample
            self.repairs.report(
                doc.source or doc.doc_id, "words", "page with no words", "keep it as an image-only sample"
            )
        boxes = normalise_boxes(doc, self.repairs)
        own_boxes = None
        if doc.word_boxes is not None:  # repairs already counted for the input boxes: these are fixed quietly
            own_boxes = normalise_boxes(dataclasses.replace(doc, boxes=doc.word_boxes), RepairLog(strict=False))
        labels = self._label_ids(doc)
        doc_label = self._doc_label_id(doc)
        segments = word_segments(boxes)
        token_ids, token_words = self._tokenize(doc)
        page_tensors: dict[int, torch.Tensor] = {}

        def page_tensor(page: int) -> torch.Tensor | None:
            if not self.image_size:
                return None
            if page not in page_tensors:
                page_tensors[page] = image_to_tensor(doc.page_image(page), self.image_size)
            return page_tensors[page]

        multi_page = doc.pages is not None

        content = self.max_length - 2
        starts = window_starts(len(token_ids), content, self.stride)
        # The scoring token of a word: its first sub-token, owned by the window where it is most central.
        first_token = {}
        for t, w in enumerate(token_words):
            first_token.setdefault(w, t)
        owner = {}
        for w, t in first_token.items():
            candidates = [s for s in starts if s <= t < s + content]
            owner[t] = max(candidates, key=lambda s: (min(t - s, s + content - 1 - t), -s))

        tok = self.tokenizer
        windows = []
        for index, s in enumerate(starts):
            span = range(s, min(s + content, len(token_ids)))
            ids = [tok.cls_token_id] + [token_ids[t] for t in span] + [tok.sep_token_id]
            bbox = [[0, 0, 0, 0]] + [boxes[token_words[t]] for t in span] + [[PAGE_SCALE] * 4]
            word_ids = [-1] + [token_words[t] for t in span] + [-1]
            segment_ids = [-1] + [segments[token_words[t]] for t in span] + [-1]
            page_ids = None
            page = 0
            if multi_page:
                token_pages = [doc.word_pages[token_words[t]] for t in span]
                page_ids = [-1] + token_pages + [-1]
                if token_pages:
                    counts: dict[int, int] = {}
                    for p in token_pages:
                        counts[p] = counts.get(p, 0) + 1
                    page = max(sorted(counts), key=lambda p: counts[p])
            scored = [False] + [owner.get(t) == s for t in span] + [False]
            word_bbox = None
            if own_boxes is not None:
                word_bbox = [[0, 0, 0, 0]] + [own_boxes[token_words[t]] for t in span] + [[PAGE_SCALE] * 4]
            if labels is None:
                lab = [IGNORE_INDEX] * len(ids)
            else:
                # Train on every window's first sub-tokens; only the owner's prediction is scored.
                lab = (
                    [IGNORE_INDEX]
                    + [labels[token_words[t]] if first_token[token_words[t]] == t else IGNORE_INDEX for t in span]
                    + [IGNORE_INDEX]
                )
            windows.append(
                EncodedWindow(
                    ids,
                    bbox,
                    lab,
                    word_ids,
                    segment_ids,
                    scored,
                    doc_index,
                    window_index=index,
                    image=page_tensor(page),
                    doc_label=doc_label,
                    page_ids=page_ids,
                    page_index=page,
                    word_bbox=word_bbox,
                )
            )
        return windows


def collate_windows(windows: Sequence[EncodedWindow], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Pad a list of windows to the longest one.

    Returns ``input_ids (B, L)``, ``attention_mask (B, L)``, ``bbox (B, L, 4)``, ``labels (B, L)``,
    ``word_ids (B, L)`` and ``segment_ids (B, L)`` (-1 on special and padding tokens), ``scored (B, L)`` bool,
    ``doc_index (B,)``, ``window_index (B,)``, ``doc_label (B,)`` (class id, -100 when the document has none),
    ``page_ids (B, L)`` (each token's page, -1 on special and padding tokens; 0 for single-page documents),
    ``page_index (B,)`` (the page whose image the window carries), ``word_bbox (B, L, 4)`` (the words' own boxes; only
    when a window carries them, the others' filled with their ``bbox``)
    and ``pixel_values (B, 3, S, S)`` float in [0, 1] (each consumer normalises it once for itself: the backbones
    with ``conventions.PIXEL_MEAN``/``PIXEL_STD``, the alignment ViT with its own statistics; the alignment views
    augment it as it is).
    """
    length = max(len(w.input_ids) for w in windows)
    batch = len(windows)
    out = {
        "input_ids": torch.full((batch, length), pad_token_id, dtype=torch.long),
        "attention_mask": torch.zeros((batch, length), dtype=torch.long),
        "bbox": torch.zeros((batch, length, 4), dtype=torch.long),
        "labels": torch.full((batch, length), IGNORE_INDEX, dtype=torch.long),
        "word_ids": torch.full((batch, length), -1, dtype=torch.long),
        "segment_ids": torch.full((batch, length), -1, dtype=torch.long),
        "scored": torch.zeros((batch, length), dtype=torch.bool),
        "doc_index": torch.tensor([w.doc_index for w in windows], dtype=torch.long),
        "window_index": torch.tensor([w.window_index for w in windows], dtype=torch.long),
        "doc_label": torch.tensor([w.doc_label for w in windows], dtype=torch.long),
        "page_ids": torch.full((batch, length), -1, dtype=torch.long),
        "page_index": torch.tensor([w.page_index for w in windows], dtype=torch.long),
    }
    for i, w in enumerate(windows):
        n = len(w.input_ids)
        out["input_ids"][i, :n] = torch.tensor(w.input_ids)
        out["attention_mask"][i, :n] = 1
        out["bbox"][i, :n] = torch.tensor(w.bbox)
        out["labels"][i, :n] = torch.tensor(w.labels)
        out["word_ids"][i, :n] = torch.tensor(w.word_ids)
        out["segment_ids"][i, :n] = torch.tensor(w.segment_ids)
        out["scored"][i, :n] = torch.tensor(w.scored)
        if w.page_ids is not None:
            out["page_ids"][i, :n] = torch.tensor(w.page_ids)
        else:
            out["page_ids"][i, 1 : n - 1] = 0
    if any(w.word_bbox is not None for w in windows):
        out["word_bbox"] = out["bbox"].clone()
        for i, w in enumerate(windows):
            if w.word_bbox is not None:
                out["word_bbox"][i, : len(w.word_bbox)] = torch.tensor(w.word_bbox)
    if windows[0].image is not None:
        out["pixel_values"] = torch.stack([w.image for w in windows]).float().div_(255.0)
    return out
