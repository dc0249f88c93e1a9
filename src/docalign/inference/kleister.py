"""Kleister-NDA extraction: values per key from token predictions or from rules, normalised, to out.tsv.

Two extractors, one output:

- ``decode_spans`` + ``select_values``: a token classifier's per-word BIO predictions (with confidences)
  -> spans -> candidate strings normalised as the benchmark writes them (dates to ISO, terms to
  ``{number}_{unit}``, names with ``_`` for spaces) -> per key the candidate with the highest summed
  confidence (``party``: up to ``max_parties`` distinct ones);
- ``rules_extract``: hand-written rules over the words of the text layer, no model: the baseline a learned
  extractor has to beat (measured by ``benchmarks/kleister.py``).

``write_out_tsv`` writes one line per document, in in.tsv order (an empty line for a document with no
value), sorted ``key=value`` pairs: the benchmark's out.tsv format.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Optional, Sequence

from ..data.kleister_values import KEYS, WordText, date_spans, name_key, term_spans
from ..metrics.kleister_f1 import format_line

US_STATES = (
    "Alabama Alaska Arizona Arkansas California Colorado Connecticut Delaware Florida Georgia Hawaii Idaho "
    "Illinois Indiana Iowa Kansas Kentucky Louisiana Maine Maryland Massachusetts Michigan Minnesota "
    "Mississippi Missouri Montana Nebraska Nevada Ohio Oklahoma Oregon Pennsylvania Tennessee Texas Utah "
    "Vermont Virginia Washington Wisconsin Wyoming"
).split() + [
    "New Hampshire",
    "New Jersey",
    "New Mexico",
    "New York",
    "North Carolina",
    "North Dakota",
    "Rhode Island",
    "South Carolina",
    "South Dakota",
    "West Virginia",
    "District of Columbia",
]
COUNTRIES = ["England", "England and Wales", "Ontario", "Canada", "Israel", "Germany", "Switzerland", "Japan"]
JURISDICTIONS = sorted(US_STATES + COUNTRIES, key=len, reverse=True)

# Company suffixes whose form the release changes (the text's variant -> the value's form); others keep the
# text's form, title-cased unless all capitals ("LLC", "N.V.", "L.L.C." stay).
_SUFFIXES = {"INCORPORATED": "Inc.", "LIMITED": "Ltd.", "LP": "LP", "INC": "Inc.", "LTD": "Ltd."}
_KEEP_UPPER = {"LLC", "LP", "LLP", "PLC", "NV", "NA", "LLLP"}
SUFFIX_KEYS = {"INC", "INCORPORATED", "CORP", "CORPORATION", "LLC", "LTD", "LIMITED", "LP", "LLP", "CO", "COMPANY"}
SUFFIX_KEYS |= {"NA", "NV", "PLC", "AG", "SA", "BANCORP"}
_TITLE_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)?")


def _title(word: str) -> str:
    """Python's documented title-case recipe: ``ICx`` -> ``Icx``, ``Colt's`` -> ``Colt's``, ``Talk.com`` -> ``Talk.Com``."""
    return _TITLE_WORD.sub(lambda m: m.group(0)[0].upper() + m.group(0)[1:].lower(), word)


def normalise_party(text: str) -> str:
    """A party name as the release writes it: ``NIKE, Inc.,`` -> ``Nike_Inc.``, ``Leggett & Platt, Incorporated``
    -> ``Leggett_and_Platt_Inc.``, ``Leonard Green & Partners, L.P.`` -> ``Leonard_Green_and_Partners_LP`` (commas
    dropped, ``&`` as ``and``, words title-cased, a few suffixes in the release's short form)."""
    text = text.replace("&", " & ").replace("’", "'")
    words = [w.strip(",;:()“”\"'") for w in text.split()]
    words = [w for w in words if w]
    out = []
    for i, word in enumerate(words):
        key = name_key(word)
        if word == "&":
            out.append("and")
        elif i > 0 and key in _SUFFIXES and i >= len(words) - 2:
            out.append(_SUFFIXES[key])
        elif key in _KEEP_UPPER and word.upper() == word:
            out.append(word)
        else:
            out.append(_title(word))
    return "_".join(out)


def normalise_jurisdiction(text: str) -> str:
    return "_".join(w.capitalize() if w.lower() not in ("of", "and") else w.lower() for w in text.split())


def normalise(key: str, words: Sequence[str]) -> Optional[str]:
    """The benchmark-written value of a span of words for ``key`` (None: not a value of that key)."""
    if key == "effective_date":
        spans = date_spans(list(words))
        return spans[0].value if spans else None
    if key == "term":
        spans = term_spans(list(words))
        return spans[0].value if spans else None
    text = " ".join(words).strip(' ,.;:()“”"')
    if not text:
        return None
    if key == "jurisdiction":
        for name in JURISDICTIONS:
            if name_key(name) in name_key(text):
                return name.replace(" ", "_")
        return normalise_jurisdiction(text)
    return normalise_party(text)


# --- the model's side: BIO -> spans -> values ----------------------------------------------------------
def decode_spans(labels: Sequence[str], confidences: Sequence[float]) -> list[tuple[str, int, int, float]]:
    """``(key, first, last, mean confidence)`` of the BIO spans in per-word ``labels`` (an ``I-k`` after
    ``O`` or another key starts a span, as seqeval's lenient reading)."""
    spans = []
    current: Optional[list] = None
    for i, label in enumerate(labels):
        tag, _, key = label.partition("-")
        if tag == "B" or (tag == "I" and (current is None or current[0] != key)):
            if current:
                spans.append(current)
            current = [key, i, i, [confidences[i]]]
        elif tag == "I":
            current[2] = i
            current[3].append(confidences[i])
        else:
            if current:
                spans.append(current)
            current = None
    if current:
        spans.append(current)
    return [(k, a, b, sum(c) / len(c)) for k, a, b, c in spans]


def rank_values(
    words: Sequence[str], spans: Sequence[tuple[str, int, int, float]], keys: Sequence[str] = KEYS
) -> dict[str, list[tuple[str, float]]]:
    """Per key, the normalised candidate values of ``spans`` with their summed span confidence, best first."""
    scores: dict[str, Counter] = defaultdict(Counter)
    for key, first, last, conf in spans:
        if key not in keys:
            continue
        value = normalise(key, words[first : last + 1])
        if value:
            scores[key][value] += conf
    return {key: [(v, round(s, 4)) for v, s in counter.most_common()] for key, counter in scores.items()}


def pick_values(
    ranked: dict[str, list[tuple[str, float]]], max_parties: int = 2, min_score: float = 0.0
) -> dict[str, list[str]]:
    """From ``rank_values``: per key the best value (``party``: the ``max_parties`` best distinct ones) scoring at
    least ``min_score``."""
    out = {}
    for key, candidates in ranked.items():
        values = [v for v, score in candidates if score >= min_score]
        if not values:
            continue
        if key == "party":
            chosen, seen = [], set()
            for v in values:
                if name_key(v) not in seen:
                    seen.add(name_key(v))
                    chosen.append(v)
                if len(chosen) == max_parties:
                    break
            out[key] = chosen
        else:
            out[key] = values[:1]
    return out


def select_values(
    words: Sequence[str],
    spans: Sequence[tuple[str, int, int, float]],
    keys: Sequence[str] = KEYS,
    max_parties: int = 2,
    min_score: float = 0.0,
) -> dict[str, list[str]]:
    """Per key, the normalised candidates ranked by summed span confidence: the best one (``party``: the
    ``max_parties`` best distinct ones); candidates scoring under ``min_score`` are dropped."""
    return pick_values(rank_values(words, spans, keys), max_parties, min_score)


# --- rules over the text layer ------------------------------------------------------------------------
_DATE_CONTEXT = re.compile(
    r"(dated|as of|effective|made|entered into|executed|date[d]?:|this)\W*(?:\w+\W+){0,4}$", re.I
)
_LAW = re.compile(
    r"laws?\s+of\s+(?:the\s+)?(?:State\s+of\s+|Commonwealth\s+of\s+|Province\s+of\s+)?(?P<j>"
    + "|".join(re.escape(j) for j in JURISDICTIONS)
    + r")\b",
    re.I,
)
_LAW_BEFORE = re.compile(r"\b(?P<j>" + "|".join(re.escape(j) for j in JURISDICTIONS) + r")\s+law\b", re.I)
_SUFFIX_RE = (
    r"(?i:Inc|Incorporated|Corporation|Corp|LLC|L\.L\.C|Ltd|Limited|L\.P|LP|LLP|Company|Co|N\.A|N\.V|plc|AG|S\.A|"
    r"Bancorp)\b\.?"
)
_NAME_WORD = r"(?:[A-Z0-9][\w.'’!¢-]*|&|and|of|de)"
_COMPANY = re.compile(
    rf"(?P<name>(?:{_NAME_WORD},?\s+){{0,6}}?{_NAME_WORD},?\s+{_SUFFIX_RE}(?:,?\s+(?i:Ltd|Limited|L\.L\.C|LLC|Inc)\b\.?)?)"
)
_PERSON = re.compile(
    r"(?P<name>\b[A-Z][a-z]+(?:\s+[A-Z]\.)?(?:\s+[A-Z][a-z]+){1,2}(?:,?\s+(?:Jr\.|Sr\.|II|III|IV))?)"
    r"\s*(?:\(\s*(?:the\s+)?[“\"]|,\s+an\s+individual|,\s+residing|,\s+\(|\(hereinafter)"
)
_NOT_NAME = re.compile(
    r"^(?:\d{3,}|\d+,?|(?:19|20)\d\d,?|January|February|March|April|May|June|July|August|September|October|"
    r"November|December|Logo|Exhibit|EX-[\w.-]+|Attention:?|Re:?|To:?|Dear|Confidential|Principal|President|"
    r"Inc\.,?|Corporation,?|Ltd\.,?|LLC,?|Board|Directors|Agreement|CEO|Form|Officer|Stockholders?|Between|Among|"
    r"Shareholders?|General|Counsel|Chief|Executive|Employer|Employee|Whereas|Recitals?|Party|Parties)$",
    re.I,
)
_TERM_CONTEXT = re.compile(r"(term|period|terminate|expire|remain in (?:full force and )?effect|continue)", re.I)
_TERM_AFTER = re.compile(
    r"^\W*(?:from|after|following|of)\s+(?:the\s+)?(?:date|effective|execution|signing|first|this|its)", re.I
)
_STOP = {"THE", "THIS", "AGREEMENT", "EXHIBIT", "SECTION", "BY", "AND", "OF", "IN", "WITNESS", "WHEREOF"}


def rules_extract(words: Sequence[str], keys: Sequence[str] = KEYS, preamble_words: int = 400) -> dict[str, list[str]]:
    """Values per key by rules over the text layer (no model); see the module docstring."""
    text = WordText(words)
    out: dict[str, list[str]] = {}
    if "effective_date" in keys:
        dates = date_spans(words, text)
        chosen = None
        for span in dates:
            start = text.starts[span.first]
            if span.first < preamble_words and _DATE_CONTEXT.search(text.text[max(0, start - 60) : start]):
                chosen = span
                break
        if chosen is None and dates and dates[0].first < preamble_words:
            chosen = dates[0]
        if chosen is None and dates:  # no date up front: the signature dates at the end, the most frequent (latest)
            counts = Counter(span.value for span in dates)
            chosen = max(reversed(dates), key=lambda span: (counts[span.value], span.first))
        if chosen is not None:
            out["effective_date"] = [chosen.value]
    if "jurisdiction" in keys:
        found = [m.group("j") for m in _LAW.finditer(text.text)] or [
            m.group("j") for m in _LAW_BEFORE.finditer(text.text)
        ]
        if found:
            out["jurisdiction"] = [normalise("jurisdiction", found[-1].split())]
    if "term" in keys:
        terms = []
        for span in term_spans(words, text):
            start = text.starts[span.first]
            end = text.starts[span.last] + len(words[span.last])
            if _TERM_AFTER.search(text.text[end : end + 40]) and _TERM_CONTEXT.search(
                text.text[max(0, start - 120) : start]
            ):
                terms.append(span.value)
        if terms:  # several periods (confidentiality, non-solicitation, standstill): the agreement's is the longest
            out["term"] = [max(terms, key=term_days)]
    if "party" in keys:
        out_parties = _parties(text, preamble_words)
        if out_parties:
            out["party"] = out_parties
    return out


_PLACES = {name_key(j) for j in JURISDICTIONS} | {"CAYMANISLANDS", "BRITISHVIRGINISLANDS", "BERMUDA", "DELAWARELIMITED"}


_UNIT_DAYS = {"day": 1, "week": 7, "month": 30.44, "year": 365.25}


def term_days(value: str) -> float:
    """``"18_months"`` -> 547.9: a term's length in days, to compare terms."""
    number, _, unit = value.partition("_")
    try:
        return float(number) * _UNIT_DAYS.get(unit.rstrip("s"), 0.0)
    except ValueError:
        return 0.0


def _is_place(text: str) -> bool:
    return name_key(text) in _PLACES


def party_mentions(text: WordText, limit: int) -> list[tuple[int, int, str, bool]]:
    """``(match start, name start, name, is a company)`` (character positions) of the company names (capitalised words ending in a company
    suffix) and the persons named as parties (``John Smith ("the Executive")``) in ``text.text[:limit]``."""
    head = text.text[:limit]
    found: list[tuple[int, int, str, bool]] = []
    for m in _COMPANY.finditer(head):
        words = m.group("name").split()
        cut = max((i + 1 for i, w in enumerate(words[:-1]) if _NOT_NAME.match(w) or w.endswith(":")), default=0)
        words = words[cut:]
        while words and (name_key(words[0]) in _STOP or not words[0][0].isupper()):
            words.pop(0)
        if len(words) >= 2 and name_key(words[-2]) not in _STOP and not _is_place(" ".join(words[:-1])):
            name = " ".join(words)
            found.append((m.start(), m.end("name") - len(name), name, True))  # words are single-spaced
    for m in _PERSON.finditer(head):
        name = m.group("name")
        if not any(name_key(w) in _STOP or name_key(w) in SUFFIX_KEYS for w in name.split()):
            found.append((m.start("name"), m.start("name"), name, False))
    return found


def _parties(text: WordText, preamble_words: int) -> list[str]:
    limit = text.starts[min(preamble_words, len(text.starts) - 1)] if text.starts else 0
    found = party_mentions(text, limit)
    found.sort()
    chosen: list[str] = []
    for _, _, name, _company in found:
        value = normalise_party(name)
        key = name_key(value)
        if not key:
            continue
        same = [i for i, c in enumerate(chosen) if key in name_key(c) or name_key(c) in key]
        if same:  # one party written twice: keep the longer form ("Kite Pharma" < "Kite Pharma, Inc.")
            i = same[0]
            if len(key) > len(name_key(chosen[i])):
                chosen[i] = value
            continue
        if len(chosen) < 2:
            chosen.append(value)
    return chosen


def write_out_tsv(
    path: str | Path, lines: Sequence[dict[str, list[str]]], keys: Optional[Sequence[Sequence[str]]] = None
) -> Path:
    """Write the benchmark's out.tsv: line i for document i (``keys[i]``: only the keys asked for it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rendered = [format_line(values, keys[i] if keys is not None else None) for i, values in enumerate(lines)]
    path.write_text("".join(line + "\n" for line in rendered))
    return path


# --- a trained model on a split: python -m docalign.inference.kleister ---------------------------------
def model_ranked(predictor: Any, doc: Any, keys: Sequence[str]) -> dict[str, list[tuple[str, float]]]:
    """``rank_values`` of a trained token classifier's word labels (``inference.predict.Predictor``)."""
    out = predictor.predict(doc)
    labels = [w.get("label", "O") for w in out["words"]]
    confidences = [w.get("confidence", 0.0) for w in out["words"]]
    return rank_values(doc.words, decode_spans(labels, confidences), keys)


def combine(
    model: dict[str, list[str]], rules: dict[str, list[str]], use_model: Sequence[str], fallback: bool = False
) -> dict[str, list[str]]:
    """The model's values for the keys in ``use_model``, the rules' for the others; ``fallback``: also the rules'
    where the model gives none (with ``pick_values(min_score=...)``: the model only where it is confident)."""
    out = {}
    for key in set(model) | set(rules):
        value = model.get(key, []) if key in use_model else rules.get(key, [])
        if not value and fallback and key in use_model:
            value = rules.get(key, [])
        if value:
            out[key] = value
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    import argparse
    import json
    import time

    from ..data.readers.kleister import KleisterNDAReader
    from ..metrics.kleister_f1 import kleister_f1
    from ..ocr import get_engine
    from .loading import checkpoint_of, load_trained
    from .predict import Predictor

    parser = argparse.ArgumentParser(
        prog="python -m docalign.inference.kleister",
        description="Kleister-NDA out.tsv (and F1 where expected.tsv exists) from a trained model or the rules.",
    )
    parser.add_argument("--root", required=True, help="the Kleister-NDA release folder")
    parser.add_argument("--split", default="dev-0", choices=KleisterNDAReader.splits)
    parser.add_argument("--ckpt", help="a .ckpt or a run folder (logs/<exp>/version_N); without it: the rules only")
    parser.add_argument("--out", help="output folder (default: <run>/kleister, or logs/kleister/rules)")
    parser.add_argument(
        "--model_keys",
        default=",".join(KEYS),
        help="comma-separated keys taken from the model; the others from the rules (default: all from the model)",
    )
    parser.add_argument(
        "--min_score",
        type=float,
        default=0.0,
        help="the model's values need this summed confidence (below it: none, or the rules' with --fallback)",
    )
    parser.add_argument("--fallback", action="store_true", help="the rules' value where the model gives none")
    parser.add_argument("--max_docs", type=int, default=None)
    args = parser.parse_args(argv)

    model_run = bool(args.ckpt)  # the rules need no page images and no OCR
    reader = KleisterNDAReader(
        args.root, label=False, render=model_run, ocr=get_engine("tesseract") if model_run else None
    )
    rows = reader.rows(args.split)[: args.max_docs]
    predictor, ckpt = None, None
    if args.ckpt:
        ckpt = checkpoint_of(args.ckpt)
        predictor = Predictor(load_trained(ckpt))
    use_model = [k for k in args.model_keys.split(",") if k] if predictor else []
    folder = Path(args.out) if args.out else (ckpt.parent.parent / "kleister" if ckpt else Path("logs/kleister/rules"))
    start = time.perf_counter()
    predicted: list[dict[str, list[str]]] = []
    candidates: list[dict[str, Any]] = []  # the model's scored candidates per document, for other policies
    for row in rows:
        doc = reader.read_file(row)
        if doc is None:
            predicted.append({})
            continue
        rules = rules_extract(doc.words, row.keys)
        if predictor is None:
            predicted.append(rules)
            continue
        ranked = model_ranked(predictor, doc, row.keys)
        candidates.append({"filename": row.filename, "model": ranked, "rules": rules})
        model = pick_values(ranked, min_score=args.min_score)
        predicted.append(combine(model, rules, use_model, args.fallback))
    seconds = time.perf_counter() - start
    path = write_out_tsv(folder / args.split / "out.tsv", predicted, [r.keys for r in rows])
    report: dict[str, Any] = {"split": args.split, "documents": len(rows), "seconds": round(seconds, 1)}
    report.update({"ckpt": str(ckpt) if ckpt else None, "model_keys": use_model, "out": str(path)})
    report.update({"min_score": args.min_score, "fallback": args.fallback})
    if candidates:
        (folder / args.split / "candidates.json").write_text(json.dumps(candidates) + "\n")
    if all(r.expected is not None for r in rows):
        lines = path.read_text().splitlines()
        expected_lines = (Path(args.root) / args.split / "expected.tsv").read_text(encoding="utf-8").splitlines()
        expected = [expected_lines[r.line - 1] for r in rows]
        for name, upper in (("f1_uc", True), ("f1_tc", False)):
            report[name] = {k: round(v.f1, 4) for k, v in kleister_f1(expected, lines, upper=upper).items()}
    (folder / args.split / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
