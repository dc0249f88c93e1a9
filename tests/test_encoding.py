import pytest
import torch
from PIL import Image

from docalign.conventions import IGNORE_INDEX
from docalign.data.document import Document
from docalign.data.encoding import DocumentEncoder, collate_windows, window_starts
from docalign.data.repairs import DataError, RepairLog
from docalign.data.synthetic import LABEL_NAMES, render_receipt

LABELS = ["O", "B-key", "I-key", "B-value", "I-value"]


def page(words, boxes, labels=None, size=(200, 100)):
    return Document("doc-1", Image.new("L", size, 255), words, boxes, labels, source="fixture.json")


def encoder(tok, **kw):
    kw.setdefault("image_size", 32)
    return DocumentEncoder(tok, LABELS, **kw)


def test_first_subtoken_labels_and_scaled_boxes(minilm_tokenizer):
    doc = page(["Total", "unbelievably"], [(0, 0, 100, 50), (100, 50, 200, 100)], ["B-key", "B-value"])
    (w,) = encoder(minilm_tokenizer).encode(doc, 0)
    pieces = minilm_tokenizer.convert_ids_to_tokens(w.input_ids)
    assert pieces[0] == "[CLS]" and pieces[-1] == "[SEP]"
    n_second = len(minilm_tokenizer.tokenize("unbelievably"))
    assert n_second > 1
    assert w.labels == [IGNORE_INDEX, 1, 3] + [IGNORE_INDEX] * (n_second - 1) + [IGNORE_INDEX]
    assert w.word_ids == [-1, 0] + [1] * n_second + [-1]
    assert w.bbox[1] == [0, 0, 500, 500] and w.bbox[2] == [500, 500, 1000, 1000]
    assert w.bbox[0] == [0, 0, 0, 0] and w.bbox[-1] == [1000] * 4
    assert sum(w.scored) == 2
    assert w.image.shape == (3, 32, 32) and w.image.dtype == torch.uint8


def test_bpe_tokenizer_labels_first_subtoken(bpe_tokenizer):
    doc = page(["SUBTOTAL", "Rp", "25,000"], [(0, 0, 10, 10)] * 3, ["O", "B-value", "I-value"])
    (w,) = encoder(bpe_tokenizer).encode(doc, 0)
    labelled = [(t, lab) for t, lab in zip(w.word_ids, w.labels) if lab != IGNORE_INDEX]
    assert labelled == [(0, 0), (1, 3), (2, 4)]
    assert len(w.input_ids) > 5  # "25,000" and "SUBTOTAL" split into several pieces


def test_empty_page_is_kept_and_counted(minilm_tokenizer):
    enc = encoder(minilm_tokenizer)
    (w,) = enc.encode(page([], []), 0)
    assert w.input_ids == [minilm_tokenizer.cls_token_id, minilm_tokenizer.sep_token_id]
    assert not any(w.scored)
    assert sum(enc.repairs.counts.values()) == 1 and "no words" in enc.repairs.summary()
    with pytest.raises(DataError, match="fixture.json: field 'words'"):
        encoder(minilm_tokenizer, repairs=RepairLog(strict=True)).encode(page([], []), 0)


def test_out_of_page_and_inverted_boxes_are_repaired_and_counted(minilm_tokenizer):
    doc = page(["a", "b", "c"], [(-20, 10, 50, 20), (150, 60, 120, 40), (10, 10, 20, 20)])
    enc = encoder(minilm_tokenizer)
    (w,) = enc.encode(doc, 0)
    assert w.bbox[1] == [0, 100, 250, 200]  # clipped at x = 0
    assert w.bbox[2] == [600, 400, 750, 600]  # corners swapped
    assert sum(enc.repairs.counts.values()) == 2
    assert "fixture.json [boxes[0]]" in enc.repairs.summary() and "fixture.json [boxes[1]]" in enc.repairs.summary()
    with pytest.raises(DataError, match=r"fixture.json: field 'boxes\[0\]'"):
        encoder(minilm_tokenizer, repairs=RepairLog(strict=True)).encode(doc, 0)
    outside = page(["a"], [(10, 10, 900, 20)])
    (w,) = encoder(minilm_tokenizer).encode(outside, 0)
    assert max(max(b) for b in w.bbox) <= 1000


def test_unknown_label_and_unencodable_word(minilm_tokenizer):
    doc = page(["x", "\u200b", "y"], [(0, 0, 1, 1)] * 3, ["B-key", "O", "B-nonsense"])
    enc = encoder(minilm_tokenizer)
    (w,) = enc.encode(doc, 0)
    assert sorted(t for t, s in zip(w.word_ids, w.scored) if s) == [0, 1, 2]  # no word lost
    assert w.labels[3] == 0  # unknown label -> O, counted
    assert sum(enc.repairs.counts.values()) == 2
    with pytest.raises(DataError, match=r"fixture.json: field 'word_labels\[2\]': unknown label 'B-nonsense'"):
        encoder(minilm_tokenizer, repairs=RepairLog(strict=True)).encode(doc, 0)
    doc.word_labels[2] = "O"
    with pytest.raises(DataError, match=r"fixture.json: field 'words\[1\]'"):
        encoder(minilm_tokenizer, repairs=RepairLog(strict=True)).encode(doc, 0)


def test_window_starts_cover_and_overlap():
    assert window_starts(0, 10, 3) == [0]
    assert window_starts(10, 10, 3) == [0]
    assert window_starts(11, 10, 3) == [0, 7]
    assert window_starts(25, 10, 4) == [0, 6, 12, 18]
    with pytest.raises(ValueError):
        window_starts(5, 10, 10)


def test_long_document_windows_score_every_word_exactly_once(minilm_tokenizer):
    words = [f"word{i}" if i % 7 else "extraordinarilylongtokenisation" * 3 for i in range(300)]
    doc = page(words, [(i % 200, 0, i % 200 + 1, 10) for i in range(300)], ["O"] * 300)
    windows = encoder(minilm_tokenizer, max_length=64, stride=16).encode(doc, 5)
    assert len(windows) > 5
    assert all(len(w.input_ids) <= 64 for w in windows) and {w.doc_index for w in windows} == {5}
    scored = [wid for w in windows for wid, s in zip(w.word_ids, w.scored) if s]
    assert sorted(scored) == list(range(300))
    assert windows[0].image is windows[-1].image  # one image tensor per document


def test_a_word_longer_than_a_window_is_still_scored_once(minilm_tokenizer):
    words = ["a", "x" * 400, "b"]  # WordPiece splits this into >100 pieces
    doc = page(words, [(0, 0, 5, 5)] * 3, ["B-key", "B-value", "O"])
    windows = encoder(minilm_tokenizer, max_length=32, stride=8).encode(doc, 0)
    scored = [wid for w in windows for wid, s in zip(w.word_ids, w.scored) if s]
    assert sorted(scored) == [0, 1, 2]


def test_collate_pads_with_the_right_values(minilm_tokenizer):
    enc = encoder(minilm_tokenizer)
    w1 = enc.encode(page(["a"], [(0, 0, 1, 1)], ["B-key"]), 0)[0]
    w2 = enc.encode(page(["a", "b", "c"], [(0, 0, 1, 1)] * 3, ["O"] * 3), 1)[0]
    batch = collate_windows([w1, w2], pad_token_id=minilm_tokenizer.pad_token_id)
    assert batch["input_ids"].shape == (2, 5)
    assert batch["input_ids"][0, 3:].tolist() == [minilm_tokenizer.pad_token_id] * 2
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0, 0], [1] * 5]
    assert batch["labels"][0, 3:].tolist() == [IGNORE_INDEX] * 2
    assert batch["word_ids"][0, 3:].tolist() == [-1, -1] and not batch["scored"][0, 3:].any()
    assert batch["bbox"][0, 3:].abs().sum() == 0
    assert batch["doc_index"].tolist() == [0, 1]
    pix = batch["pixel_values"]
    assert pix.shape == (2, 3, 32, 32) and pix.dtype == torch.float32
    assert torch.equal(pix, torch.ones_like(pix))  # a white page: pixels in [0, 1], each model normalises them


def test_receipt_encodes_with_cord_labels(minilm_tokenizer):
    doc = render_receipt(0, 1)
    (w,) = DocumentEncoder(minilm_tokenizer, LABEL_NAMES, max_length=512, image_size=64).encode(doc, 0)
    assert sum(w.scored) == len(doc.words)
    gold = [LABEL_NAMES.index(lab) for lab in doc.word_labels]
    assert [lab for lab in w.labels if lab != IGNORE_INDEX] == gold


def test_segment_ids_are_runs_of_equal_boxes_and_windows_are_numbered(minilm_tokenizer):
    # words 0-1 share a box, word 2 has its own, word 3 has the first box again: a run of its own, so a segment
    # of its own (segment decoding has always grouped runs, not equal boxes across the page)
    first, second = (0, 0, 50, 10), (60, 0, 90, 10)
    doc = page(["a", "b", "c", "d"], [first, first, second, first], ["O"] * 4)
    (w,) = encoder(minilm_tokenizer).encode(doc, 0)
    assert w.word_ids == [-1, 0, 1, 2, 3, -1] and w.segment_ids == [-1, 0, 0, 1, 2, -1] and w.window_index == 0
    # a long document: its windows are numbered 0, 1, ...; a token's segment is its word's, in every window
    words = [f"word{i}" for i in range(120)]
    windows = encoder(minilm_tokenizer, max_length=32, stride=8).encode(
        page(words, [(10 * (i // 3), 0, 10 * (i // 3) + 5, 10) for i in range(120)], ["O"] * 120, (400, 100)), 4
    )
    assert [w.window_index for w in windows] == list(range(len(windows))) and len(windows) > 3
    assert all(s == (-1 if wid < 0 else wid // 3) for w in windows for wid, s in zip(w.word_ids, w.segment_ids))
    batch = collate_windows([windows[1], windows[-1]], pad_token_id=minilm_tokenizer.pad_token_id)
    assert batch["window_index"].tolist() == [1, len(windows) - 1] and batch["window_index"].dtype == torch.long
    assert batch["segment_ids"].dtype == torch.long and batch["segment_ids"].shape == batch["word_ids"].shape
    assert torch.equal(batch["segment_ids"] < 0, batch["word_ids"] < 0)  # -1 on special and padding tokens
    assert batch["segment_ids"][1, len(windows[-1].input_ids) :].eq(-1).all()


def test_the_window_cache_keeps_segment_ids_and_window_index_and_refuses_entries_without_them(
    minilm_tokenizer, tmp_path
):
    import dataclasses

    from docalign.data.cache import WindowCache

    words = [f"word{i}" for i in range(60)]
    windows = encoder(minilm_tokenizer, max_length=32, stride=8).encode(
        page(words, [(10 * (i // 4), 0, 10 * (i // 4) + 5, 10) for i in range(60)], ["O"] * 60), 0
    )
    cache = WindowCache(tmp_path)
    cache.save("funsd-test", "k" * 40, windows, {}, {}, {})
    status, entry = cache.load("funsd-test", "k" * 40)
    assert status == "hit" and len(windows) > 1
    kept = [(w.segment_ids, w.window_index) for w in entry["windows"]]
    assert kept == [(w.segment_ids, w.window_index) for w in windows]
    # An entry written before windows carried them (the code fingerprint in the key changed with this module, so
    # it would not even be looked up): not served as a hit, recomputed.
    old = [
        {f.name: getattr(w, f.name) for f in dataclasses.fields(w) if f.name not in ("segment_ids", "window_index")}
        for w in windows
    ]
    data = torch.load(cache.path("funsd-test", "k" * 40), weights_only=True)
    torch.save({**data, "windows": old}, cache.path("funsd-test", "k" * 40))
    assert cache.load("funsd-test", "k" * 40) == ("corrupt", None)
