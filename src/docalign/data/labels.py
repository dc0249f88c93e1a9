"""Label schemas and BIO helpers."""

from __future__ import annotations

from typing import Sequence

# CORD v2's 30 entity types (Park et al., 2019), in the order of the official release.
CORD_CATEGORIES: tuple[str, ...] = (
    "menu.cnt",
    "menu.discountprice",
    "menu.etc",
    "menu.itemsubtotal",
    "menu.nm",
    "menu.num",
    "menu.price",
    "menu.sub_cnt",
    "menu.sub_etc",
    "menu.sub_nm",
    "menu.sub_price",
    "menu.sub_unitprice",
    "menu.unitprice",
    "menu.vatyn",
    "sub_total.discount_price",
    "sub_total.etc",
    "sub_total.othersvc_price",
    "sub_total.service_price",
    "sub_total.subtotal_price",
    "sub_total.tax_price",
    "total.cashprice",
    "total.changeprice",
    "total.creditcardprice",
    "total.emoneyprice",
    "total.menuqty_cnt",
    "total.menutype_cnt",
    "total.total_etc",
    "total.total_price",
    "void_menu.nm",
    "void_menu.price",
)


def bio_label_names(categories: Sequence[str]) -> list[str]:
    """``["O", "B-c1", "I-c1", "B-c2", ...]``: the tag set for entity categories ``categories``."""
    names = ["O"]
    for category in categories:
        names += [f"B-{category}", f"I-{category}"]
    return names


def bio_tags(category: str | None, n_words: int) -> list[str]:
    """Tags for one entity of ``n_words`` words (``O`` for every word when ``category`` is None)."""
    if category is None:
        return ["O"] * n_words
    return [f"B-{category}"] + [f"I-{category}"] * (n_words - 1)
