"""A learned Kleister-NDA extractor that runs on a CPU in minutes: candidate values ranked by a trained model.

The token classifiers (``kleister_ft``, ``kleister_aet``) need hours of CPU per epoch on 254 long contracts. This
extractor learns from the same training split what the hand-written rules (``kleister.rules_extract``) encode
by hand, and more:

1. **Candidates** (``candidates``): every value of each key that the document's words can be read as: every
   date (``date_spans``), every duration (``term_spans``), every jurisdiction name, every company name (a run
   of capitalised words ending in a company suffix) and every person named as a party (``John Smith ("the
   Executive")``), normalised as the benchmark writes values and grouped by value, with all their occurrences.
2. **Features** per candidate (``features``): its words' context (the words before and after each of its first
   occurrences, as indicator features), where it occurs (first position, page, preamble), how often, its rank
   among the key's candidates, key-specific facts (a term's length, a company or a person, a name contained in
   a longer candidate) and whether the rules chose it.
3. **A logistic regression per key** (scikit-learn), trained on train's candidates labelled by the expected
   values (a candidate is right when its value is an expected value of its key, compared upper-cased; names
   by ``name_key``). Per key, the highest-scoring candidate is the answer when its probability reaches a
   threshold (``party``: up to ``max_values`` candidates above it); the regularisation, the thresholds and the
   number of parties are chosen by cross-validation on train only (documents grouped into folds), never on
   dev-0.

The trained ranker is a JSON file (vocabulary, weights, thresholds; ``KleisterRanker.save``/``load``): no
pickle, safe to load. ``python -m docalign.inference.kleister_ranker --root <release>`` trains it on train,
scores dev-0 (per key, upper- and true-cased) and writes the out.tsv of dev-0 and test-A under its run folder.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

from ..data.kleister_values import KEYS, WordText, date_spans, name_key, name_variants, term_spans
from .kleister import JURISDICTIONS, SUFFIX_KEYS, normalise, party_mentions, rules_extract, term_days

CONTEXT_WORDS = 6  # words each side of an occurrence, as indicator features
OCCURRENCES = 4  # the first occurrences whose contexts are features
PREAMBLE_WORDS = 400
_JURISDICTION = re.compile(r"\b(?:" + "|".join(re.escape(j) for j in JURISDICTIONS) + r")\b")
_WORD = re.compile(r"[^\W_]+")
# A run of capitalised (or all-capital) words, initials and joiners: a name, when a party's trigger is beside it.
_RUN = re.compile(r"(?:[A-Z0-9][\w.'’¢-]*)(?:,?\s+(?:[A-Z0-9][\w.'’¢-]*|&|and|of|de))*")
_BEFORE = re.compile(
    r"(?:\bbetween|\band|\bI,|/s/|\b(?:EMPLOYEE|EXECUTIVE|PARTIES|Name|By|undersigned|among|with)\s*:?)\s*(?:the\s+)?$",
    re.I,
)
_AFTER = re.compile(r"^\s*(?:,?\s*\(|,\s*(?:an?|the)\s|,\s*(?:M\.D\.|residing|having|with))")
_RUN_WORDS = 6
_PART_WORDS = 4
FORMAT = "docalign-kleister-ranker/1"


@dataclass
class Candidate:
    """One value of ``key`` that the document can be read as, with its word ``spans`` (first, last), in order."""

    key: str
    value: str
    spans: list[tuple[int, int]] = field(default_factory=list)
    facts: dict[str, float] = field(default_factory=dict)


def _group(key: str, found: Iterable[tuple[str, int, int, dict[str, float]]]) -> list[Candidate]:
    """Occurrences ``(value, first, last, facts)`` -> one candidate per value (names: per ``name_key``, the
    longest written form), in order of first occurrence."""
    out: dict[str, Candidate] = {}
    for value, first, last, facts in found:
        group = name_key(value) if key in ("party", "jurisdiction") else value
        if not group:
            continue
        cand = out.setdefault(group, Candidate(key, value))
        if len(name_key(value)) > len(name_key(cand.value)):
            cand.value = value
        cand.spans.append((first, last))
        for name, v in facts.items():
            cand.facts[name] = max(cand.facts.get(name, 0.0), v)
    for cand in out.values():
        cand.spans.sort()
    return sorted(out.values(), key=lambda c: c.spans[0])


def candidates(words: Sequence[str], keys: Sequence[str] = KEYS) -> dict[str, list[Candidate]]:
    """Per key, every value the words can be read as (see the module docstring), in order of first occurrence."""
    text = WordText(words)
    out: dict[str, list[Candidate]] = {}
    if "effective_date" in keys:
        out["effective_date"] = _group(
            "effective_date", ((s.value, s.first, s.last, {}) for s in date_spans(words, text))
        )
    if "term" in keys:
        out["term"] = _group("term", ((s.value, s.first, s.last, {}) for s in term_spans(words, text)))
    if "jurisdiction" in keys:
        found = []
        for m in _JURISDICTION.finditer(text.text):
            first, last = text.words_of(m.start(), m.end())
            found.append((normalise("jurisdiction", m.group(0).split()), first, last, {}))
        out["jurisdiction"] = _group("jurisdiction", found)
    if "party" in keys:
        found = []
        for _, start, name, company in party_mentions(text, len(text.text)):
            first, last = text.words_of(start, start + len(name))
            value = normalise("party", name.split())
            if value:
                found.append((value, first, last, {"company": float(company), "person": float(not company)}))
        found += _name_runs(text)
        parties = _group("party", found)
        group_keys = [name_key(c.value) for c in parties]
        for cand, k in zip(parties, group_keys):
            cand.facts["inside_longer"] = float(any(k != o and k in o for o in group_keys))
            cand.facts["holds_shorter"] = float(any(k != o and o in k for o in group_keys))
        out["party"] = parties
    return out


def _name_runs(text: WordText) -> list[tuple[str, int, int, dict[str, float]]]:
    """Names next to a party trigger (``between X``, ``X (the``, ``X, a Maine corporation``, ``/s/ X``, ``I, X,``),
    including the all-capital and single-word ones the company and person patterns miss."""
    out = []
    for m in _RUN.finditer(text.text):
        words = m.group(0).split()
        start = m.start()
        while words and (name_key(words[0]) in ("THE", "AND", "BY", "BETWEEN") or not words[0][0].isalnum()):
            start += len(words[0]) + 1
            words.pop(0)
        while words and not words[-1].endswith(",") and name_key(words[-1]) in ("AND", "OF", "DE"):
            words.pop()
        if not words or len(words) > _RUN_WORDS:
            continue
        name = " ".join(words).rstrip(",")
        before = _BEFORE.search(text.text[max(0, start - 40) : start])
        after = _AFTER.match(text.text[start + len(name) : start + len(name) + 20])
        if not (before or after) or _is_not_a_name(words):
            continue
        first, last = text.words_of(start, start + len(name))
        the = first > 0 and text.text[max(0, start - 4) : start].strip().lower() == "the"
        # the run, and its starts (after a trigger) or ends (before one): a name in a longer run
        parts = {(first, last)}
        parts |= {(first, first + n) for n in range(min(_PART_WORDS, last - first)) if before}
        parts |= {(last - n, last) for n in range(min(_PART_WORDS, last - first)) if after}
        for a, b in parts:
            facts = {"trigger_before": float(bool(before)), "trigger_after": float(bool(after))}
            facts["partial"] = float((a, b) != (first, last))
            for with_the in (False, True) if the and a == first else (False,):
                value = normalise("party", (["The"] if with_the else []) + list(text_words(text, a, b)))
                if value:
                    out.append((value, a, b, dict(facts, with_the=float(with_the))))
    return out


def text_words(text: WordText, first: int, last: int) -> list[str]:
    """Words ``first``..``last`` of ``text`` (inclusive)."""
    start = text.starts[first]
    end = text.starts[last + 1] - 1 if last + 1 < len(text.starts) else len(text.text)
    return text.text[start:end].split()


def _is_not_a_name(words: Sequence[str]) -> bool:
    key = name_key(words[0])
    return len(words) == 1 and (len(key) < 3 or key.isdigit())


def _context(words: Sequence[str], first: int, last: int) -> set[str]:
    feats = set()
    left = [w.lower() for w in words[max(0, first - CONTEXT_WORDS) : first] for w in _WORD.findall(w)]
    right = [w.lower() for w in words[last + 1 : last + 1 + CONTEXT_WORDS] for w in _WORD.findall(w)]
    feats.update(f"L:{w}" for w in left[-CONTEXT_WORDS:])
    feats.update(f"R:{w}" for w in right[:CONTEXT_WORDS])
    if left:
        feats.add(f"L1:{left[-1]}")
        if len(left) > 1:
            feats.add(f"L2:{left[-2]} {left[-1]}")
    if right:
        feats.add(f"R1:{right[0]}")
    return feats


def _bucket(name: str, n: int, top: int = 3) -> str:
    return f"{name}={n}" if n < top else f"{name}>={top}"


def features(
    words: Sequence[str], pages: Sequence[int], cands: Sequence[Candidate], rules: Sequence[str]
) -> list[dict[str, float]]:
    """The feature dict of each of one key's candidates (``rules``: the values the rules chose for that key)."""
    n = max(1, len(words))
    rule_keys = {name_key(v) if cands and cands[0].key in ("party", "jurisdiction") else v for v in rules}
    by_count = sorted(range(len(cands)), key=lambda i: -len(cands[i].spans))
    count_rank = {i: r for r, i in enumerate(by_count)}
    # the key's extremes, once per document (ISO dates compare as strings)
    longest = max((term_days(c.value) for c in cands), default=0.0)
    latest, earliest = max((c.value for c in cands), default=""), min((c.value for c in cands), default="")
    out = []
    for rank, cand in enumerate(cands):
        first, _ = cand.spans[0]
        page = pages[first] if first < len(pages) else 0
        f: dict[str, float] = {
            "log_count": math.log1p(len(cand.spans)),
            "first_pos": first / n,
            "last_pos": cand.spans[-1][0] / n,
            "log_first": math.log1p(first) / 10,
            "preamble": float(first < PREAMBLE_WORDS),
            "first_page": float(page == 0),
            _bucket("page", page): 1.0,
            _bucket("rank", rank): 1.0,
            _bucket("count_rank", count_rank[rank]): 1.0,
            "candidates_log": math.log1p(len(cands)),
            "rules": float(
                (name_key(cand.value) if cand.key in ("party", "jurisdiction") else cand.value) in rule_keys
            ),
        }
        f.update(cand.facts)
        if cand.key == "term":
            days = term_days(cand.value)
            f["log_days"] = math.log1p(days) / 8
            f["unit=" + cand.value.partition("_")[2].rstrip("s")] = 1.0
            f["longest"] = float(days == longest)
        if cand.key == "effective_date":
            f["latest"], f["earliest"] = float(cand.value == latest), float(cand.value == earliest)
        if cand.key == "party":
            names = cand.value.split("_")
            f["log_words"] = math.log1p(len(names))
            f["end:" + name_key(names[-1]).lower()] = 1.0  # the company suffix, or a surname
            for w in names:
                f["W:" + w.lower()] = 1.0
        for i, (a, b) in enumerate(cand.spans[:OCCURRENCES]):
            for name in _context(words, a, b):
                f[name] = 1.0
                if i == 0:
                    f["first " + name] = 1.0
        out.append(f)
    return out


def is_expected(cand: Candidate, expected: Sequence[str]) -> bool:
    """Whether a candidate is one of ``expected`` (its key's expected values): upper-cased values, names by
    ``name_key`` (with the release's short company suffixes read long too)."""
    if cand.key in ("party", "jurisdiction"):
        k = name_key(cand.value)
        return any(k in name_variants(v) for v in expected)
    return cand.value.upper() in {v.upper() for v in expected}


@dataclass
class DocumentCandidates:
    """A document's candidates and their features per key (what the ranker scores)."""

    keys: list[str]
    cands: dict[str, list[Candidate]]
    feats: dict[str, list[dict[str, float]]]
    rules: dict[str, list[str]] = field(default_factory=dict)  # what the rules extract (a feature, and a baseline)


def prepare(words: Sequence[str], pages: Sequence[int], keys: Sequence[str]) -> DocumentCandidates:
    cands = candidates(words, keys)
    rules = rules_extract(words, keys)
    feats = {key: features(words, pages, cands.get(key, []), rules.get(key, [])) for key in keys}
    return DocumentCandidates(list(keys), cands, feats, rules)


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x > -30 else 0.0


@dataclass
class KeyModel:
    """One key's linear scorer over named features, with its decision rule."""

    weights: dict[str, float]
    bias: float
    threshold: float
    max_values: int = 1

    def score(self, feats: dict[str, float]) -> float:
        return _sigmoid(self.bias + sum(self.weights.get(name, 0.0) * v for name, v in feats.items()))


def written_form(forms: dict[str, str], key: str, value: str) -> str:
    """``value`` with a party's company suffix in the form the training values use (``forms``, from
    ``suffix_forms``: ``Corp`` -> ``Corp.``, ``N.V`` -> ``N.V.``)."""
    if key != "party" or not forms:
        return value
    head, _, last = value.rpartition("_")
    form = forms.get(name_key(last))
    return f"{head}_{form}" if head and form else value


def decide(cands: Sequence[Candidate], probs: Sequence[float], threshold: float, max_values: int) -> list[str]:
    """The values of the best-scoring candidates reaching ``threshold`` (at most ``max_values``, distinct)."""
    order = sorted(range(len(cands)), key=lambda i: -probs[i])
    out: list[str] = []
    for i in order[:max_values]:
        if probs[i] >= threshold and cands[i].value not in out:
            out.append(cands[i].value)
    return out


class KleisterRanker:
    """Per key, a trained ``KeyModel``; ``extract`` gives the values of a document (see the module docstring)."""

    def __init__(
        self, models: dict[str, KeyModel], info: Optional[dict[str, Any]] = None, forms: Optional[dict[str, str]] = None
    ) -> None:
        self.models = models
        self.info = info or {}
        self.forms = forms or {}  # a party's last word (name_key) -> the form the training values write it in

    def written(self, key: str, value: str) -> str:
        return written_form(self.forms, key, value)

    def extract(self, prepared: DocumentCandidates) -> dict[str, list[str]]:
        out = {}
        for key in prepared.keys:
            model, cands = self.models.get(key), prepared.cands.get(key, [])
            if model is None or not cands:
                continue
            probs = [model.score(f) for f in prepared.feats[key]]
            values = decide(cands, probs, model.threshold, model.max_values)
            if values:
                out[key] = [self.written(key, v) for v in values]
        return out

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        models = {k: m.__dict__ for k, m in self.models.items()}
        data = {"format": FORMAT, "info": self.info, "forms": self.forms, "models": models}
        path.write_text(json.dumps(data, separators=(",", ":")) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> "KleisterRanker":
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is not a Kleister ranker ({FORMAT}): not JSON ({err})") from err
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        if found != FORMAT:
            raise ValueError(f"{path} is not a Kleister ranker ({FORMAT}): field 'format' is {found!r}")
        if not isinstance(data.get("models"), dict) or not data["models"]:
            raise ValueError(
                f"{path}: field 'models' must map at least one key to its model, got {data.get('models')!r}"
            )
        models = {}
        for key, m in data["models"].items():
            if key not in KEYS:
                raise ValueError(f"{path}: field 'models' has an unknown key {key!r} (known: {', '.join(KEYS)})")
            try:
                models[key] = KeyModel(**m)
            except TypeError as err:  # a missing or unknown field of the key's model
                raise ValueError(f"{path}: field 'models.{key}' is not a key model ({err})") from err
        return cls(models, data.get("info"), data.get("forms"))


# --- training ----------------------------------------------------------------------------------------------------
def _key_f1(
    docs: Sequence[DocumentCandidates], expected: Sequence[dict], key: str, probs, threshold, max_values, forms
):
    tp = fp = fn = 0
    for doc, exp, p in zip(docs, expected, probs):
        if key not in doc.keys:
            continue
        want = Counter(v.upper() for v in exp.get(key, []))
        got = decide(doc.cands.get(key, []), p, threshold, max_values)
        got = Counter(written_form(forms, key, v).upper() for v in got)
        hit = sum((want & got).values())
        tp, fp, fn = tp + hit, fp + sum(got.values()) - hit, fn + sum(want.values()) - hit
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def fit_key(
    docs: Sequence[DocumentCandidates],
    expected: Sequence[dict[str, list[str]]],
    key: str,
    folds: int = 5,
    cs: Sequence[float] = (0.1, 0.3, 1.0, 3.0),
    thresholds: Sequence[float] = (0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5),
    max_values: Sequence[int] = (1,),
    seed: int = 0,
    forms: Optional[dict[str, str]] = None,
) -> tuple[KeyModel, dict[str, Any]]:
    """Train one key's model; C, threshold and the number of values by ``folds``-fold cross-validation over the
    documents (the training F1 of that key on out-of-fold scores)."""
    import numpy as np
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.linear_model import LogisticRegression

    rows, labels, owner = [], [], []
    for d, (doc, exp) in enumerate(zip(docs, expected)):
        if key not in doc.keys:
            continue
        for cand, f in zip(doc.cands.get(key, []), doc.feats[key]):
            rows.append(f)
            labels.append(int(is_expected(cand, exp.get(key, []))))
            owner.append(d)
    if not any(labels):
        raise ValueError(f"Kleister ranker: no {key} candidate of the training documents is an expected value")
    if all(labels):  # nothing to tell apart: every candidate scores the rate (1), the first one is taken
        info = {"cv_f1": None, "C": None, "threshold": 0.0, "max_values": 1, "candidates": len(rows)}
        return KeyModel({}, 30.0, 0.0, 1), dict(info, positives=len(rows), constant=True, search=[])
    y, owner = np.array(labels), np.array(owner)
    folds = max(2, min(folds, len(docs)))
    fold_of = np.random.default_rng(seed).permutation(len(docs)) % folds
    best: tuple[float, float, float, int] = (-1.0, 0.0, 0.0, 1)
    search = []
    for c in cs:
        oof = np.zeros(len(rows))
        for k in range(folds):
            train, held = fold_of[owner] != k, fold_of[owner] == k
            if not held.any():
                continue
            if len(set(y[train])) < 2:  # a fold without both classes (tiny training sets): the base rate
                oof[held] = y[train].mean() if train.any() else 0.0
                continue
            vec = DictVectorizer()
            x_train = vec.fit_transform([r for r, t in zip(rows, train) if t])
            clf = LogisticRegression(C=c, max_iter=2000).fit(x_train, y[train])
            oof[held] = clf.predict_proba(vec.transform([r for r, h in zip(rows, held) if h]))[:, 1]
        per_doc: list[list[float]] = [[] for _ in docs]
        for p, d in zip(oof, owner):
            per_doc[d].append(float(p))
        for t in thresholds:
            for m in max_values:
                f1 = _key_f1(docs, expected, key, per_doc, t, m, forms or {})
                search.append({"C": c, "threshold": t, "max_values": m, "cv_f1": round(f1, 4)})
                if f1 > best[0]:
                    best = (f1, c, t, m)
    f1, c, t, m = best
    vec = DictVectorizer()
    clf = LogisticRegression(C=c, max_iter=2000).fit(vec.fit_transform(rows), y)
    names = vec.get_feature_names_out()
    weights = {name: round(float(w), 6) for name, w in zip(names, clf.coef_[0]) if round(float(w), 6) != 0.0}
    model = KeyModel(weights, round(float(clf.intercept_[0]), 6), t, m)
    info = {"cv_f1": round(f1, 4), "C": c, "threshold": t, "max_values": m, "candidates": len(rows)}
    info.update({"positives": int(y.sum()), "search": search})
    return model, info


def fit(
    docs: Sequence[DocumentCandidates], expected: Sequence[dict[str, list[str]]], folds: int = 5, seed: int = 0
) -> KleisterRanker:
    """Train the four keys' models on ``docs`` (``expected[i]``: document i's values per key)."""
    models, info, forms = {}, {}, suffix_forms(expected)
    for key in KEYS:
        max_values = (1, 2, 3, 4) if key == "party" else (1,)
        models[key], info[key] = fit_key(docs, expected, key, folds, max_values=max_values, seed=seed, forms=forms)
    info = {"keys": info, "documents": len(docs), "folds": folds, "seed": seed}
    return KleisterRanker(models, info, forms)


def suffix_forms(expected: Sequence[dict[str, list[str]]], least: int = 2) -> dict[str, str]:
    """The written form of each company suffix among the expected parties' last words (``CORP`` -> ``Corp.``),
    the most frequent one, for suffixes seen at least ``least`` times."""
    seen: dict[str, Counter] = defaultdict(Counter)
    for exp in expected:
        for value in exp.get("party", []):
            last = value.rpartition("_")[2]
            if name_key(last) in SUFFIX_KEYS:
                seen[name_key(last)][last] += 1
    return {k: c.most_common(1)[0][0] for k, c in sorted(seen.items()) if sum(c.values()) >= least}


def candidate_recall(
    docs: Sequence[DocumentCandidates], expected: Sequence[dict[str, list[str]]]
) -> dict[str, list[int]]:
    """Per key, [expected values among the candidates, expected values]: the ceiling of any ranking."""
    out: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for doc, exp in zip(docs, expected):
        for key in doc.keys:
            for value in exp.get(key, []):
                out[key][1] += 1
                if any(is_expected(c, [value]) for c in doc.cands.get(key, [])):
                    out[key][0] += 1
    return dict(out)


# --- the command: python -m docalign.inference.kleister_ranker -----------------------------------------------
def read_split(reader: Any, split: str) -> tuple[list, list[DocumentCandidates], float, int]:
    """``(rows, candidates per document, seconds, documents without words)`` of one split read by a
    ``KleisterNDAReader``; a document the reader skips (its repair log says why) has no candidates."""
    import time

    start = time.perf_counter()
    rows, prepared, missing = reader.rows(split), [], 0
    for row in rows:
        doc = reader.read_file(row)
        missing += doc is None
        words, pages = (doc.words, doc.word_pages) if doc is not None else ([], [])
        prepared.append(prepare(words, pages, row.keys))
    return rows, prepared, time.perf_counter() - start, missing


def score_lines(root: str | Path, split: str, rows: Sequence[Any], lines: Sequence[str]) -> dict[str, dict[str, float]]:
    """The benchmark's F1 per key and overall, upper-cased (``f1_uc``) and true-cased (``f1_tc``), of ``lines``
    (one per row) against the split's expected.tsv."""
    from ..metrics.kleister_f1 import kleister_f1

    expected = (Path(root) / split / "expected.tsv").read_text(encoding="utf-8").splitlines()
    expected = [expected[r.line - 1] for r in rows]
    return {
        name: {k: round(v.f1, 4) for k, v in kleister_f1(expected, lines, upper=upper).items()}
        for name, upper in (("f1_uc", True), ("f1_tc", False))
    }


def main(argv: Optional[Sequence[str]] = None) -> int:
    import argparse
    import time

    from ..data.readers.kleister import KleisterNDAReader
    from ..ocr import DEFAULT_ENGINE, get_engine
    from .kleister import write_out_tsv

    parser = argparse.ArgumentParser(
        prog="python -m docalign.inference.kleister_ranker",
        description="Train the Kleister-NDA candidate ranker on train; F1 on dev-0; out.tsv of dev-0 and test-A.",
    )
    parser.add_argument("--root", required=True, help="the Kleister-NDA release folder")
    parser.add_argument("--out", default="logs/kleister/ranker", help="the run folder (ranker.json, out.tsv files)")
    parser.add_argument("--train_split", default="train", choices=KleisterNDAReader.splits)
    parser.add_argument("--splits", nargs="+", default=["dev-0", "test-A"], help="splits to extract")
    parser.add_argument("--ranker", help="a trained ranker.json to use instead of training one")
    parser.add_argument(
        "--ocr",
        default=DEFAULT_ENGINE,
        help=f"OCR engine for pages without a text layer (default {DEFAULT_ENGINE}; 'none': such pages have no words)",
    )
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    out = Path(args.out)
    ocr = None if args.ocr == "none" else get_engine(args.ocr)
    reader = KleisterNDAReader(args.root, label=False, render=False, ocr=ocr)
    report: dict[str, Any] = {"root": str(args.root), "out": str(out)}

    def read(split: str) -> tuple[list, list[DocumentCandidates]]:
        rows, prepared, seconds, missing = read_split(reader, split)
        report[f"{split} read + candidates s"] = round(seconds, 1)
        if missing:  # the reader's repair log says why (counted in the report's "repairs")
            report[f"{split} documents without words"] = missing
        return rows, prepared

    if args.ranker:
        ranker = KleisterRanker.load(args.ranker)
    else:
        rows, prepared = read(args.train_split)
        expected = [r.expected or {} for r in rows]
        report["candidate recall " + args.train_split] = candidate_recall(prepared, expected)
        start = time.perf_counter()
        ranker = fit(prepared, expected, args.folds, args.seed)
        report["fit s"] = round(time.perf_counter() - start, 1)
        report["cv"] = {k: {n: v for n, v in i.items() if n != "search"} for k, i in ranker.info["keys"].items()}
        ranker.info["train_split"] = args.train_split
        ranker.save(out / "ranker.json")
    for split in args.splits:
        rows, prepared = read(split)
        start = time.perf_counter()
        predicted = [ranker.extract(p) for p in prepared]
        report[f"{split} extract s"] = round(time.perf_counter() - start, 2)
        path = write_out_tsv(out / split / "out.tsv", predicted, [r.keys for r in rows])
        if all(r.expected is not None for r in rows):
            report["candidate recall " + split] = candidate_recall(prepared, [r.expected or {} for r in rows])
            for name, scores in score_lines(args.root, split, rows, path.read_text().splitlines()).items():
                report[f"{split} {name}"] = scores
    report["repairs"] = dict(reader.repairs.counts) | dict(reader.stats)
    (out / "report.json").parent.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
