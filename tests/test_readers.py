"""Dataset readers on their raw-format fixtures and on the real FUNSD, bad input strict and lenient, the
image loader, and the DataModules' splits and encoded-split cache."""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from docalign.data import CORD, FUNSD, SROIE, carve_validation
from docalign.data.encoding import DocumentEncoder
from docalign.data.images import load_image
from docalign.data.readers import (
    CORD_LABELS,
    FUNSD_LABELS,
    SROIE_LABELS,
    CORDHubReader,
    CORDReader,
    DocVQAReader,
    FUNSDReader,
    RVLCDIPReader,
    SROIEReader,
    Tobacco3482Reader,
    parse_cord_ground_truth,
)
from docalign.data.readers.base import find_spans
from docalign.data.repairs import DataError, RepairLog

from conftest import FIXTURES, FUNSD_MISSING

FUNSD_ROOT = os.environ.get("DOCALIGN_FUNSD")
needs_funsd = pytest.mark.skipif(not FUNSD_ROOT, reason=FUNSD_MISSING)


def copy_fixture(name: str, tmp_path: Path) -> Path:
    return Path(shutil.copytree(FIXTURES / name, tmp_path / name))


def words_and_labels(doc):
    return list(zip(doc.words, doc.word_labels))


# --- each reader on its fixture ---------------------------------------------------------------------------
def test_funsd_fixture_bio_labels_other_is_o_and_empty_words_counted():
    reader = FUNSDReader(FIXTURES / "funsd", strict=True)
    docs = list(reader.read("train"))
    assert [d.doc_id for d in docs] == ["0000000101", "0000000102", "0000000103"]
    assert words_and_labels(docs[0]) == [
        ("REGISTRATION", "B-header"),
        ("FORM", "I-header"),
        ("Name:", "B-question"),
        ("John", "B-answer"),
        ("Smith", "I-answer"),
        ("Date:", "B-question"),
        ("12/03/1998", "B-answer"),
        ("Page", "O"),
        ("1", "O"),
    ]
    assert docs[0].image.mode == "RGB" and docs[0].source.endswith("0000000101.json")
    form = json.loads((FIXTURES / "funsd/training_data/annotations/0000000101.json").read_text())["form"]
    assert docs[0].boxes[0] == tuple(float(v) for v in form[0]["words"][0]["box"])
    # 0000000102 has an "other" entity whose only word has empty text
    assert reader.stats["empty words skipped"] == 1 and reader.stats["entities without words"] == 1
    assert reader.stats["words"] == 17 and reader.stats["entities"] == 13
    assert set(lab for d in docs for lab in d.word_labels) <= set(FUNSD_LABELS) and len(FUNSD_LABELS) == 7
    assert len(list(reader.read("test"))) == 2


def test_funsd_segment_boxes_give_every_word_its_entity_box():
    (doc, *_) = FUNSDReader(FIXTURES / "funsd", segment_boxes=True).read("train")
    entity = json.loads((FIXTURES / "funsd/training_data/annotations/0000000101.json").read_text())["form"][0]
    assert doc.boxes[0] == doc.boxes[1] == tuple(float(v) for v in entity["box"])
    assert doc.boxes[0] != tuple(float(v) for v in entity["words"][0]["box"])


def test_cord_raw_fixture_lines_to_bio_and_quads_to_boxes():
    reader = CORDReader(FIXTURES / "cord", strict=True)
    (first, second) = reader.read("train")
    assert words_and_labels(first)[:4] == [
        ("ICED", "B-menu.nm"),
        ("LATTE", "I-menu.nm"),
        ("2", "B-menu.cnt"),
        ("50,000", "B-menu.price"),
    ]
    quad = json.loads((FIXTURES / "cord/train/json/receipt_00000.json").read_text())["valid_line"][0]["words"][0][
        "quad"
    ]
    assert first.boxes[0] == (quad["x1"], quad["y1"], quad["x3"], quad["y3"])
    assert [d.doc_id for d in reader.read("val")] == ["receipt_00800"]  # dev is the validation split
    assert len(CORD_LABELS) == 61 and set(second.word_labels) <= set(CORD_LABELS)


def test_cord_hub_rows_parse_like_the_raw_files_and_boxes_follow_the_image_size():
    """The hub stores the same ground truth as a JSON string: one parser serves both sources."""
    path = FIXTURES / "cord/train/json/receipt_00000.json"
    raw_doc = next(iter(CORDReader(FIXTURES / "cord").read("train")))
    hub_string = path.read_text()  # what the parquet's ground_truth column holds
    stats = Counter()
    words, boxes, labels, _ = parse_cord_ground_truth(
        json.loads(hub_string), "hub[train][0]", RepairLog(True), stats, raw_doc.image.size
    )
    assert (words, labels) == (raw_doc.words, raw_doc.word_labels) and boxes == raw_doc.boxes
    # an image stored at half the annotated size: boxes are scaled to it, and counted
    width, height = raw_doc.image.size
    _, half, _, _ = parse_cord_ground_truth(
        json.loads(hub_string), "hub", RepairLog(True), stats, (width // 2, height // 2)
    )
    assert half[0] == pytest.approx(
        tuple(
            v * (width // 2) / width if i % 2 == 0 else v * (height // 2) / height
            for i, v in enumerate(raw_doc.boxes[0])
        )
    )
    assert stats["boxes scaled to the image size"] == 1


def test_cord_hub_reader_fails_fast_and_clearly_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError, match=r"naver-clova-ix/cord-v2.*HF_HUB_OFFLINE.*DOCALIGN_CORD"):
        CORDHubReader()
    monkeypatch.delenv("DOCALIGN_CORD", raising=False)
    with pytest.raises(DataError, match="--data.init_args.root"):
        CORD(tokenizer="minilm")  # no folder: the hub copy, checked at construction


def test_sroie_fixture_values_matched_to_ocr_words_with_counts():
    reader = SROIEReader(FIXTURES / "sroie", strict=True)
    docs = {d.doc_id: d for d in reader.read("train")}
    first = docs["X00016469612"]
    tagged = [(w, lab) for w, lab in words_and_labels(first) if lab != "O"]
    assert tagged[:3] == [("BOOK", "B-company"), ("TA", "I-company"), (".K", "I-company")]
    # the address spans two OCR lines; the total "9.00" lies inside the word "RM9.00"
    assert [w for w, lab in tagged if lab.endswith("address")] == [
        "NO.53",
        "55,57",
        "&",
        "59,",
        "JALAN",
        "SAGU",
        "18,",
        "TAMAN",
        "DAYA,",
    ]
    assert (
        ("RM9.00", "B-total") in tagged
        and ("25/12/2018", "B-date") in tagged
        and ("10.00", "O") in words_and_labels(first)
    )
    # the total appears twice on TOTAL lines: the last one is labelled
    second = words_and_labels(docs["X00016469619"])
    assert [i for i, (w, lab) in enumerate(second) if lab == "B-total"] == [10]
    # X00016469619's address is not in its OCR: counted, not raised
    assert reader.stats["entities not matched"] == 1 and reader.stats["address not matched"] == 1
    assert reader.stats["entities matched inside a word"] == 1
    # word boxes split the line box by character offsets
    line = (FIXTURES / "sroie/train/box/X00016469612.txt").read_text().splitlines()[0].split(",", 8)
    assert first.boxes[0][0] == float(line[0]) and first.boxes[6][2] == pytest.approx(float(line[2]))
    assert len(SROIE_LABELS) == 9


def test_sroie_flat_layout_and_latin1_files(tmp_path):
    nested = FIXTURES / "sroie" / "test"
    flat = tmp_path / "sroie" / "test"
    flat.mkdir(parents=True)
    for ocr in sorted((nested / "box").iterdir()):
        shutil.copy(ocr, flat / ocr.name)
        shutil.copy(nested / "entities" / ocr.name, flat / f"{ocr.stem}.json")
        shutil.copy(nested / "img" / f"{ocr.stem}.jpg", flat / f"{ocr.stem}.jpg")
    ocr = flat / "X51005230605.txt"
    ocr.write_bytes(ocr.read_bytes().replace(b"GARDENIA", "GARDÉNIA".encode("latin-1")))
    reader = SROIEReader(tmp_path / "sroie", strict=True)
    docs = list(reader.read("test"))
    assert [d.doc_id for d in docs] == ["X51005200938", "X51005230605"]
    assert docs[1].words[0] == "GARDÉNIA" and reader.stats["decoded as latin-1"] == 1
    assert (
        docs[0].word_labels == [lab for d in SROIEReader(FIXTURES / "sroie").read("test") for lab in d.word_labels][:7]
    )


def test_find_spans_exact_inside_and_across_words():
    words = ["TOTAL", "RM9.00", "CASH", "19.00", "9.00"]
    assert find_spans(words, "9.00") == [(1, 1, False), (3, 3, False), (4, 4, True)]
    assert find_spans(["JALAN", "SAGU", "18,", "TAMAN"], "jalan sagu 18") == [(0, 2, True)]
    assert find_spans(words, "") == [] and find_spans(words, "9.00", exact_only=True) == [(4, 4, True)]


def known_ocr(image):
    """A stand-in OCR engine with a known answer: two words spanning the page's width."""
    width, height = image.size
    return ["Dear", "Sir"], [(0, 0, width / 2, height), (width / 2, 0, width, height)]


def test_rvl_cdip_label_files_and_ocr_callable():
    reader = RVLCDIPReader(FIXTURES / "rvl_cdip", ocr=known_ocr, strict=True)
    docs = list(reader.read("train"))
    assert [d.doc_label for d in docs] == ["letter", "form", "memo"]
    assert docs[0].words == ["Dear", "Sir"] and docs[0].boxes[1] == (60.0, 0.0, 120.0, 40.0)
    assert docs[0].image.mode == "RGB" and docs[0].doc_id == "imagesa/a/a/a/aaa06d00/50486482-6482.tif"
    (image_only,) = RVLCDIPReader(FIXTURES / "rvl_cdip").read("val")
    assert image_only.words == [] and image_only.doc_label == "invoice"


def test_tobacco3482_class_folders():
    reader = Tobacco3482Reader(FIXTURES / "tobacco3482", ocr=lambda image: ([], []), strict=True)
    docs = list(reader.read("all"))
    assert [(d.doc_id, d.doc_label) for d in docs] == [
        ("ADVE/adve_000", "ADVE"),
        ("Email/email_000", "Email"),
        ("Letter/letter_000", "Letter"),
        ("Letter/letter_001", "Letter"),
    ]
    assert reader.stats["pages without OCR words"] == 4


def test_docvqa_pages_questions_and_answer_spans():
    reader = DocVQAReader(FIXTURES / "docvqa", strict=True)
    memo, report = reader.read("train")
    assert memo.words == ["LORILLARD", "MEMO", "Date:", "1/8/93", "To:", "R.", "H.", "Orcutt"]
    date, addressee, fax = memo.qa_pairs
    assert date.answer_spans == [(3, 3)] and addressee.answer_spans == [(5, 7), (7, 7)]
    assert fax.answer_spans == [] and fax.answers == ["910-741-0673"]
    assert report.qa_pairs[0].answer_spans == [(2, 2)]
    assert reader.stats["questions"] == 4 and reader.stats["answers not found"] == 1
    assert reader.stats["questions with no answer found"] == 1
    (val,) = reader.read("val")
    assert val.qa_pairs[0].answer_spans == [(2, 3)]  # "$ 300" and "$300" are the same words: one span
    (test,) = reader.read("test")
    assert test.qa_pairs[0].answers == [] and reader.stats["questions with no answer found"] == 1


# --- the real FUNSD ---------------------------------------------------------------------------------------
@needs_funsd
def test_real_funsd_counts():
    reader = FUNSDReader(FUNSD_ROOT, strict=True)
    train, test = reader.files("train"), reader.files("test")
    assert (len(train), len(test)) == (149, 50)
    kept = sum(len(reader.parse(path)[0]) for path in train + test)
    assert reader.stats["words"] == 31_485 and reader.stats["entities"] == 9_743
    assert kept == 31_485 - reader.stats["empty words skipped"]
    assert not reader.repairs.counts
    doc = reader.read_file(test[0])  # one real page with its image
    assert doc.image.mode == "RGB" and doc.image.size[0] > 500
    assert set(doc.word_labels) <= set(FUNSD_LABELS) and "B-question" in doc.word_labels


@needs_funsd
def test_funsd_validation_carve_is_deterministic_and_disjoint():
    reader = FUNSDReader(FUNSD_ROOT)
    train, val = carve_validation(reader.files("train"), 15)
    assert (len(train), len(val)) == (134, 15) and not set(train) & set(val)
    assert carve_validation(list(reversed(reader.files("train"))), 15)[1] == list(reversed(val))
    dm = FUNSD(cache_dir=None)
    assert dm.split_keys("val") == val and dm.split_keys("test") == reader.files("test")
    assert FUNSD(val_size=0, cache_dir=None).split_keys("val") == reader.files("test")


def test_funsd_needs_a_root(monkeypatch, tmp_path):
    monkeypatch.delenv("DOCALIGN_FUNSD", raising=False)
    with pytest.raises(DataError, match="DOCALIGN_FUNSD"):
        FUNSD()
    with pytest.raises(DataError, match="does-not-exist"):
        FUNSD(root=str(tmp_path / "does-not-exist"))
    monkeypatch.setenv("DOCALIGN_FUNSD", str(FIXTURES / "funsd"))
    assert FUNSD(val_size=1, cache_dir=None).root == FIXTURES / "funsd"


# --- bad input, strict and lenient -------------------------------------------------------------------------
def _rewrite_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


def _sixteen_bit(path: Path) -> None:
    gray = np.asarray(Image.open(path).convert("L"), dtype=np.uint16) * 257
    Image.fromarray(gray).save(path.with_suffix(".png"))
    if path.suffix != ".png":
        path.unlink()


FUNSD_ANN = "training_data/annotations/0000000101.json"
FUNSD_IMG = "training_data/images/0000000101.png"
CORD_ANN = "train/json/receipt_00000.json"
CORD_IMG = "train/image/receipt_00000.png"
SROIE_OCR = "train/box/X00016469612.txt"
SROIE_ENT = "train/entities/X00016469612.txt"

# (id, fixture, reader, split, file to corrupt, how, field named, lenient: documents left, reason counted)
BAD_INPUT = [
    (
        "funsd-truncated-json",
        "funsd",
        FUNSDReader,
        "train",
        FUNSD_ANN,
        _truncate,
        "json",
        2,
        "invalid or truncated JSON",
    ),
    (
        "funsd-missing-form",
        "funsd",
        FUNSDReader,
        "train",
        FUNSD_ANN,
        lambda p: _rewrite_json(p, lambda d: d.pop("form")),
        "form",
        2,
        "missing or not a list",
    ),
    (
        "funsd-unknown-label",
        "funsd",
        FUNSDReader,
        "train",
        FUNSD_ANN,
        lambda p: _rewrite_json(p, lambda d: d["form"][1].update(label="footer")),
        "form[1].label",
        3,
        "unknown label",
    ),
    (
        "funsd-missing-label",
        "funsd",
        FUNSDReader,
        "train",
        FUNSD_ANN,
        lambda p: _rewrite_json(p, lambda d: d["form"][1].pop("label")),
        "form[1].label",
        3,
        "missing",
    ),
    (
        "funsd-missing-words",
        "funsd",
        FUNSDReader,
        "train",
        FUNSD_ANN,
        lambda p: _rewrite_json(p, lambda d: d["form"][2].pop("words")),
        "form[2].words",
        3,
        "missing or not a list",
    ),
    (
        "funsd-bad-word-box",
        "funsd",
        FUNSDReader,
        "train",
        FUNSD_ANN,
        lambda p: _rewrite_json(p, lambda d: d["form"][2]["words"][0].update(box=[1, 2])),
        "form[2].words[0].box",
        3,
        "box must be 4 finite numbers",
    ),
    (
        "funsd-empty-word-list",
        "funsd",
        FUNSDReader,
        "train",
        FUNSD_ANN,
        lambda p: _rewrite_json(p, lambda d: d.update(form=[])),
        "words",
        2,
        "no words",
    ),
    (
        "funsd-box-outside-image",
        "funsd",
        FUNSDReader,
        "train",
        FUNSD_ANN,
        lambda p: _rewrite_json(p, lambda d: d["form"][0]["words"][0].update(box=[10, 13, 900, 22])),
        "form[0].words[0].box",
        3,
        None,
    ),
    (
        "funsd-inverted-box",
        "funsd",
        FUNSDReader,
        "train",
        FUNSD_ANN,
        lambda p: _rewrite_json(p, lambda d: d["form"][0]["words"][0].update(box=[84, 13, 10, 22])),
        "form[0].words[0].box",
        3,
        None,
    ),
    (
        "funsd-zero-byte-image",
        "funsd",
        FUNSDReader,
        "train",
        FUNSD_IMG,
        lambda p: p.write_bytes(b""),
        "image",
        2,
        "empty (0 bytes)",
    ),
    ("funsd-unreadable-image", "funsd", FUNSDReader, "train", FUNSD_IMG, _truncate, "image", 2, "cannot be read"),
    ("funsd-missing-image", "funsd", FUNSDReader, "train", FUNSD_IMG, lambda p: p.unlink(), "image", 2, "not found"),
    ("funsd-16-bit-image", "funsd", FUNSDReader, "train", FUNSD_IMG, _sixteen_bit, "image", 3, "more than 8 bits"),
    ("cord-truncated-json", "cord", CORDReader, "train", CORD_ANN, _truncate, "json", 1, "invalid or truncated JSON"),
    (
        "cord-missing-valid-line",
        "cord",
        CORDReader,
        "train",
        CORD_ANN,
        lambda p: _rewrite_json(p, lambda d: d.pop("valid_line")),
        "valid_line",
        1,
        "missing or not a list",
    ),
    (
        "cord-unknown-category",
        "cord",
        CORDReader,
        "train",
        CORD_ANN,
        lambda p: _rewrite_json(p, lambda d: d["valid_line"][1].update(category="menu.colour")),
        "valid_line[1].category",
        2,
        "unknown category",
    ),
    (
        "cord-bad-quad",
        "cord",
        CORDReader,
        "train",
        CORD_ANN,
        lambda p: _rewrite_json(p, lambda d: d["valid_line"][0]["words"][1]["quad"].pop("x3")),
        "valid_line[0].words[1].quad",
        2,
        "needs numbers",
    ),
    (
        "cord-empty-word-list",
        "cord",
        CORDReader,
        "train",
        CORD_ANN,
        lambda p: _rewrite_json(p, lambda d: d.update(valid_line=[])),
        "valid_line",
        1,
        "no words",
    ),
    (
        "cord-quad-outside-image",
        "cord",
        CORDReader,
        "train",
        CORD_ANN,
        lambda p: _rewrite_json(p, lambda d: d["valid_line"][0]["words"][0]["quad"].update(x1=-30, x4=-30)),
        "valid_line[0].words[0].quad",
        2,
        None,
    ),
    (
        "cord-zero-byte-image",
        "cord",
        CORDReader,
        "train",
        CORD_IMG,
        lambda p: p.write_bytes(b""),
        "image",
        1,
        "empty (0 bytes)",
    ),
    (
        "sroie-bad-ocr-line",
        "sroie",
        SROIEReader,
        "train",
        SROIE_OCR,
        lambda p: p.write_text(p.read_text().replace("8,65,95,65", "8,65,95")),
        "line 4",
        3,
        "expected x1,y1",
    ),
    ("sroie-empty-ocr", "sroie", SROIEReader, "train", SROIE_OCR, lambda p: p.write_text(""), "words", 2, "no words"),
    (
        "sroie-truncated-entities",
        "sroie",
        SROIEReader,
        "train",
        SROIE_ENT,
        _truncate,
        "entities",
        2,
        "invalid or truncated JSON",
    ),
    (
        "sroie-missing-entity",
        "sroie",
        SROIEReader,
        "train",
        SROIE_ENT,
        lambda p: _rewrite_json(p, lambda d: d.pop("total")),
        "total",
        3,
        "missing",
    ),
    (
        "sroie-unknown-entity",
        "sroie",
        SROIEReader,
        "train",
        SROIE_ENT,
        lambda p: _rewrite_json(p, lambda d: d.update(phone="03-1234")),
        "phone",
        3,
        "unknown entity",
    ),
    (
        "sroie-box-outside-image",
        "sroie",
        SROIEReader,
        "train",
        SROIE_OCR,
        lambda p: p.write_text(p.read_text().replace("8,10,190,10,190,21", "8,10,990,10,990,21")),
        "line 1",
        3,
        None,
    ),
    (
        "sroie-cmyk-image-is-fine",
        "sroie",
        SROIEReader,
        "train",
        "train/img/X00016469612.jpg",
        lambda p: Image.open(p).convert("CMYK").save(p),
        None,
        3,
        None,
    ),
    (
        "rvl-bad-label-line",
        "rvl_cdip",
        RVLCDIPReader,
        "train",
        "labels/train.txt",
        lambda p: p.write_text(p.read_text().replace(" 1\n", "\n")),
        "line 2",
        2,
        "expected '<image path> <class index>'",
    ),
    (
        "rvl-unknown-class",
        "rvl_cdip",
        RVLCDIPReader,
        "train",
        "labels/train.txt",
        lambda p: p.write_text(p.read_text().replace(" 15\n", " 16\n")),
        "line 3",
        2,
        "unknown label 16",
    ),
    (
        "rvl-unreadable-tif",
        "rvl_cdip",
        RVLCDIPReader,
        "train",
        "images/imagesb/b/c/d/bcd01e00/2028.tif",
        lambda p: p.write_bytes(b"II*\x00garbage"),
        "image",
        2,
        "cannot be read",
    ),
    (
        "tobacco-unknown-class",
        "tobacco3482",
        Tobacco3482Reader,
        "all",
        "Letter",
        lambda p: p.rename(p.parent / "Leter"),
        "label",
        2,
        "unknown class folder",
    ),
    (
        "docvqa-missing-ocr",
        "docvqa",
        DocVQAReader,
        "train",
        "train/ocr_results/xnbl0037_1.json",
        lambda p: p.unlink(),
        "ocr",
        1,
        "file not found",
    ),
    (
        "docvqa-question-without-image",
        "docvqa",
        DocVQAReader,
        "train",
        "train/train_v1.0.json",
        lambda p: _rewrite_json(p, lambda d: d["data"][3].pop("image")),
        "data[3]",
        1,
        "needs string fields",
    ),
    (
        "docvqa-bad-ocr-box",
        "docvqa",
        DocVQAReader,
        "train",
        "train/ocr_results/txpp0227_10.json",
        lambda p: _rewrite_json(
            p, lambda d: d["recognitionResults"][0]["lines"][0]["words"][0].update(boundingBox=[1, 2])
        ),
        "recognitionResults[0].lines[0].words[0].boundingBox",
        2,
        "needs 8 numbers",
    ),
]


@pytest.mark.parametrize("case", BAD_INPUT, ids=[c[0] for c in BAD_INPUT])
def test_bad_input_strict_raises_naming_file_and_field_lenient_counts(case, tmp_path):
    _, fixture, reader_class, split, target, corrupt, field, left, reason = case
    root = copy_fixture(fixture, tmp_path)
    corrupt(root / target)
    clean = list(reader_class(FIXTURES / fixture).read(split))

    if field is None:  # not bad input: read as usual, even strictly
        assert len(list(reader_class(root, strict=True).read(split))) == len(clean)
        return
    with pytest.raises(DataError) as raised:
        list(reader_class(root, strict=True).read(split))
    message = str(raised.value)
    assert f"field '{field}" in message, message
    named = Path(target).name if fixture != "tobacco3482" else "Leter"
    assert named.split(".")[0] in message, message

    reader = reader_class(root, strict=False)
    docs = list(reader.read(split))
    assert len(docs) == left
    if reason is not None:
        assert sum(n for key, n in reader.repairs.counts.items() if reason in key) >= 1, reader.repairs.summary()
    else:  # a bad box: the reader keeps every word; the encoder repairs it and counts
        assert [len(d.words) for d in docs] == [len(d.words) for d in clean]
        assert not reader.repairs.counts


def test_lenient_bad_boxes_reach_the_encoder_which_repairs_and_counts(tmp_path, minilm_tokenizer):
    root = copy_fixture("funsd", tmp_path)
    _rewrite_json(root / FUNSD_ANN, lambda d: d["form"][0]["words"][0].update(box=[300, 13, 10, 22]))
    repairs = RepairLog(strict=False)
    doc = next(iter(FUNSDReader(root, repairs=repairs).read("train")))
    assert doc.boxes[0] == (300.0, 13.0, 10.0, 22.0)  # passed through untouched
    DocumentEncoder(minilm_tokenizer, FUNSD_LABELS, max_length=64, stride=16, image_size=None, repairs=repairs).encode(
        doc, 0
    )
    assert any("inverted box" in k for k in repairs.counts) and any("outside" in k for k in repairs.counts)


def test_ocr_engine_problems_are_bad_input():
    def broken(image):
        raise RuntimeError("engine crashed")

    with pytest.raises(DataError, match="field 'ocr'.*engine crashed"):
        list(RVLCDIPReader(FIXTURES / "rvl_cdip", ocr=broken, strict=True).read("val"))
    reader = RVLCDIPReader(FIXTURES / "rvl_cdip", ocr=lambda image: (["a", "b"], [(0, 0, 1, 1)]))
    assert list(reader.read("val")) == [] and "2 words but 1 boxes" in reader.repairs.summary()


# --- the image loader ----------------------------------------------------------------------------------
def test_exif_orientation_is_applied(tmp_path):
    stored = Image.new("RGB", (40, 20), "blue")
    stored.paste((255, 0, 0), (0, 0, 20, 20))  # left half red
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    stored.save(tmp_path / "page.jpg", exif=exif, quality=95)
    image = load_image(tmp_path / "page.jpg")
    assert image.size == (20, 40) and image.mode == "RGB"
    top, bottom = image.getpixel((10, 5)), image.getpixel((10, 35))
    assert top[0] > 200 and top[2] < 60 and bottom[2] > 200 and bottom[0] < 60


def test_palette_transparency_and_cmyk_become_rgb(tmp_path):
    palette = Image.new("P", (4, 4), 1)
    palette.putpalette([0, 0, 0, 200, 30, 40] + [0] * 762)
    palette.putpixel((0, 0), 0)
    palette.save(tmp_path / "p.png", transparency=0)
    image = load_image(tmp_path / "p.png")
    assert image.mode == "RGB" and image.getpixel((1, 1)) == (200, 30, 40)
    assert image.getpixel((0, 0)) == (255, 255, 255)  # transparent = paper, not black
    Image.new("CMYK", (4, 4), (0, 255, 255, 0)).save(tmp_path / "c.tif")
    assert load_image(tmp_path / "c.tif").getpixel((0, 0)) == (255, 0, 0)
    rgba = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    rgba.save(tmp_path / "a.png")
    assert load_image(tmp_path / "a.png").getpixel((2, 2)) == (255, 255, 255)


def test_sixteen_bit_images_are_a_counted_repair(tmp_path):
    Image.fromarray(np.full((3, 5), 65535, dtype=np.uint16)).save(tmp_path / "deep.png")
    with pytest.raises(DataError, match=r"deep.png.*more than 8 bits"):
        load_image(tmp_path / "deep.png", repairs=RepairLog(strict=True))
    log = RepairLog(strict=False)
    image = load_image(tmp_path / "deep.png", repairs=log)
    assert image.getpixel((0, 0)) == (255, 255, 255) and sum(log.counts.values()) == 1


def test_zero_byte_truncated_and_garbage_files(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    Image.new("L", (50, 50), 128).save(tmp_path / "ok.png")
    (tmp_path / "cut.png").write_bytes((tmp_path / "ok.png").read_bytes()[:60])
    (tmp_path / "text.jpg").write_text("not an image")
    for name, reason in (
        ("empty.png", "0 bytes"),
        ("cut.png", "cannot be read"),
        ("text.jpg", "cannot be read"),
        ("missing.png", "not found"),
    ):
        with pytest.raises(DataError, match=f"field 'scan'.*{name}.*{reason}"):
            load_image(tmp_path / name, field="scan")
        log = RepairLog(strict=False)
        assert load_image(tmp_path / name, repairs=log) is None
        assert sum(n for k, n in log.counts.items() if "skip the document" in k) == 1


def test_pixel_limit_guards_against_decompression_bombs(tmp_path):
    Image.new("L", (100, 100)).save(tmp_path / "big.png")
    with pytest.raises(DataError, match=r"big.png.*10,000 pixels.*limit of 5,000"):
        load_image(tmp_path / "big.png", max_pixels=5000)
    assert load_image(tmp_path / "big.png", max_pixels=10_000).size == (100, 100)
    assert load_image(tmp_path / "big.png", max_pixels=None).size == (100, 100)


def test_pdf_page_rendered_at_the_given_dpi(tmp_path):
    import pymupdf

    pdf = pymupdf.open()
    page = pdf.new_page(width=144, height=72)  # 2 x 1 inches
    page.insert_text((10, 50), "INVOICE", fontsize=24)
    pdf.new_page(width=72, height=72)
    pdf.save(tmp_path / "doc.pdf")
    image = load_image(tmp_path / "doc.pdf", dpi=144)
    assert image.size == (288, 144) and image.mode == "RGB"
    pixels = np.asarray(image)
    assert pixels.min() < 64 and pixels.max() == 255  # dark text on a white page
    assert load_image(tmp_path / "doc.pdf", page=1, dpi=72).size == (72, 72)
    with pytest.raises(DataError, match=r"doc.pdf has 2 page\(s\)"):
        load_image(tmp_path / "doc.pdf", page=2)
    with pytest.raises(DataError, match="lower the dpi"):
        load_image(tmp_path / "doc.pdf", dpi=1440, max_pixels=1_000_000)


# --- DataModules: splits and the encoded-split cache ----------------------------------------------------
def sroie_module(tmp_path, **kw):
    kw = {
        "root": str(FIXTURES / "sroie"),
        "val_size": 1,
        "cache_dir": str(tmp_path / "cache"),
        "image_size": 32,
        "max_length": 64,
        "stride": 16,
        **kw,
    }
    return SROIE(**kw)


def flat(windows):
    return [(w.input_ids, w.bbox, w.labels, w.word_ids, w.scored, w.doc_index, w.image.tolist()) for w in windows]


def test_sroie_splits_are_carved_from_train():
    dm = sroie_module(Path("/nonexistent"), cache_dir=None)
    train, val, test = (dm.split_keys(s) for s in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (2, 1, 2) and not set(train) & set(val)
    assert dm.label_names == SROIE_LABELS


def test_cache_miss_then_hit_then_invalidated_by_a_file_or_a_setting(tmp_path):
    first = sroie_module(tmp_path)
    first.setup("fit")
    assert first.cache_events == {"train": "miss", "val": "miss"}
    second = sroie_module(tmp_path)
    second.setup("fit")
    assert second.cache_events == {"train": "hit", "val": "hit"}
    assert flat(second.windows["train"]) == flat(first.windows["train"])
    for expected in ("miss", "hit"):  # another encoder setting: its own entry
        shorter = sroie_module(tmp_path, max_length=48)
        shorter.encode_split("train")
        assert shorter.cache_events["train"] == expected

    root = copy_fixture("sroie", tmp_path)
    moved = sroie_module(tmp_path, root=str(root))
    moved.setup("fit")
    assert moved.cache_events == {"train": "miss", "val": "miss"}  # other files: other key
    ocr = root / "train/box/X00016469619.txt"
    ocr.write_text(ocr.read_text().replace("INDAH", "INDAH JAYA"))
    os.utime(ocr, ns=(ocr.stat().st_atime_ns, ocr.stat().st_mtime_ns + 10**9))
    edited = sroie_module(tmp_path, root=str(root))
    edited.setup("fit")
    assert edited.cache_events["train"] == "miss"
    assert "JAYA" in edited.tokenizer.decode([i for w in edited.windows["train"] for i in w.input_ids]).upper()


def test_corrupt_cache_entry_is_recomputed(tmp_path):
    dm = sroie_module(tmp_path)
    reference = flat(dm.encode_split("test"))
    (entry,) = (tmp_path / "cache").glob("sroie-test-*.pt")
    entry.write_bytes(entry.read_bytes()[:100])  # a half-written file
    again = sroie_module(tmp_path)
    assert flat(again.encode_split("test")) == reference and again.cache_events["test"] == "corrupt"
    third = sroie_module(tmp_path)
    third.encode_split("test")
    assert third.cache_events["test"] == "hit"  # rewritten


def test_cached_repairs_and_counts_are_reported_again(tmp_path, caplog):
    root = copy_fixture("sroie", tmp_path)
    _rewrite_json(root / "test/entities/X51005200938.txt", lambda d: d.update(phone="03"))
    dm = sroie_module(tmp_path, root=str(root))
    with caplog.at_level("WARNING", logger="docalign.data"):
        dm.encode_split("test")
    assert "address not matched: 2" in caplog.text and "from the cache" not in caplog.text
    caplog.clear()
    again = sroie_module(tmp_path, root=str(root))
    with caplog.at_level("WARNING", logger="docalign.data"):
        again.encode_split("test")
    assert again.cache_events["test"] == "hit" and again.repairs.counts == dm.repairs.counts
    assert any("unknown entity" in k for k in again.repairs.counts)
    assert "address not matched: 2" in caplog.text and "from the cache" in caplog.text


def test_cord_module_reads_the_folder_with_dev_as_validation(tmp_path):
    dm = CORD(root=str(FIXTURES / "cord"), cache_dir=str(tmp_path / "cache"), image_size=32, max_length=64, stride=16)
    dm.setup("fit")
    assert len(dm.label_names) == 61 and dm.cache_events == {"train": "miss", "val": "miss"}
    assert {w.doc_index for w in dm.windows["train"]} == {0, 1} and {w.doc_index for w in dm.windows["val"]} == {0}
    batch = next(iter(dm.train_dataloader()))
    assert batch["pixel_values"].shape[-2:] == (32, 32)


@needs_funsd
def test_funsd_module_encodes_a_few_real_forms(tmp_path):
    dm = FUNSD(cache_dir=str(tmp_path / "cache"), max_docs=2, image_size=32, max_length=128, stride=32, strict=True)
    dm.setup("test")
    assert {w.doc_index for w in dm.windows["test"]} == {0, 1} and dm.cache_events == {"test": "miss"}
    assert not dm.repairs.counts


def test_word_text_strips_counts_blank_words_and_reports_non_strings():
    from docalign.data.readers.base import word_text
    from docalign.data.repairs import DataError, RepairLog

    repairs, stats = RepairLog(), Counter()
    assert word_text("  Date: ", "a.json", "words[0].text", repairs, stats) == "Date:"
    assert word_text("   ", "a.json", "words[1].text", repairs, stats) is None
    assert word_text(None, "a.json", "words[2].text", repairs, stats) is None
    assert stats == {"empty words skipped": 1} and sum(repairs.counts.values()) == 1
    with pytest.raises(DataError, match=r"a.json: field 'words\[2\].text': missing or not a string: 7"):
        word_text(7, "a.json", "words[2].text", RepairLog(strict=True), stats)


def test_each_splits_repairs_are_reported_once_not_again_under_later_splits(tmp_path, caplog):
    root = copy_fixture("sroie", tmp_path)
    _rewrite_json(root / "test/entities/X51005200938.txt", lambda d: d.update(phone="03"))  # a test-split repair

    def repair_lines(split):
        return [
            r.getMessage()
            for r in caplog.records
            if r.getMessage().startswith(f"SROIE {split}") and " x " in r.getMessage()
        ]

    for attempt in ("miss", "hit"):  # computed, then from the encoded-split cache
        dm = sroie_module(tmp_path, root=str(root))
        caplog.clear()
        with caplog.at_level("WARNING", logger="docalign.data"):
            dm.encode_split("test")
            dm.encode_split("train")
        assert dm.cache_events == {"test": attempt, "train": attempt}
        assert any("unknown entity" in line for line in repair_lines("test")), caplog.text
        assert not any("unknown entity" in line for line in repair_lines("train")), caplog.text
        assert any("unknown entity" in k for k in dm.repairs.counts)  # still counted for the whole module
