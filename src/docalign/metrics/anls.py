"""ANLS (Average Normalized Levenshtein Similarity), DocVQA's metric, as a torchmetrics Metric.

Per question (Biten et al., ICCV 2019; Mathew et al., WACV 2021): ``max over gold answers g of s(p, g)`` with
``s = 1 - NL`` when ``NL < tau`` and 0 otherwise, ``NL = Levenshtein(p, g) / max(len(p), len(g))`` on
normalised strings (lower case, white space stripped at both ends and runs of it collapsed to one space,
as the official evaluation script does); ``tau = 0.5``. ANLS is the mean over questions.

A long page is cut into several windows per question (``data.qa_encoding``), each proposing its own best
span with a score. ``update`` receives one record per (question, window): the question's identity
(document index, question index on the page), the window's index, the span's score, the predicted text
and the gold answers. The strings never leave the process: ``update`` scores each record's text against
its gold answers at once and keeps only numbers. ``compute`` gathers the records of every process, drops
repeated (document, question, window) records (the distributed sampler repeats samples to even out the
ranks), keeps per question the record of its best-scoring window (ties: the lowest window index) and
averages those records' ANLS over the questions that have gold answers (questions without any, such as
the release's test split, are not scored).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torchmetrics import Metric
from torchmetrics.utilities.data import dim_zero_cat

ANLS_THRESHOLD = 0.5


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions; each costs 1) between ``a`` and ``b``."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))  # distances from a[:0] to every prefix of b
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def normalise_answer(text: str) -> str:
    """Lower case, white space stripped at both ends and collapsed inside (``" Dr.  SMITH "`` -> ``"dr. smith"``)."""
    return " ".join(text.lower().split())


def anls_score(prediction: str, answers: Sequence[str], threshold: float = ANLS_THRESHOLD) -> float:
    """One question's ANLS: the best ``1 - NL`` over ``answers`` (0 where ``NL >= threshold``); 0 without answers."""
    pred = normalise_answer(prediction)
    best = 0.0
    for answer in answers:
        gold = normalise_answer(answer)
        longest = max(len(pred), len(gold))
        nl = levenshtein(pred, gold) / longest if longest else 0.0
        if nl < threshold:
            best = max(best, 1.0 - nl)
    return best


class ANLS(Metric):
    """Mean ANLS over questions, windows of a question merged by best span score; synced across processes."""

    full_state_update = False

    def __init__(self, threshold: float = ANLS_THRESHOLD, **kwargs) -> None:
        super().__init__(**kwargs)
        self.threshold = threshold
        for name in ("doc", "question", "window", "score", "value"):
            self.add_state(name, default=[], dist_reduce_fx="cat")

    def update(
        self,
        doc: torch.Tensor,
        question: torch.Tensor,
        window: torch.Tensor,
        score: torch.Tensor,
        predictions: Sequence[str],
        answers: Sequence[Sequence[str]],
    ) -> None:
        """One record per (question, window).

        Args:
            doc, question, window: (N,) long: document index in the split, question index on its page,
                window index among the question's windows.
            score: (N,) float, the window's best span score (higher is better; -inf: no span).
            predictions: N predicted answer strings; answers: N lists of gold answers (empty: not scored).
        """
        if not (len(doc) == len(question) == len(window) == len(score) == len(predictions) == len(answers)):
            raise ValueError(
                f"ANLS.update needs one entry per record in every argument, got {len(doc)} documents, "
                f"{len(question)} questions, {len(window)} windows, {len(score)} scores, "
                f"{len(predictions)} predictions and {len(answers)} answer lists"
            )
        values = [anls_score(p, a, self.threshold) if a else float("nan") for p, a in zip(predictions, answers)]
        device = score.device
        self.doc.append(doc.long())
        self.question.append(question.long())
        self.window.append(window.long())
        self.score.append(score.detach().float())
        self.value.append(torch.tensor(values, dtype=torch.float32, device=device))

    def per_question(self) -> dict[tuple[int, int], tuple[int, float, float]]:
        """``{(doc, question): (window, score, anls)}`` of each question's best window (NaN anls: no gold answer)."""
        if isinstance(self.doc, list) and not self.doc:  # nothing seen (lists before a sync, tensors after)
            return {}
        states = (self.doc, self.question, self.window, self.score, self.value)
        columns = [dim_zero_cat(x).cpu().tolist() for x in states]
        best: dict[tuple[int, int], tuple[int, float, float]] = {}
        seen: set[tuple[int, int, int]] = set()
        for d, q, w, s, v in zip(*columns):
            if (d, q, w) in seen:  # a repeat of the distributed sampler
                continue
            seen.add((d, q, w))
            kept = best.get((d, q))
            if kept is None or s > kept[1] or (s == kept[1] and w < kept[0]):
                best[(d, q)] = (w, s, v)
        return best

    def compute(self) -> torch.Tensor:
        values = [v for _, _, v in self.per_question().values() if v == v]  # NaN: no gold answer
        return torch.tensor(sum(values) / len(values) if values else 0.0, dtype=torch.float32)
