"""The Kleister-NDA score: F1 over ``key=value`` pairs, as the benchmark's GEval configuration computes it.

``config.txt`` of the release: ``MultiLabel-F1:uN<F1(UC)>`` (the main metric, values upper-cased),
``MultiLabel-F1:N<F1>`` (true-cased) and per-key F1 with the pairs of one key only (``m<party=\\S+\\s*>``).
Each document is a *multiset* of ``key=value`` items (its expected.tsv / out.tsv line split on
whitespace); true positives are the items in both (with multiplicity), false positives the predicted
rest, false negatives the expected rest; counts are summed over all documents (micro F1):
``P = TP / (TP + FP)``, ``R = TP / (TP + FN)``, ``F1 = 2PR / (P + R)``, 0 when a denominator is 0.
Upper-casing applies to the whole item (``party=Nike_Inc.`` = ``PARTY=NIKE_INC.``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

KEYS: tuple[str, ...] = ("effective_date", "jurisdiction", "party", "term")


@dataclass
class PRF:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def items(line: str) -> list[str]:
    """The ``key=value`` items of one expected.tsv / out.tsv line."""
    return line.split()


def kleister_f1(
    expected: Sequence[str], predicted: Sequence[str], upper: bool = True, keys: Iterable[str] = KEYS
) -> dict[str, PRF]:
    """Counts per key and ``"all"`` over aligned lines (``expected[i]`` and ``predicted[i]`` are document i).

    Raises ``ValueError`` when the numbers of lines differ (an out.tsv must have one line per document)."""
    if len(expected) != len(predicted):
        raise ValueError(f"kleister_f1: {len(predicted)} predicted line(s) for {len(expected)} expected")
    keys = list(keys)
    out = {k: PRF() for k in keys + ["all"]}
    for exp_line, pred_line in zip(expected, predicted):
        exp = Counter(x.upper() if upper else x for x in items(exp_line))
        pred = Counter(x.upper() if upper else x for x in items(pred_line))
        for key in keys + ["all"]:
            if key == "all":
                e, p = exp, pred
            else:
                prefix = (key.upper() if upper else key) + "="
                e = Counter({x: n for x, n in exp.items() if x.startswith(prefix)})
                p = Counter({x: n for x, n in pred.items() if x.startswith(prefix)})
            tp = sum((e & p).values())
            out[key].tp += tp
            out[key].fp += sum(p.values()) - tp
            out[key].fn += sum(e.values()) - tp
    return out


def format_line(values: dict[str, list[str]], keys: Optional[Sequence[str]] = None) -> str:
    """An out.tsv line: ``key=value`` pairs sorted by key (values in the given order, duplicates dropped)."""
    pairs = []
    for key in sorted(values):
        if keys is not None and key not in keys:
            continue
        seen = set()
        for value in values[key]:
            if value and value not in seen:
                seen.add(value)
                pairs.append(f"{key}={value}")
    return " ".join(pairs)


def summary(scores: dict[str, PRF]) -> str:
    return ", ".join(f"{k} {v.f1:.3f}" for k, v in scores.items())
