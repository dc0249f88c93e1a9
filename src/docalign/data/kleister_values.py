"""Kleister-NDA values <-> document words: parsing the written forms, weak BIO labels, normalisation.

The benchmark gives *values* (``effective_date=2014-03-05``, ``party=Nike_Inc.``, ``term=2_years``), not
positions. This module finds them in a document's words so a token classifier can be trained, and turns
word spans back into values the way the benchmark writes them:

- dates: ``March 5, 2014``, ``March 5th, 2014``, ``5 March 2014``, ``the 5th day of March, 2014``,
  ``Mar. 5, 2014``, ``3/5/2014``, ``03/05/14``, ``2014-03-05`` -> ``2014-03-05`` (``date_spans``);
- terms: ``2 years``, ``two years``, ``two (2) years``, ``twenty-four (24) months``, ``two-year``,
  ``one year`` -> ``{number}_{unit}`` with the text's own unit (``2_years``, ``24_months``, ``1_year``)
  (``term_spans``);
- parties and jurisdictions: compared through ``name_key`` (upper case, letters and digits only,
  ``&`` read as ``AND``), so ``NIKE, Inc.,`` matches ``Nike_Inc.`` and ``New York`` matches ``New_York``.

``weak_labels(doc)`` labels *every* occurrence of every expected value with BIO tags per key (a word
already labelled keeps its first label: dates and terms first, then jurisdictions, then parties, longest
first) and returns the counts of values found and not found: the ceiling of a word-level extractor.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

from .labels import bio_label_names

KEYS: tuple[str, ...] = ("effective_date", "jurisdiction", "party", "term")
KLEISTER_LABELS: list[str] = bio_label_names(KEYS)

MONTHS = {
    "january": 1,
    "february": 2,
    "march": 3,
    "april": 4,
    "may": 5,
    "june": 6,
    "july": 7,
    "august": 8,
    "september": 9,
    "october": 10,
    "november": 11,
    "december": 12,
}
_MONTH_ABBREVIATIONS = {"jan": 1, "feb": 2, "mar": 3, "apr": 4, "jun": 6, "jul": 7, "aug": 8, "sep": 9, "sept": 9}
_MONTH_ABBREVIATIONS.update({"oct": 10, "nov": 11, "dec": 12})
_MONTH = r"(?P<{name}>" + "|".join(sorted(list(MONTHS) + list(_MONTH_ABBREVIATIONS), key=len, reverse=True)) + r")\.?"
_DAY = r"(?P<{name}>[0-3]?\d)(?:st|nd|rd|th)?"
_YEAR = r"(?P<{name}>(?:19|20)\d\d)"


def _p(template: str, name: str) -> str:
    return template.replace("{name}", name)


_DATE_PATTERNS = [
    # March 5, 2014 / March 5th 2014 / Mar. 5, 2014
    re.compile(rf"\b{_p(_MONTH, 'm1')}\s+{_p(_DAY, 'd1')}\s*,?\s*{_p(_YEAR, 'y1')}\b", re.I),
    # 5 March 2014 / 5th day of March, 2014 / the 5th of March 2014
    re.compile(
        rf"\b{_p(_DAY, 'd2')}\s+(?:day\s+of\s+|of\s+)?{_p(_MONTH, 'm2')}\s*,?\s*(?:in\s+the\s+year\s+)?{_p(_YEAR, 'y2')}\b",
        re.I,
    ),
    # 3/5/2014, 03-05-14, 3.5.2014 (US order: month first)
    re.compile(r"\b(?P<m3>[01]?\d)[/.-](?P<d3>[0-3]?\d)[/.-](?P<y3>(?:19|20)?\d\d)\b"),
    # 2014-03-05
    re.compile(r"\b(?P<y4>(?:19|20)\d\d)-(?P<m4>[01]\d)-(?P<d4>[0-3]\d)\b"),
]

NUMBER_WORDS = {
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
    "hundred": 100,
}
_NUM_WORD = "|".join(sorted(NUMBER_WORDS, key=len, reverse=True))
_NUMBER = rf"(?P<words>(?:{_NUM_WORD})(?:[\s-]+(?:{_NUM_WORD}))*)?\s*\(?\s*(?P<digits>\d+(?:\.\d+)?)?\s*\)?"
_TERM = re.compile(rf"\b{_NUMBER}\s*[-\s]\s*(?:calendar\s+)?(?P<unit>years?|months?|days?|weeks?)\b", re.I)


@dataclass(frozen=True)
class Span:
    """Words ``first``..``last`` (inclusive) hold ``value`` (benchmark-written), for ``key``."""

    key: str
    first: int
    last: int
    value: str


class WordText:
    """The words joined by single spaces, with each character's word, for regex matching across words."""

    def __init__(self, words: Sequence[str]) -> None:
        self.text = " ".join(words)
        self.word_of: list[int] = []
        for i, word in enumerate(words):
            self.word_of.extend([i] * len(word))
            self.word_of.append(i)  # the space after word i
        self.starts = []
        pos = 0
        for word in words:
            self.starts.append(pos)
            pos += len(word) + 1

    def words_of(self, start: int, end: int) -> tuple[int, int]:
        """The inclusive word span of characters ``start``..``end`` (exclusive)."""
        return self.word_of[start], self.word_of[max(end - 1, start)]


def _valid_date(year: int, month: int, day: int) -> Optional[str]:
    import datetime

    try:
        return datetime.date(year, month, day).isoformat()
    except ValueError:
        return None


def date_spans(words: Sequence[str], text: Optional[WordText] = None) -> list[Span]:
    """Every date written in ``words``, as ISO ``YYYY-MM-DD`` spans, in text order (overlaps: the longest)."""
    text = text or WordText(words)
    found: list[tuple[int, int, str]] = []
    for pattern in _DATE_PATTERNS:
        for m in pattern.finditer(text.text):
            g = {k[0]: v for k, v in m.groupdict().items() if v is not None}
            month_text = g["m"].lower().rstrip(".")
            month = (
                int(month_text)
                if month_text.isdigit()
                else MONTHS.get(month_text, _MONTH_ABBREVIATIONS.get(month_text))
            )
            year = int(g["y"])
            if year < 100:
                year += 2000 if year < 50 else 1900
            iso = _valid_date(year, month, int(g["d"])) if month else None
            if iso:
                found.append((m.start(), m.end(), iso))
    return _spans(text, found, "effective_date")


def _spans(text: WordText, found: list[tuple[int, int, str]], key: str) -> list[Span]:
    found.sort(key=lambda f: (f[0], -(f[1] - f[0])))
    out: list[Span] = []
    taken_until = -1
    for start, end, value in found:
        if start < taken_until:
            continue
        first, last = text.words_of(start, end)
        out.append(Span(key, first, last, value))
        taken_until = end
    return out


def number_value(words_part: Optional[str], digits: Optional[str]) -> Optional[str]:
    """``"twenty-four"``, ``"24"`` -> ``"24"``; digits win when both are written; None if neither parses."""
    if digits:
        return digits
    if not words_part:
        return None
    total, current = 0, 0
    for token in re.split(r"[\s-]+", words_part.lower()):
        n = NUMBER_WORDS.get(token)
        if n is None:
            return None
        if n == 100:
            current = max(current, 1) * 100
        else:
            current += n
    total += current
    return str(total) if total else None


def term_spans(words: Sequence[str], text: Optional[WordText] = None) -> list[Span]:
    """Every duration in ``words`` as ``{number}_{unit}`` spans (``24_months``, ``1_year``), in text order."""
    text = text or WordText(words)
    found = []
    for m in _TERM.finditer(text.text):
        number = number_value(m.group("words"), m.group("digits"))
        if number is None:
            continue
        unit = m.group("unit").lower().rstrip("s")
        plural = "" if number in ("1", "1.0") else "s"
        start = m.start("words") if m.group("words") else m.start("digits")
        found.append((start, m.end(), f"{number}_{unit}{plural}"))
    return _spans(text, found, "term")


def name_key(text: str) -> str:
    """Matching key of names: upper case, ``&`` as ``AND``, letters and digits only (``"W&L Ltd."`` -> ``"WANDLLTD"``)."""
    return "".join(ch for ch in text.upper().replace("&", "AND") if ch.isalnum())


def value_words(value: str) -> str:
    """A benchmark-written value as text: underscores back to spaces."""
    return value.replace("_", " ")


# The release writes a company's suffix short where the text has it long ("Escalade, Incorporated" ->
# "Escalade_Inc."): a value ending in the short form also matches the long one.
_SUFFIX_VARIANTS = {"INC": ("INCORPORATED",), "CORP": ("CORPORATION",), "LTD": ("LIMITED",), "CO": ("COMPANY",)}


def name_variants(value: str) -> list[str]:
    """``name_key`` targets of ``value``: itself, and with a short company suffix written long."""
    words = value_words(value).split()
    target = name_key(" ".join(words))
    out = [target] if target else []
    if len(words) > 1 and (last := name_key(words[-1])) in _SUFFIX_VARIANTS:
        head = name_key(" ".join(words[:-1]))
        out += [head + long for long in _SUFFIX_VARIANTS[last]]
    return out


def name_spans(words: Sequence[str], value: str, key: str, keys: Optional[list[str]] = None) -> list[Span]:
    """Every word span whose ``name_key`` equals that of ``value`` or one of its ``name_variants``
    (``keys``: the words' keys, precomputed)."""
    keys = keys if keys is not None else [name_key(w) for w in words]
    out: list[Span] = []
    for target in name_variants(value):
        out += _name_spans(keys, target, key, value)
    return sorted(set(out), key=lambda s: (s.first, s.last))


def _name_spans(keys: list[str], target: str, key: str, value: str) -> list[Span]:
    out = []
    for i, first in enumerate(keys):
        if not first or not target.startswith(first):
            continue
        acc = first
        j = i
        while len(acc) < len(target) and j + 1 < len(keys):
            j += 1
            acc += keys[j]
        if acc == target:
            out.append(Span(key, i, j, value))
    return out


def normalise_value(key: str, text: str) -> str:
    """A value as the benchmark writes it: spaces and colons as ``_``; dates and terms already normalised."""
    text = " ".join(text.split())
    return re.sub(r"[ :]", "_", text)


@dataclass
class WeakLabels:
    labels: list[str]
    spans: list[Span]
    found: Counter  # per key: expected values found at least once
    missing: Counter  # per key: expected values not found
    missing_values: list[tuple[str, str]]


def weak_labels(words: Sequence[str], key_values: dict[str, list[str]]) -> WeakLabels:
    """BIO labels (``KLEISTER_LABELS``) for all occurrences of the expected ``key_values`` in ``words``."""
    text = WordText(words)
    keys = [name_key(w) for w in words]
    dates = date_spans(words, text)
    terms = term_spans(words, text)
    candidates: list[Span] = []
    found, missing = Counter(), Counter()
    missing_values = []
    for key in KEYS:
        for value in key_values.get(key, []):
            if key == "effective_date":
                spans = [s for s in dates if s.value == value]
            elif key == "term":
                spans = [s for s in terms if s.value.upper() == value.upper()]
            else:
                spans = name_spans(words, value, key, keys)
            if spans:
                found[key] += 1
                candidates.extend(spans)
            else:
                missing[key] += 1
                missing_values.append((key, value))
    order = {"effective_date": 0, "term": 0, "jurisdiction": 1, "party": 2}
    candidates.sort(key=lambda s: (order[s.key], -(s.last - s.first), s.first))
    labels = ["O"] * len(words)
    kept = []
    for span in candidates:
        if any(labels[i] != "O" for i in range(span.first, span.last + 1)):
            continue
        labels[span.first] = f"B-{span.key}"
        for i in range(span.first + 1, span.last + 1):
            labels[i] = f"I-{span.key}"
        kept.append(span)
    kept.sort(key=lambda s: s.first)
    return WeakLabels(labels, kept, found, missing, missing_values)


def ceiling(results: Iterable[WeakLabels]) -> dict[str, tuple[int, int]]:
    """Per key and ``"all"``: (values found, values expected) over ``results``."""
    found, missing = Counter(), Counter()
    for r in results:
        found.update(r.found)
        missing.update(r.missing)
    out = {k: (found[k], found[k] + missing[k]) for k in KEYS}
    out["all"] = (sum(found.values()), sum(found.values()) + sum(missing.values()))
    return out
