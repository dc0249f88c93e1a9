"""Document QA inputs: one ``[CLS] question [SEP] page words [SEP]`` window per (question, window of the page).

Built on ``DocumentEncoder``'s machinery (fast-tokenizer handling with its ``[UNK]`` repair, box validation
and 0-1000 scaling with counted repairs, the image tensor, ``window_starts``): the page is tokenized and
its image resized once, then every question gets its own windows.

Layout of a window: ``[CLS]``, the question's sub-tokens (at most ``max_question_tokens``; a longer
question is cut and the repair counted), ``[SEP]``, a run of the page's sub-tokens, ``[SEP]``. Boxes:
``[0, 0, 0, 0]`` for ``[CLS]`` and the question tokens, ``[1000] * 4`` for ``[SEP]`` (the encoder's
special-token convention), the word's box for page tokens. ``word_ids`` and ``segment_ids`` (the encoder's
segments of the page) are -1 on special and question tokens, so ``word_ids >= 0`` marks exactly the tokens an
answer may be made of. ``window_index`` counts the windows of each question from 0.

Long pages: the page's sub-tokens are cut into overlapping runs of ``max_length - 3 - len(question)``
tokens sharing ``stride`` tokens (``encoding.window_starts``), so no page word is lost.

Targets: the question's first located answer span (``QAPair.answer_spans[0]``, inclusive word indices).
A window whose page tokens hold the span whole (the first sub-token of its first word and the last
sub-token of its last word) gets the token indices of those two sub-tokens as ``start_position`` /
``end_position``; any other window gets 0 / 0 ("no answer in this window": ``[CLS]``). A question without
a located span gets -100 / -100 in every window (no target; the loss ignores it). ``skip_unlocated``
(training) drops such questions instead and counts them in ``stats`` under ``SKIPPED``; evaluation keeps
them, since ANLS scores the predicted text against the answer strings whether or not they were found in
the OCR. An out-of-range or inverted span is bad input: repaired (treated as not located) and counted,
or raised in strict mode, naming the document and ``qa_pairs[i].answer_spans[0]``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import torch

from ..conventions import IGNORE_INDEX, PAGE_SCALE
from .document import Document
from .encoding import (
    DocumentEncoder,
    EncodedWindow,
    collate_windows,
    image_to_tensor,
    normalise_boxes,
    window_starts,
    word_segments,
)
from .repairs import RepairLog

SKIPPED = "training questions skipped (no answer located in the OCR)"


@dataclass
class QAWindow(EncodedWindow):
    """One (question, window) sample: an ``EncodedWindow`` (``labels`` all -100, ``scored`` all False) plus the
    question, its targets and what decoding needs to turn a span back into text."""

    question_index: int = 0  # the question's index among its page's questions (QAPair order)
    start_position: int = IGNORE_INDEX  # token index of the answer's first sub-token; 0: not in this window
    end_position: int = IGNORE_INDEX  # token index of the answer's last sub-token; -100: no located answer
    question: str = ""
    answers: list[str] = field(default_factory=list)  # the gold answer strings (empty: none, e.g. the test split)
    words: list[str] = field(default_factory=list)  # the page's words (one list shared by the page's windows)


class QAEncoder(DocumentEncoder):
    """Encodes the ``qa_pairs`` of ``Document`` records into ``QAWindow`` samples (see the module docstring).

    Args:
        tokenizer, max_length, stride, image_size, repairs: as for ``DocumentEncoder``.
        max_question_tokens: the longest question kept, in sub-tokens; ``max_length - 3 - max_question_tokens``
            must exceed ``stride`` so that every window holds new page tokens.
        skip_unlocated: drop questions without a located answer span (training) instead of keeping them
            with no target (evaluation); each drop is counted in ``stats[SKIPPED]``.
        stats: the Counter to count into (the DataModules pass their reader's, so the counts are logged and
            cached with the reader's); default: a new one.
    """

    def __init__(
        self,
        tokenizer: Any,
        max_length: int = 512,
        stride: int = 128,
        image_size: Optional[int] = 224,
        repairs: Optional[RepairLog] = None,
        max_question_tokens: int = 64,
        skip_unlocated: bool = False,
        stats: Optional[Counter] = None,
    ) -> None:
        super().__init__(tokenizer, [], max_length=max_length, stride=stride, image_size=image_size, repairs=repairs)
        if max_question_tokens < 1 or max_length - 3 - max_question_tokens <= stride:
            raise ValueError(
                f"max_question_tokens={max_question_tokens} leaves windows of max_length={max_length} "
                f"tokens no more than stride={stride} page tokens (3 are special): use at least 1 and "
                f"at most {max_length - 4 - stride} question tokens, or a smaller stride"
            )
        self.max_question_tokens = max_question_tokens
        self.skip_unlocated = skip_unlocated
        self.stats: Counter = stats if stats is not None else Counter()

    def _question_ids(self, doc: Document, index: int, question: str) -> list[int]:
        """Sub-token ids of the question, cut (and counted) at ``max_question_tokens``."""
        words = question.split()
        if not words:
            return []
        ids = list(self.tokenizer(words, is_split_into_words=True, add_special_tokens=False)["input_ids"])
        if len(ids) > self.max_question_tokens:
            self.repairs.report(
                doc.source or doc.doc_id,
                f"qa_pairs[{index}].question",
                f"question of {len(ids)} sub-tokens",
                f"keep its first {self.max_question_tokens}",
            )
            ids = ids[: self.max_question_tokens]
        return ids

    def _span(self, doc: Document, index: int, spans: Sequence[tuple[int, int]]) -> Optional[tuple[int, int]]:
        """The first answer span as (first word, last word), or None when there is none (or it is invalid)."""
        if not spans:
            return None
        first, last = spans[0]
        if not 0 <= first <= last < len(doc.words):
            self.repairs.report(
                doc.source or doc.doc_id,
                f"qa_pairs[{index}].answer_spans[0]",
                f"span {spans[0]!r} is not inside the page's {len(doc.words)} words",
                "treat the answer as not located",
            )
            return None
        return first, last

    def encode(self, doc: Document, doc_index: int) -> list[QAWindow]:
        """All (question, window) samples of one page, questions in ``qa_pairs`` order."""
        where = doc.source or doc.doc_id
        if not doc.words:
            self.repairs.report(where, "words", "page with no words", "keep it as an image-only sample")
        boxes = normalise_boxes(doc, self.repairs)
        segments = word_segments(boxes)
        token_ids, token_words = self._tokenize(doc)
        first_token: dict[int, int] = {}
        last_token: dict[int, int] = {}
        for t, w in enumerate(token_words):
            first_token.setdefault(w, t)
            last_token[w] = t
        image = image_to_tensor(doc.image, self.image_size) if self.image_size else None
        tok = self.tokenizer

        windows = []
        for q, pair in enumerate(doc.qa_pairs):
            span = self._span(doc, q, pair.answer_spans)
            if span is None and self.skip_unlocated:
                self.stats[SKIPPED] += 1
                continue
            question = self._question_ids(doc, q, pair.question)
            content = self.max_length - 3 - len(question)
            offset = len(question) + 2  # window index of the first page token
            answer_tokens = (first_token[span[0]], last_token[span[1]]) if span is not None else None
            for w, s in enumerate(window_starts(len(token_ids), content, self.stride)):
                page = range(s, min(s + content, len(token_ids)))
                ids = (
                    [tok.cls_token_id]
                    + question
                    + [tok.sep_token_id]
                    + [token_ids[t] for t in page]
                    + [tok.sep_token_id]
                )
                bbox = (
                    [[0, 0, 0, 0]] * (len(question) + 1)
                    + [[PAGE_SCALE] * 4]
                    + [boxes[token_words[t]] for t in page]
                    + [[PAGE_SCALE] * 4]
                )
                word_ids = [-1] * offset + [token_words[t] for t in page] + [-1]
                segment_ids = [-1] * offset + [segments[token_words[t]] for t in page] + [-1]
                if answer_tokens is None:
                    start = end = IGNORE_INDEX
                elif s <= answer_tokens[0] and answer_tokens[1] < s + content:
                    start, end = offset + answer_tokens[0] - s, offset + answer_tokens[1] - s
                else:
                    start = end = 0
                windows.append(
                    QAWindow(
                        ids,
                        bbox,
                        [IGNORE_INDEX] * len(ids),
                        word_ids,
                        segment_ids,
                        [False] * len(ids),
                        doc_index,
                        window_index=w,
                        image=image,
                        question_index=q,
                        start_position=start,
                        end_position=end,
                        question=pair.question,
                        answers=list(pair.answers),
                        words=doc.words,
                    )
                )
        return windows


def collate_qa(windows: Sequence[QAWindow], pad_token_id: int) -> dict[str, Any]:
    """``collate_windows`` (``window_index`` included) plus ``start_positions``, ``end_positions``,
    ``question_index`` (all (B,) long) and the lists ``question`` (B strings), ``answers`` (B lists of strings)
    and ``words`` (B lists of the page's words, indexed by ``word_ids``)."""
    out: dict[str, Any] = collate_windows(windows, pad_token_id)
    for name in ("start_position", "end_position"):
        out[f"{name}s"] = torch.tensor([getattr(w, name) for w in windows], dtype=torch.long)
    out["question_index"] = torch.tensor([w.question_index for w in windows], dtype=torch.long)
    out["question"] = [w.question for w in windows]
    out["answers"] = [list(w.answers) for w in windows]
    out["words"] = [w.words for w in windows]
    return out
