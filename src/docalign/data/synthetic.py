"""A deterministic generator of receipt images in CORD's label schema: the offline embedded default.

Receipt ``i`` of seed ``s`` depends only on ``(s, i)``, so the training, validation and test splits are
disjoint (different seeds) and every run sees the same pages. Each receipt is rendered with PIL, word
by word, and the box of each word is the box PIL reports for the drawn glyphs, so text and boxes agree
to the pixel. Layouts vary: number of items, three item-line styles, optional sub-items, column
positions, font sizes, price formats, optional service/discount/payment lines, background tone and
light pixel noise.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .document import Document
from .labels import CORD_CATEGORIES, bio_label_names, bio_tags

LABEL_NAMES: list[str] = bio_label_names(CORD_CATEGORIES)

_STORES = [
    "KOPI",
    "NASI",
    "WARUNG",
    "BAKERY",
    "CAFE",
    "RESTO",
    "MART",
    "BISTRO",
    "DAPUR",
    "TOKO",
    "SUSHI",
    "PIZZA",
    "BURGER",
    "MIE",
    "SATE",
    "BAKSO",
]
_STORE_SUFFIX = ["JAYA", "INDAH", "SENTOSA", "MAKMUR", "KITA", "ABADI", "EXPRESS", "CORNER", "HOUSE"]
_STREETS = ["JL.", "JALAN"]
_STREET_NAMES = ["SUDIRMAN", "THAMRIN", "GATOT", "MERDEKA", "DIPONEGORO", "braga", "KEMANG", "SENOPATI"]
_FOODS = [
    "NASI",
    "GORENG",
    "AYAM",
    "BAKAR",
    "MIE",
    "KUAH",
    "ES",
    "TEH",
    "MANIS",
    "KOPI",
    "SUSU",
    "JERUK",
    "ROTI",
    "BAKAR",
    "SATE",
    "SAPI",
    "SOTO",
    "BETAWI",
    "LATTE",
    "ICED",
    "CAPPUCCINO",
    "TAHU",
    "TEMPE",
    "PISANG",
    "KEJU",
    "COKLAT",
    "CHICKEN",
    "BURGER",
    "FRIES",
    "LEMON",
    "TEA",
    "RICE",
    "BOWL",
    "SPICY",
    "BEEF",
    "NOODLE",
    "DUMPLING",
    "MATCHA",
    "CROISSANT",
    "DONUT",
    "WAFFLE",
    "SALAD",
]
_EXTRAS = ["CHEESE", "EGG", "SAMBAL", "SHOT", "SYRUP", "TOPPING", "SAUCE", "LARGE"]


@dataclass
class _Line:
    """One printed line: (text, category or None) segments, each placed at a column x."""

    segments: list[tuple[list[str], str | None, float, str]]  # words, category, x, align ("l"|"r")


def _price(value: int, style: int) -> str:
    if style == 0:
        return f"{value:,}"
    if style == 1:
        return f"{value:,}".replace(",", ".")
    return str(value)


def _words(rng: random.Random, pool: list[str], lo: int, hi: int) -> list[str]:
    return [rng.choice(pool) for _ in range(rng.randint(lo, hi))]


def _layout(rng: random.Random) -> list[_Line]:
    """Decide the receipt's content and columns (in fractions of the page width)."""
    style = rng.randrange(3)
    currency = rng.random() < 0.3
    left, right = rng.uniform(0.04, 0.10), rng.uniform(0.90, 0.96)
    cnt_col = rng.uniform(0.50, 0.62)

    def money(value: int) -> list[str]:
        text = _price(value, style)
        return ["Rp", text] if currency else [text]

    lines: list[_Line] = []
    store = [rng.choice(_STORES), rng.choice(_STORE_SUFFIX)]
    lines.append(_Line([(store, None, 0.5 - 0.06 * len(store), "l")]))
    address = [rng.choice(_STREETS), rng.choice(_STREET_NAMES), str(rng.randint(1, 250))]
    lines.append(_Line([(address, None, left, "l")]))
    lines.append(
        _Line(
            [
                (
                    [
                        f"{rng.randint(1, 28):02d}/{rng.randint(1, 12):02d}/2026",
                        f"{rng.randint(7, 22):02d}:{rng.randint(0, 59):02d}",
                    ],
                    None,
                    left,
                    "l",
                )
            ]
        )
    )
    lines.append(_Line([(["-" * rng.randint(18, 30)], None, left, "l")]))

    item_style = rng.randrange(3)
    subtotal, quantity = 0, 0
    n_items = rng.randint(1, 7)
    for _ in range(n_items):
        name = _words(rng, _FOODS, 1, 3)
        count = rng.randint(1, 4)
        unit = rng.randrange(5, 80) * 500
        price = unit * count
        subtotal += price
        quantity += count
        if item_style == 0:  # "2 x NAME ... 25,000"
            lines.append(
                _Line(
                    [
                        ([str(count)], "menu.cnt", left, "l"),
                        (["x"], None, left + 0.05, "l"),
                        (name, "menu.nm", left + 0.10, "l"),
                        (money(price), "menu.price", right, "r"),
                    ]
                )
            )
        elif item_style == 1:  # "NAME" then "2 @ 12,500 ... 25,000"
            lines.append(_Line([(name, "menu.nm", left, "l")]))
            lines.append(
                _Line(
                    [
                        ([str(count)], "menu.cnt", left + 0.04, "l"),
                        (["@"], None, left + 0.10, "l"),
                        (money(unit), "menu.unitprice", left + 0.15, "l"),
                        (money(price), "menu.price", right, "r"),
                    ]
                )
            )
        else:  # columns "NAME | 2 | 25,000"
            lines.append(
                _Line(
                    [
                        (name, "menu.nm", left, "l"),
                        ([str(count)], "menu.cnt", cnt_col, "l"),
                        (money(price), "menu.price", right, "r"),
                    ]
                )
            )
        if rng.random() < 0.25:
            extra = rng.randrange(1, 10) * 1000
            subtotal += extra
            lines.append(
                _Line(
                    [
                        (["+"], None, left + 0.04, "l"),
                        ([rng.choice(_EXTRAS)], "menu.sub_nm", left + 0.08, "l"),
                        (money(extra), "menu.sub_price", right, "r"),
                    ]
                )
            )
    lines.append(_Line([(["-" * rng.randint(18, 30)], None, left, "l")]))

    total = subtotal
    lines.append(
        _Line(
            [
                ([rng.choice(["SUBTOTAL", "SUB-TOTAL", "Subtotal"])], None, left, "l"),
                (money(subtotal), "sub_total.subtotal_price", right, "r"),
            ]
        )
    )
    if rng.random() < 0.4:
        discount = rng.randrange(1, 10) * 1000
        total -= discount
        lines.append(
            _Line(
                [
                    (["DISCOUNT"], None, left, "l"),
                    (["-" + _price(discount, style)], "sub_total.discount_price", right, "r"),
                ]
            )
        )
    if rng.random() < 0.5:
        service = subtotal * 5 // 100
        total += service
        lines.append(
            _Line([(["SERVICE", "5%"], None, left, "l"), (money(service), "sub_total.service_price", right, "r")])
        )
    tax = subtotal // 10
    total += tax
    lines.append(
        _Line(
            [
                ([rng.choice(["TAX", "PB1", "PPN"]), "10%"], None, left, "l"),
                (money(tax), "sub_total.tax_price", right, "r"),
            ]
        )
    )
    lines.append(_Line([(["TOTAL"], None, left, "l"), (money(total), "total.total_price", right, "r")]))
    if rng.random() < 0.5:
        lines.append(_Line([(["TOTAL", "QTY"], None, left, "l"), ([str(quantity)], "total.menuqty_cnt", right, "r")]))
    if rng.random() < 0.6:
        paid = (total // 50000 + 1) * 50000
        lines.append(_Line([(["CASH"], None, left, "l"), (money(paid), "total.cashprice", right, "r")]))
        lines.append(_Line([(["CHANGE"], None, left, "l"), (money(paid - total), "total.changeprice", right, "r")]))
    else:
        lines.append(
            _Line(
                [
                    ([rng.choice(["CARD", "DEBIT", "VISA"])], None, left, "l"),
                    (money(total), "total.creditcardprice", right, "r"),
                ]
            )
        )
    lines.append(_Line([(["THANK", "YOU"], None, 0.3, "l")]))
    return lines


def render_receipt(seed: int, index: int) -> Document:
    """Render receipt ``index`` of the stream ``seed``: a ``Document`` with BIO word labels."""
    rng = random.Random(f"docalign-receipt-{seed}-{index}")
    lines = _layout(rng)
    width = rng.randint(380, 520)
    font_size = rng.randint(13, 19)
    font = ImageFont.load_default(size=font_size)
    line_height = int(font_size * rng.uniform(1.35, 1.7))
    top = rng.randint(12, 40)
    height = top * 2 + line_height * len(lines)
    background = rng.randint(225, 255)
    image = Image.new("L", (width, height), color=background)
    draw = ImageDraw.Draw(image)
    ink = rng.randint(0, 70)
    space = draw.textlength(" ", font=font)

    words: list[str] = []
    boxes: list[tuple[float, float, float, float]] = []
    labels: list[str] = []
    for row, line in enumerate(lines):
        y = top + row * line_height + rng.randint(-1, 1)
        for segment_words, category, x_frac, align in line.segments:
            widths = [draw.textlength(w, font=font) for w in segment_words]
            span = sum(widths) + space * (len(segment_words) - 1)
            x = x_frac * width - (span if align == "r" else 0)
            x = min(max(x, 2.0), width - span - 2.0)
            for word, w in zip(segment_words, widths):
                draw.text((x, y), word, fill=ink, font=font)
                x0, y0, x1, y1 = draw.textbbox((x, y), word, font=font)
                words.append(word)
                boxes.append((float(x0), float(y0), float(x1), float(y1)))
                x += w + space
            labels += bio_tags(category, len(segment_words))

    pixels = np.asarray(image, dtype=np.float32)
    noise = np.random.default_rng(rng.randrange(2**32)).normal(0.0, rng.uniform(2.0, 8.0), pixels.shape)
    image = Image.fromarray(np.clip(pixels + noise, 0, 255).astype(np.uint8), mode="L")
    return Document(
        doc_id=f"receipt-{seed}-{index}",
        image=image,
        words=words,
        boxes=boxes,
        word_labels=labels,
        source=f"synthetic receipt seed={seed} index={index}",
    )


def generate_receipts(seed: int, count: int) -> list[Document]:
    """The first ``count`` receipts of the stream ``seed``."""
    return [render_receipt(seed, i) for i in range(count)]
