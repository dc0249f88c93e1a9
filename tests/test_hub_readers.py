"""The hub readers (FUNSD, SROIE, RVL-CDIP, DocVQA, Tobacco-3482) on small local parquet datasets with the hub copies' column names and
feature types; no network (HF_HUB_OFFLINE=1, hub and datasets caches redirected to the test's tmp folder)."""

from __future__ import annotations

from pathlib import Path

import datasets as hf
import pytest
from PIL import Image

from docalign.data import FUNSD, RVLCDIP, SROIE, DocVQA, Tobacco3482
from docalign.data.readers import (
    FUNSD_LABELS,
    RVL_CDIP_CLASSES,
    SROIE_LABELS,
    TOBACCO3482_CLASSES,
    DocVQAHubReader,
    FUNSDHubReader,
    FUNSDReader,
    RVLCDIPHubReader,
    RVLCDIPReader,
    SROIEHubReader,
    SROIEReader,
    Tobacco3482HubReader,
)
from docalign.data.readers.hub import BLANK_PAGE, HubRow, entity_boxes
from docalign.data.repairs import DataError

from conftest import FIXTURES

FUNSD_TAGS = ["O", "B-HEADER", "I-HEADER", "B-QUESTION", "I-QUESTION", "B-ANSWER", "I-ANSWER"]
SROIE_TAGS = ["O", "B-COMPANY", "I-COMPANY", "B-DATE", "I-DATE", "B-ADDRESS", "I-ADDRESS", "B-TOTAL", "I-TOTAL"]
WORDS = hf.Sequence(hf.Value("string"))
BOXES = hf.Sequence(hf.Sequence(hf.Value("int64")))


def tags(names):
    return hf.Sequence(hf.ClassLabel(names=names))


# nielsr/funsd-layoutlmv3, nielsr/funsd, darentang/sroie, aharley/rvl_cdip
FUNSD_V3 = {
    "id": hf.Value("string"),
    "tokens": WORDS,
    "bboxes": BOXES,
    "ner_tags": tags(FUNSD_TAGS),
    "image": hf.Image(),
}
FUNSD_WORDS = {
    "id": hf.Value("string"),
    "words": WORDS,
    "bboxes": BOXES,
    "ner_tags": tags(FUNSD_TAGS),
    "image_path": hf.Value("string"),
}
SROIE_HUB = {
    "id": hf.Value("string"),
    "words": WORDS,
    "bboxes": BOXES,
    "ner_tags": tags(SROIE_TAGS),
    "image_path": hf.Value("string"),
}
RVL_HUB = {"image": hf.Image(), "label": hf.ClassLabel(names=list(RVL_CDIP_CLASSES))}


@pytest.fixture(autouse=True)
def offline_caches(monkeypatch, tmp_path):
    """Offline, with empty hub and datasets caches of this test's own: nothing here reads or writes ~/.cache."""
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    monkeypatch.setattr(hf.config, "HF_DATASETS_CACHE", Path(tmp_path / "datasets-cache"))
    for name in ("DOCALIGN_FUNSD", "DOCALIGN_SROIE", "DOCALIGN_RVLCDIP", "DOCALIGN_DOCVQA", "DOCALIGN_TOBACCO3482"):
        monkeypatch.delenv(name, raising=False)


def _raw(feature):
    """``feature`` with every ClassLabel as a plain int64 (so rows may hold out-of-range ids before the cast)."""
    if isinstance(feature, hf.ClassLabel):
        return hf.Value("int64")
    if isinstance(feature, (hf.Sequence, hf.List)):
        return hf.Sequence(_raw(feature.feature))
    return feature


def write_hub(folder: Path, features: dict, **splits: dict) -> str:
    """A local parquet dataset (``data/<split>-00000-of-00001.parquet``) that ``load_dataset(folder)`` reads."""
    for split, columns in splits.items():
        feats = hf.Features({k: v for k, v in features.items() if k in columns})
        data = hf.Dataset.from_dict(columns, features=hf.Features({k: _raw(v) for k, v in feats.items()}))
        (folder / "data").mkdir(parents=True, exist_ok=True)
        data.cast(feats).to_parquet(str(folder / "data" / f"{split}-00000-of-00001.parquet"))
    return str(folder)


def page(width, height, colour="white"):
    return Image.new("RGB", (width, height), colour)


def funsd_v3_rows():
    return {
        "id": ["0", "1"],
        "tokens": [["Name:", "John", "Smith", ""], ["DATE"]],
        "bboxes": [
            [[100, 200, 300, 400], [500, 0, 1000, 1000], [500, 0, 1000, 1000], [0, 0, 10, 10]],
            [[0, 0, 1000, 500]],
        ],
        "ner_tags": [[3, 5, 6, 0], [1]],
        "image": [page(200, 100), page(500, 1000)],
    }


# --- FUNSD --------------------------------------------------------------------------------------------
def test_funsd_layoutlmv3_rows_become_documents_with_pixel_boxes(tmp_path):
    folder = write_hub(
        tmp_path / "funsd-v3", FUNSD_V3, train=funsd_v3_rows(), test={k: v[:1] for k, v in funsd_v3_rows().items()}
    )
    reader = FUNSDHubReader(folder, strict=True)
    assert reader.files("train") == [HubRow("train", 0, "0"), HubRow("train", 1, "1")]
    first, second = reader.read("train")
    assert first.words == ["Name:", "John", "Smith"] and first.word_labels == ["B-question", "B-answer", "I-answer"]
    assert first.image.size == (200, 100) and first.image.mode == "RGB" and first.doc_id == "0"
    # 0-1000 grid -> pixels of the 200 x 100 page
    assert first.boxes == [(20.0, 20.0, 60.0, 40.0), (100.0, 0.0, 200.0, 100.0), (100.0, 0.0, 200.0, 100.0)]
    assert second.boxes == [(0.0, 0.0, 500.0, 500.0)] and second.word_labels == ["B-header"]
    assert first.source == f"{folder}[train][0]"
    assert reader.stats["empty words skipped"] == 1 and reader.stats["words"] == 5
    assert not reader.repairs.counts and set(lab for d in (first, second) for lab in d.word_labels) <= set(FUNSD_LABELS)
    assert [d.doc_id for d in reader.read("test")] == ["0"]


def test_funsd_hub_copy_gives_the_folder_readers_documents(tmp_path):
    """The same form as a hub row (boxes normalised to 0-1000 as the hub copies store them) reads back as the
    folder reader's Document: words, labels, image; boxes within the 0-1000 grid's rounding."""
    folder_docs = list(FUNSDReader(FIXTURES / "funsd", strict=True).read("train"))

    def grid(doc):
        w, h = doc.image.size
        return [
            [int(1000 * x0 / w), int(1000 * y0 / h), int(1000 * x1 / w), int(1000 * y1 / h)]
            for x0, y0, x1, y1 in doc.boxes
        ]

    tag_id = {name: i for i, name in enumerate(FUNSD_TAGS)}
    rows = {
        "id": [d.doc_id for d in folder_docs],
        "tokens": [d.words for d in folder_docs],
        "bboxes": [grid(d) for d in folder_docs],
        "ner_tags": [
            [tag_id[lab if lab == "O" else lab[:2] + lab[2:].upper()] for lab in d.word_labels] for d in folder_docs
        ],
        "image": [d.image for d in folder_docs],
    }
    hub_docs = list(FUNSDHubReader(write_hub(tmp_path / "v3", FUNSD_V3, train=rows), strict=True).read("train"))
    assert len(hub_docs) == len(folder_docs) == 3
    for hub, raw in zip(hub_docs, folder_docs):
        assert (hub.doc_id, hub.words, hub.word_labels, hub.image.size) == (
            raw.doc_id,
            raw.words,
            raw.word_labels,
            raw.image.size,
        )
        assert list(hub.image.getdata()) == list(raw.image.getdata())
        tolerance = max(raw.image.size) / 1000 + 1e-9  # int() on the 0-1000 grid loses under one grid unit
        for a, b in zip(hub.boxes, raw.boxes):
            assert a == pytest.approx(b, abs=tolerance)

    # nielsr/funsd's layout: `words`, word-level boxes, an image_path string only -> blank 1000 x 1000 pages
    words_rows = {
        **{k: v for k, v in rows.items() if k not in ("tokens", "image")},
        "words": rows["tokens"],
        "image_path": ["/content/data/training_data/images/x.png"] * 3,
    }
    reader = FUNSDHubReader(write_hub(tmp_path / "words", FUNSD_WORDS, train=words_rows), strict=True)
    blank = list(reader.read("train"))
    assert [(d.words, d.word_labels) for d in blank] == [(d.words, d.word_labels) for d in folder_docs]
    assert blank[0].image.size == (1000, 1000) and blank[0].image.getextrema() == ((255, 255),) * 3
    assert blank[0].boxes == [tuple(float(v) for v in b) for b in rows["bboxes"][0]]  # kept in 0-1000 units
    assert reader.stats[BLANK_PAGE] == 3


def test_segment_boxes_give_an_entitys_words_its_union_box(tmp_path):
    reader = FUNSDHubReader(write_hub(tmp_path / "v3", FUNSD_V3, train=funsd_v3_rows()), segment_boxes=True)
    first = next(iter(reader.read("train")))
    assert first.boxes[1] == first.boxes[2] == (100.0, 0.0, 200.0, 100.0) and first.boxes[0] == (20.0, 20.0, 60.0, 40.0)
    boxes = [(0, 0, 1, 1), (2, 0, 3, 1), (4, 0, 5, 1), (6, 0, 7, 1), (8, 0, 9, 1)]
    assert entity_boxes(boxes, ["B-a", "I-a", "I-b", "O", "I-a"]) == [
        (0, 0, 3, 1),
        (0, 0, 3, 1),
        (4, 0, 5, 1),
        (6, 0, 7, 1),
        (8, 0, 9, 1),
    ]


# --- bad rows: lenient counts, strict names row and field -----------------------------------------------
def _without(rows, column):
    return {k: v for k, v in rows.items() if k != column}


def _set(rows, column, index, value):
    changed = {k: list(v) for k, v in rows.items()}
    changed[column][index] = value
    return changed


BAD_ROWS = {  # name: (rows, (row, field, message) of the first problem, lenient repairs, documents kept)
    "missing column": (_without(funsd_v3_rows(), "bboxes"), (0, "bboxes", "missing"), 2, 0),
    "length mismatch": (
        _set(funsd_v3_rows(), "bboxes", 1, [[0, 0, 10, 10], [0, 0, 5, 5]]),
        (1, "bboxes", "has 2 entries but 'tokens' has 1"),
        1,
        1,
    ),
    "tags length mismatch": (_set(funsd_v3_rows(), "ner_tags", 0, [3, 5]), (0, "ner_tags", "has 2 entries"), 1, 1),
    "tag id out of range": (
        _set(funsd_v3_rows(), "ner_tags", 1, [9]),
        (1, "ner_tags[0]", "tag id 9 outside 0-6"),
        1,
        2,
    ),
    "box outside 0-1000": (
        _set(funsd_v3_rows(), "bboxes", 1, [[0, 0, 1200, 500]]),
        (1, "bboxes[0]", "outside the 0-1000 grid"),
        1,
        2,
    ),
    "malformed box": (
        _set(funsd_v3_rows(), "bboxes", 0, [[1, 2, 3], [500, 0, 1000, 1000], [500, 0, 1000, 1000], [0, 0, 10, 10]]),
        (0, "bboxes[0]", "4 finite numbers"),
        1,
        2,
    ),
    "null image": (_set(funsd_v3_rows(), "image", 0, None), (0, "image", "missing"), 1, 1),
}


@pytest.mark.parametrize("case", sorted(BAD_ROWS))
def test_bad_rows_lenient_counted_strict_raised_naming_row_and_field(case, tmp_path):
    rows, (row, field, message), repairs, kept = BAD_ROWS[case]
    folder = write_hub(tmp_path / "bad", FUNSD_V3, train=rows)
    with pytest.raises(DataError) as err:
        list(FUNSDHubReader(folder, strict=True).read("train"))
    assert f"[train][{row}]: field '{field}'" in str(err.value) and message in str(err.value)
    lenient = FUNSDHubReader(folder)
    docs = list(lenient.read("train"))
    assert sum(lenient.repairs.counts.values()) == repairs and len(docs) == kept
    assert any(message.split(" but")[0] in key for key in lenient.repairs.counts)


def test_lenient_repairs_keep_the_rest_of_the_row(tmp_path):
    out_of_range = _set(funsd_v3_rows(), "ner_tags", 0, [3, 9, 6, 0])
    folder = write_hub(tmp_path / "tags", FUNSD_V3, train=_set(out_of_range, "bboxes", 1, [[-5, 0, 1200, 500]]))
    first, second = FUNSDHubReader(folder).read("train")
    assert first.word_labels == ["B-question", "O", "I-answer"]  # the bad tag id is labelled O
    assert second.boxes == [(0.0, 0.0, 500.0, 500.0)]  # clipped to the grid, then scaled to the 500 x 1000 page


# --- SROIE ----------------------------------------------------------------------------------------------
def test_sroie_hub_tags_map_to_ours_on_blank_pages(tmp_path):
    folder_doc = next(iter(SROIEReader(FIXTURES / "sroie", strict=True).read("train")))
    tag_id = {name: i for i, name in enumerate(SROIE_TAGS)}
    upper = [lab if lab == "O" else f"{lab[:2]}{lab[2:].upper()}" for lab in folder_doc.word_labels]
    w, h = folder_doc.image.size
    grid = [
        [round(1000 * x0 / w), round(1000 * y0 / h), round(1000 * x1 / w), round(1000 * y1 / h)]
        for x0, y0, x1, y1 in folder_doc.boxes
    ]
    rows = {
        "id": ["X00016469612", "1"],
        "words": [folder_doc.words, ["TOTAL", "9.00"]],
        "bboxes": [grid, [[0, 0, 9, 9]] * 2],
        "ner_tags": [[tag_id[t] for t in upper], [0, 7]],
        "image_path": ["/data/sroie/img/x.jpg"] * 2,
    }
    reader = SROIEHubReader(write_hub(tmp_path / "sroie", SROIE_HUB, train=rows, test=rows), strict=True)
    first, second = reader.read("train")
    assert (first.doc_id, first.words, first.word_labels) == (
        folder_doc.doc_id,
        folder_doc.words,
        folder_doc.word_labels,
    )
    assert "B-company" in first.word_labels and second.word_labels == ["O", "B-total"]
    assert first.size == (1000, 1000) and first.boxes[0] == tuple(float(v) for v in grid[0])
    assert reader.stats[BLANK_PAGE] == 2 and set(first.word_labels) <= set(SROIE_LABELS)


# --- RVL-CDIP ---------------------------------------------------------------------------------------------
def known_ocr(image):
    width, height = image.size
    return ["Dear", "Sir"], [(0, 0, width / 2, height), (width / 2, 0, width, height)]


def test_rvl_cdip_hub_rows_give_the_folder_readers_documents(tmp_path):
    folder_docs = list(RVLCDIPReader(FIXTURES / "rvl_cdip", ocr=known_ocr, strict=True).read("train"))
    rows = {
        "image": [d.image for d in folder_docs],
        "label": [RVL_CDIP_CLASSES.index(d.doc_label) for d in folder_docs],
    }
    folder = write_hub(
        tmp_path / "rvl",
        RVL_HUB,
        train=rows,
        validation={k: v[:1] for k, v in rows.items()},
        test={k: v[1:] for k, v in rows.items()},
    )
    reader = RVLCDIPHubReader(folder, ocr=known_ocr, strict=True)
    hub_docs = list(reader.read("train"))
    assert [d.doc_label for d in hub_docs] == [d.doc_label for d in folder_docs] == ["letter", "form", "memo"]
    for hub, raw in zip(hub_docs, folder_docs):
        assert (hub.words, hub.boxes, hub.image.size, hub.image.mode) == (raw.words, raw.boxes, raw.image.size, "RGB")
    assert [d.doc_id for d in hub_docs] == ["train-0", "train-1", "train-2"]
    assert [d.source for d in reader.read("val")] == [f"{folder}[validation][0]"]  # val is the hub's validation
    assert RVLCDIPHubReader(folder).read_file(HubRow("test", 0, "test-0")).words == []  # no OCR: image only


def test_rvl_cdip_hub_bad_labels_and_a_reordered_class_list(tmp_path):
    rows = {"image": [page(30, 40), page(30, 40)], "label": [0, 16]}
    folder = write_hub(tmp_path / "rvl", RVL_HUB, train=rows)
    with pytest.raises(DataError, match=r"\[train\]\[1\]: field 'label': unknown label 16"):
        list(RVLCDIPHubReader(folder, strict=True).read("train"))
    lenient = RVLCDIPHubReader(folder)
    assert [d.doc_label for d in lenient.read("train")] == ["letter"] and sum(lenient.repairs.counts.values()) == 1
    shuffled = {**RVL_HUB, "label": hf.ClassLabel(names=list(reversed(RVL_CDIP_CLASSES)))}
    with pytest.raises(DataError, match="not RVL-CDIP's"):
        list(RVLCDIPHubReader(write_hub(tmp_path / "reordered", shuffled, train=rows)).read("train"))


# --- offline, and the DataModules ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "reader, hub_id, env_var",
    [
        (FUNSDHubReader, "nielsr/funsd-layoutlmv3", "DOCALIGN_FUNSD"),
        (SROIEHubReader, "darentang/sroie", "DOCALIGN_SROIE"),
        (RVLCDIPHubReader, "aharley/rvl_cdip", "DOCALIGN_RVLCDIP"),
    ],
)
def test_hub_readers_fail_fast_and_clearly_offline(reader, hub_id, env_var):
    with pytest.raises(DataError, match=rf"'{hub_id}'.*HF_HUB_OFFLINE.*not in the local cache.*{env_var}"):
        reader()


@pytest.mark.parametrize(
    "module, hub_id, env_var",
    [
        (FUNSD, "nielsr/funsd-layoutlmv3", "DOCALIGN_FUNSD"),
        (SROIE, "darentang/sroie", "DOCALIGN_SROIE"),
        (RVLCDIP, "aharley/rvl_cdip", "DOCALIGN_RVLCDIP"),
    ],
)
def test_datamodules_without_folder_or_hub_say_both(module, hub_id, env_var):
    with pytest.raises(DataError, match=rf"needs its release folder.*{env_var}.*hub copy cannot be read.*'{hub_id}'"):
        module(cache_dir=None)


SMALL = {"image_size": 32, "max_length": 64, "stride": 16}


def test_funsd_and_sroie_modules_read_a_hub_folder_and_carve_validation_by_id(tmp_path):
    rows = {k: v * 2 for k, v in funsd_v3_rows().items()}
    rows["id"] = ["a", "b", "c", "d"]
    folder = write_hub(tmp_path / "funsd", FUNSD_V3, train=rows, test={k: v[:1] for k, v in funsd_v3_rows().items()})
    dm = FUNSD(hub_id=folder, val_size=1, cache_dir=str(tmp_path / "cache"), **SMALL)
    assert isinstance(dm.reader, FUNSDHubReader) and dm.root is None
    train, val = dm.split_keys("train"), dm.split_keys("val")
    assert len(train) == 3 and len(val) == 1 and not set(train) & set(val)
    assert FUNSD(hub_id=folder, val_size=1, cache_dir=None, **SMALL).split_keys("val") == val  # deterministic
    dm.setup("fit")
    assert dm.cache_events == {"train": "off", "val": "off"} and {w.doc_index for w in dm.windows["train"]} == {0, 1, 2}

    sroie_rows = {
        "id": ["x", "y"],
        "words": [["ACME", "9.00"], ["TOTAL"]],
        "bboxes": [[[0, 0, 5, 5]] * 2, [[0, 0, 5, 5]]],
        "ner_tags": [[1, 7], [0]],
        "image_path": ["a.jpg", "b.jpg"],
    }
    sroie = SROIE(
        hub_id=write_hub(tmp_path / "sroie", SROIE_HUB, train=sroie_rows, test=sroie_rows),
        val_size=1,
        cache_dir=None,
        **SMALL,
    )
    sroie.setup("test")
    assert len(sroie.windows["test"]) == 2 and sroie.label_names == SROIE_LABELS


def test_rvlcdip_module_reads_a_hub_folder(tmp_path):
    rows = {"image": [page(40, 30), page(40, 30, "black")], "label": [11, 15]}
    folder = write_hub(tmp_path / "rvl", RVL_HUB, train=rows, validation=rows, test=rows)
    dm = RVLCDIP(hub_id=folder, ocr_engine=None, cache_dir=None, **SMALL)
    dm.setup("test")
    assert [w.doc_label for w in dm.windows["test"]] == [11, 15]


# --- DocVQA (lmms-lab/DocVQA's columns; words from a real OCR engine through the OCR cache) -------------------------
DOCVQA_HUB = {
    "questionId": hf.Value("string"),
    "question": hf.Value("string"),
    "question_types": hf.Sequence(hf.Value("string")),
    "image": hf.Image(),
    "docId": hf.Value("int64"),
    "ucsf_document_id": hf.Value("string"),
    "ucsf_document_page_no": hf.Value("string"),
    "answers": hf.Sequence(hf.Value("string")),
    "data_split": hf.Value("string"),
}
INVOICE = ["Invoice number 4711 dated March", "Customer account balance overdue"]
LETTER = ["Dear Professor Smith", "Payment within thirty days please"]


def docvqa_rows(split="validation", answers=True):
    """Three questions on two rendered pages: the invoice is asked about twice (rows 0 and 2), the letter once."""
    from test_ocr import render

    invoice, letter = render(INVOICE)[0].convert("RGB"), render(LETTER)[0].convert("RGB")
    return {
        "questionId": ["10", "11", "12"],
        "question": ["What is the invoice number?", "Who is addressed?", "What is overdue?"],
        "question_types": [["form"], ["layout"], ["form"]],
        "image": [invoice, letter, invoice.copy()],
        "docId": [7, 8, 7],
        "ucsf_document_id": ["abcd0001", "efgh0002", "abcd0001"],
        "ucsf_document_page_no": ["1", "3", "1"],
        "answers": [["4711", "no. 4711"], ["Professor Smith"], ["the rent"]] if answers else [None] * 3,
        "data_split": [split] * 3,
    }


@pytest.fixture
def tesseract_ocr(tmp_path):
    from docalign.ocr import CachedEngine, OcrCache, get_engine

    engine = CachedEngine(get_engine("tesseract", upscale=1.0), OcrCache(tmp_path / "ocr-cache"))

    def ocr(image):
        result = engine(image)
        return result.words, result.boxes

    ocr.cache_dir = tmp_path / "ocr-cache"
    return ocr


def test_docvqa_hub_rows_become_pages_with_their_questions_and_ocr_words(tmp_path, tesseract_ocr):
    folder = write_hub(
        tmp_path / "docvqa", DOCVQA_HUB, validation=docvqa_rows(), test=docvqa_rows("test", answers=False)
    )
    reader = DocVQAHubReader(folder, ocr=tesseract_ocr, strict=True)
    pages = reader.files("val")
    assert [(p.doc_id, p.rows) for p in pages] == [("abcd0001_1", [0, 2]), ("efgh0002_3", [1])]  # same image: one page
    invoice, letter = reader.read("val")
    assert [q.question for q in invoice.qa_pairs] == ["What is the invoice number?", "What is overdue?"]
    assert {"Invoice", "4711", "overdue"} <= set(invoice.words) and "Smith" in letter.words  # real OCR words
    number, overdue = invoice.qa_pairs
    ((start, end),) = number.answer_spans  # inclusive word indices
    assert invoice.words[start : end + 1] == ["4711"] and overdue.answer_spans == [] and overdue.answers == ["the rent"]
    ((start, end),) = letter.qa_pairs[0].answer_spans
    assert letter.words[start : end + 1] == ["Professor", "Smith"]
    # "no. 4711" and "the rent" are not on the page: counted as the folder reader counts them
    assert reader.stats["questions"] == 3 and reader.stats["answers not found"] == 2
    assert reader.stats["questions with no answer found"] == 1
    assert invoice.source == f"{folder}[validation][0]" and invoice.image.size == docvqa_rows()["image"][0].size
    assert len(list(tesseract_ocr.cache_dir.rglob("*.json"))) == 2  # one OCR per page, not per question
    test_pages = list(reader.read("test"))
    assert [len(d.qa_pairs) for d in test_pages] == [2, 1] and all(q.answers == [] for q in test_pages[0].qa_pairs)
    with pytest.raises(DataError, match=r"our split 'train' is the hub's split 'train'.*'validation', 'test'"):
        reader.files("train")


def test_docvqa_hub_bad_rows_lenient_counted_strict_raised_naming_row_and_field(tmp_path, tesseract_ocr):
    rows = docvqa_rows()
    rows["question"][1] = None
    rows["image"][2] = None
    folder = write_hub(tmp_path / "bad", DOCVQA_HUB, validation=rows)
    with pytest.raises(DataError, match=r"\[validation\]\[1\]: field 'question': missing"):
        DocVQAHubReader(folder, ocr=tesseract_ocr, strict=True).files("val")
    lenient = DocVQAHubReader(folder, ocr=tesseract_ocr)
    pages = lenient.files("val")
    assert [(p.doc_id, p.questions) for p in pages] == [
        ("abcd0001_1", [("What is the invoice number?", ["4711", "no. 4711"])])
    ]
    assert sum(lenient.repairs.counts.values()) == 2
    assert any("[validation][2] [image]" in e for examples in lenient.repairs.examples.values() for e in examples)
    with pytest.raises(ValueError, match="needs an OCR callable"):
        DocVQAHubReader(folder)


def test_docvqa_module_reads_a_hub_folder_and_refuses_a_test_split_without_answers(tmp_path):
    folder = write_hub(
        tmp_path / "docvqa", DOCVQA_HUB, validation=docvqa_rows(), test=docvqa_rows("test", answers=False)
    )
    dm = DocVQA(
        hub_id=folder,
        ocr_engine="tesseract:upscale=1",
        ocr_cache_dir=str(tmp_path / "ocr"),
        cache_dir=None,
        max_question_tokens=16,
        **SMALL,
    )
    assert isinstance(dm.reader, DocVQAHubReader) and dm.root is None
    dm.setup("validate")
    assert dm.cache_events == {"val": "off"} and len(dm.windows["val"]) == 3  # one window per question
    with pytest.raises(DataError, match=rf"{folder}\[test\]: field 'answers': none of the 2 pages"):
        DocVQA(
            hub_id=folder, test_split="test", ocr_engine="tesseract", cache_dir=None, max_question_tokens=16, **SMALL
        ).setup("test")


# --- Tobacco-3482 (maveriq/tobacco3482's layout: one split, train; columns image and label) -------------------------
TOBACCO_HUB = {"image": hf.Image(), "label": hf.ClassLabel(names=list(TOBACCO3482_CLASSES))}


def test_tobacco_hub_rows_labels_and_a_reordered_class_list(tmp_path):
    rows = {"image": [page(30, 40), page(30, 40, "black"), page(30, 40)], "label": [0, 9, 12]}
    folder = write_hub(tmp_path / "tobacco", TOBACCO_HUB, train=rows)
    with pytest.raises(DataError, match=r"\[train\]\[2\]: field 'label': unknown label 12"):
        Tobacco3482HubReader(folder, strict=True).files("all")
    reader = Tobacco3482HubReader(folder, ocr=known_ocr)
    docs = list(reader.read("all"))
    assert [(d.doc_id, d.doc_label, d.words) for d in docs] == [
        ("ADVE/train-0", "ADVE", ["Dear", "Sir"]),
        ("Scientific/train-1", "Scientific", ["Dear", "Sir"]),
    ]
    assert sum(reader.repairs.counts.values()) == 1 and docs[0].source == f"{folder}[train][0]"
    shuffled = {**TOBACCO_HUB, "label": hf.ClassLabel(names=sorted(TOBACCO3482_CLASSES, key=str.lower, reverse=True))}
    with pytest.raises(DataError, match="not Tobacco-3482's"):
        Tobacco3482HubReader(write_hub(tmp_path / "reordered", shuffled, train=rows)).files("all")


def test_tobacco_module_carves_a_hub_folder_per_class(tmp_path):
    rows = {"image": [page(30, 40)] * 8, "label": [0, 0, 0, 3, 3, 3, 3, 9]}
    folder = write_hub(tmp_path / "tobacco", TOBACCO_HUB, train=rows)
    dm = Tobacco3482(hub_id=folder, train_per_class=1, val_per_class=1, ocr_engine=None, cache_dir=None, **SMALL)
    assert isinstance(dm.reader, Tobacco3482HubReader)
    train, val, test = (dm.split_keys(s) for s in ("train", "val", "test"))
    assert [k.label for k in train] == ["ADVE", "Letter", "Scientific"] and [k.label for k in val] == ["ADVE", "Letter"]
    indices = [k.index for part in (train, val, test) for k in part]
    assert len(test) == 3 and sorted(indices) == list(range(8))  # disjoint, and every row is somewhere
    again = Tobacco3482(hub_id=folder, train_per_class=1, val_per_class=1, ocr_engine=None, cache_dir=None, **SMALL)
    assert again.split_keys("val") == val  # deterministic
    dm.setup("test")
    assert sorted(w.doc_label for w in dm.windows["test"]) == [0, 3, 3]


# --- offline: real hub ids that are not cached ------------------------------------------------------------------
def test_docvqa_and_tobacco_hub_readers_fail_fast_and_clearly_offline(monkeypatch):
    for name in ("DOCALIGN_DOCVQA", "DOCALIGN_TOBACCO3482"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(DataError, match=r"'lmms-lab/DocVQA'.*HF_HUB_OFFLINE.*not in the local cache.*DOCALIGN_DOCVQA"):
        DocVQAHubReader(ocr=known_ocr)
    with pytest.raises(DataError, match=r"'maveriq/tobacco3482'.*HF_HUB_OFFLINE.*not in the local cache.*TOBACCO3482"):
        Tobacco3482HubReader()
    with pytest.raises(
        DataError,
        match=r"needs its release folder.*DOCALIGN_DOCVQA.*hub copy cannot be read.*"
        r"'lmms-lab/DocVQA'",
    ):
        DocVQA(ocr_engine="tesseract", ocr_cache_dir=None, cache_dir=None)
    with pytest.raises(
        DataError,
        match=r"needs its release folder.*DOCALIGN_TOBACCO3482.*hub copy cannot be read.*"
        r"'maveriq/tobacco3482'",
    ):
        Tobacco3482(ocr_engine=None, cache_dir=None)
