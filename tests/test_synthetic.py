import numpy as np

from docalign.data.labels import CORD_CATEGORIES, bio_label_names
from docalign.data.synthetic import LABEL_NAMES, generate_receipts, render_receipt


def test_same_seed_same_receipt_other_seed_other_receipt():
    a, b = render_receipt(7, 3), render_receipt(7, 3)
    assert (a.words, a.boxes, a.word_labels) == (b.words, b.boxes, b.word_labels)
    assert a.image.tobytes() == b.image.tobytes()
    c = render_receipt(8, 3)
    assert (c.words, c.boxes) != (a.words, a.boxes)


def test_receipt_i_does_not_depend_on_how_many_are_generated():
    assert generate_receipts(1, 5)[4].words == generate_receipts(1, 2 + 3)[4].words == render_receipt(1, 4).words


def test_cord_schema_and_variety():
    docs = generate_receipts(0, 60)
    categories = {label[2:] for d in docs for label in d.word_labels if label != "O"}
    assert categories <= set(CORD_CATEGORIES)
    assert len(categories) >= 10, categories
    assert LABEL_NAMES == bio_label_names(CORD_CATEGORIES) and len(LABEL_NAMES) == 61
    assert len({d.size for d in docs}) > 30  # page sizes vary
    assert len({len(d.words) for d in docs}) > 10  # item counts vary
    # multi-word entities exist (menu names, "Rp 25,000")
    assert any(label.startswith("I-") for d in docs for label in d.word_labels)


def test_text_is_drawn_inside_its_boxes():
    doc = render_receipt(0, 0)
    pixels = np.asarray(doc.image, dtype=np.float32)
    background = np.median(pixels)
    for (x0, y0, x1, y1), word in zip(doc.boxes, doc.words):
        assert 0 <= x0 < x1 <= doc.size[0] and 0 <= y0 < y1 <= doc.size[1]
        ink = pixels[int(y0) : int(y1) + 1, int(x0) : int(x1) + 1].min()
        assert ink < background - 60, f"no ink under {word!r}"
