"""The learned Kleister-NDA extractor (``docalign.inference.kleister_ranker``): candidates, learning, saving, the
command. Runs on generated word sequences and on tests/fixtures/kleister_nda, never on ../shared."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from docalign.inference.kleister_ranker import (
    KleisterRanker,
    candidate_recall,
    candidates,
    fit,
    fit_key,
    prepare,
    suffix_forms,
    written_form,
)

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "kleister_nda"
FILLER = "the parties shall keep all information received under this agreement in strict confidence and".split()
MONTHS = ["January", "March", "May", "July", "September", "November"]
COMPANIES = ["Acme Widgets, Inc.", "Blue River Holdings LLC", "Orbital Systems Corporation", "Kite Pharma, Inc."]
COMPANIES += ["Northwind Traders Ltd.", "Globex Corporation", "Initech LLC", "Umbrella Holdings, Inc."]


def _date(rng: random.Random) -> tuple[list[str], str]:
    month, day, year = rng.randrange(len(MONTHS)), rng.randint(1, 28), rng.randint(1995, 2019)
    return [MONTHS[month], f"{day},", str(year)], f"{year}-{2 * month + 1:02d}-{day:02d}"


def _document(rng: random.Random) -> tuple[list[str], dict[str, list[str]]]:
    """Filler with three dates and three companies in random order. The answers: the date after the cue word
    ``zorblax`` and the two companies after ``quuxco``; nothing else tells them from the others."""
    names = rng.sample(COMPANIES, 3)
    dates = [_date(rng) for _ in range(3)]
    parts = [["signed", "by"] + names[0].split()] + [["signed", "on"] + d for d, _ in dates[:2]]
    parts += [["zorblax"] + dates[2][0]] + [["quuxco"] + n.split() for n in names[1:]]
    rng.shuffle(parts)
    words = [rng.choice(FILLER) for _ in range(30)]
    for part in parts:
        words += part + [rng.choice(FILLER) for _ in range(10)]
    parties = [written_form({"INC": "Inc.", "LTD": "Ltd."}, "party", n) for n in _party_values(names[1:])]
    return words, {"effective_date": [dates[2][1]], "party": parties}


def _party_values(names: list[str]) -> list[str]:
    from docalign.inference.kleister import normalise_party

    return [normalise_party(n) for n in names]


def _corpus(n: int, seed: int):
    rng = random.Random(seed)
    docs = [_document(rng) for _ in range(n)]
    keys = ["effective_date", "party"]
    return [prepare(w, [0] * len(w), keys) for w, _ in docs], [e for _, e in docs]


def test_candidates_hold_every_value_of_the_fixture() -> None:
    from docalign.data.readers.kleister import KleisterNDAReader

    reader = KleisterNDAReader(FIXTURE, render=False)  # no OCR: the scanned document has no words
    rows = [r for split in ("train", "dev-0") for r in reader.rows(split)]
    docs = [(reader.read_file(r), r) for r in rows]
    docs = [(d, r) for d, r in docs if d is not None]
    assert len(docs) == 4
    prepared = [prepare(d.words, d.word_pages, r.keys) for d, r in docs]
    recall = candidate_recall(prepared, [r.expected for _, r in docs])
    assert recall["effective_date"] == [4, 4] and recall["jurisdiction"] == [4, 4]
    assert recall["party"][0] >= recall["party"][1] - 1  # every party but at most one is among the candidates
    words = "between The Anson Group, LLC (the “Client”) and TOM WILKIE, an individual".split()
    values = {c.value for c in candidates(words, ["party"])["party"]}
    assert {"The_Anson_Group_LLC", "Anson_Group_LLC", "Tom_Wilkie"} <= values


def test_the_ranker_learns_what_marks_the_answer() -> None:
    """The answers are marked only by a cue word the ranker has to learn from the labels (their order is random)."""
    train, train_expected = _corpus(60, seed=0)
    test, test_expected = _corpus(30, seed=1)
    ranker = KleisterRanker({})
    for key, max_values in (("effective_date", (1,)), ("party", (1, 2, 3))):
        ranker.models[key], info = fit_key(train, train_expected, key, folds=3, max_values=max_values)
        assert info["cv_f1"] > 0.9, info
    assert ranker.models["party"].max_values == 2  # two parties per document, chosen by cross-validation
    right = sum(_same(ranker.extract(d), e) for d, e in zip(test, test_expected))
    assert right >= 27, right
    first = sum(d.cands["effective_date"][0].value == e["effective_date"][0] for d, e in zip(test, test_expected))
    assert first < 20  # the first date is right by chance only
    for key in ("effective_date", "party"):  # what it learned: the cue
        weights = ranker.models[key].weights
        assert (
            "zorblax" in max(weights, key=weights.get)
            if key == "effective_date"
            else "quuxco" in max(weights, key=weights.get)
        )


def _same(got: dict, want: dict) -> bool:
    return {k: sorted(v) for k, v in got.items()} == {k: sorted(v) for k, v in want.items()}


def test_saved_ranker_loads_safely_and_predicts_the_same(tmp_path: Path) -> None:
    train, expected = _corpus(40, seed=2)
    test, _ = _corpus(10, seed=3)
    ranker = KleisterRanker({})
    ranker.models["effective_date"], _ = fit_key(train, expected, "effective_date", folds=3)
    ranker.forms = suffix_forms(expected)
    path = ranker.save(tmp_path / "ranker.json")
    loaded = KleisterRanker.load(path)
    assert [loaded.extract(d) for d in test] == [ranker.extract(d) for d in test]
    assert loaded.forms == ranker.forms and loaded.forms["INC"] == "Inc."
    bad = tmp_path / "other.json"
    bad.write_text(json.dumps({"format": "something else"}))
    with pytest.raises(ValueError, match=r"other.json is not a Kleister ranker.*field 'format'"):
        KleisterRanker.load(bad)
    data = json.loads(path.read_text())
    data["models"]["salary"] = data["models"]["effective_date"]
    bad.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"field 'models' has an unknown key 'salary'"):
        KleisterRanker.load(bad)
    del data["models"]["salary"], data["models"]["effective_date"]["threshold"]
    bad.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"other.json: field 'models.effective_date' is not a key model"):
        KleisterRanker.load(bad)
    for models in ({}, None, [1]):  # a ranker without key models would predict nothing, silently
        bad.write_text(json.dumps({**data, "models": models}))
        with pytest.raises(ValueError, match=r"other.json: field 'models' must map at least one key"):
            KleisterRanker.load(bad)
    for text, found in (("[1, 2]", "field 'format' is 'list'"), ("{not json", "not JSON")):
        bad.write_text(text)
        with pytest.raises(ValueError, match=f"other.json is not a Kleister ranker.*{found}"):
            KleisterRanker.load(bad)


def test_suffix_forms_follow_the_training_values() -> None:
    expected = [{"party": ["Api_Nanotronics_Corp.", "Qiagen_N.V.", "Foo_Corp."]}, {"party": ["Bar_N.V.", "Baz_Corp"]}]
    forms = suffix_forms(expected)
    assert forms == {"CORP": "Corp.", "NV": "N.V."}  # the most frequent form, suffixes seen twice or more
    assert written_form(forms, "party", "Api_Nanotronics_Corp") == "Api_Nanotronics_Corp."
    assert written_form(forms, "party", "Qiagen_N.V") == "Qiagen_N.V."
    assert written_form(forms, "party", "Corp") == "Corp"  # a suffix alone is not a name
    assert written_form(forms, "term", "2_years") == "2_years"


def test_fit_needs_positive_and_negative_candidates() -> None:
    train, expected = _corpus(5, seed=4)
    with pytest.raises(ValueError, match="no term candidate of the training documents is an expected value"):
        fit_key(train, expected, "term")


def test_command_trains_scores_and_writes_out_tsv(tmp_path: Path, capsys) -> None:
    from docalign.inference.kleister_ranker import main

    out = tmp_path / "ranker"
    assert main(["--root", str(FIXTURE), "--out", str(out), "--folds", "2", "--ocr", "none"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["train documents without words"] == 1  # the scanned one, without OCR: no values, counted
    assert set(report["dev-0 f1_uc"]) == {"effective_date", "jurisdiction", "party", "term", "all"}
    assert report["dev-0 f1_uc"]["jurisdiction"] == 1.0  # one Texas, one Massachusetts: learned from 3 documents
    assert len((out / "dev-0" / "out.tsv").read_text().splitlines()) == 2
    assert (out / "test-A" / "out.tsv").read_text().count("\n") == 1  # one line per document, in in.tsv order
    assert json.loads((out / "report.json").read_text()) == report
    # a saved ranker is applied without training
    again_args = ["--out", str(tmp_path / "again"), "--ranker", str(out / "ranker.json"), "--ocr", "none"]
    assert main(["--root", str(FIXTURE), *again_args]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["dev-0 f1_uc"] == report["dev-0 f1_uc"] and "fit s" not in again
    assert (tmp_path / "again" / "dev-0" / "out.tsv").read_text() == (out / "dev-0" / "out.tsv").read_text()


def test_fit_on_the_fixture_trains_every_key() -> None:
    from docalign.data.readers.kleister import KleisterNDAReader

    reader = KleisterNDAReader(FIXTURE, render=False)
    rows = reader.rows("train") + reader.rows("dev-0")
    docs = [(reader.read_file(r), r) for r in rows]
    docs = [(d, r) for d, r in docs if d is not None]
    ranker = fit([prepare(d.words, d.word_pages, r.keys) for d, r in docs], [r.expected for _, r in docs], 2)
    assert set(ranker.models) == {"effective_date", "jurisdiction", "party", "term"}
    assert ranker.info["documents"] == 4


def test_bootstrap_difference_of_the_benchmark() -> None:
    from conftest import load_benchmark

    bench = load_benchmark("kleister_ranker")
    expected = ["party=A term=2_years", "party=B", "party=C", "party=D"]
    assert bench.bootstrap_difference(expected, expected, expected, resamples=50) == (0.0, 0.0, 0.0)
    worse = ["party=A", "party=B", "party=X", "party=Y"]  # 2 of 5 right: P 2/4, R 2/5, F1 4/9
    diff, low, high = bench.bootstrap_difference(expected, expected, worse, resamples=400)
    assert diff == pytest.approx(1 - 4 / 9)
    assert 0.0 <= low <= diff <= high <= 1.0 and low < high  # resampled documents: an interval around it
