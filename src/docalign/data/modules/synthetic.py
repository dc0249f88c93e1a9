"""The offline embedded default DataModule: rendered receipts (``docalign.data.synthetic``), no download."""

from __future__ import annotations

from typing import Any, Iterable

from ..document import Document
from ..synthetic import LABEL_NAMES as RECEIPT_LABELS
from ..synthetic import render_receipt
from .base import SPLITS, DocumentDataModule


class SyntheticReceipts(DocumentDataModule):
    """The offline embedded default: rendered receipts in CORD's label schema (see ``synthetic``).

    Args:
        num_train, num_val, num_test: receipts per split.
        seed: the generator seed; splits use ``seed``, ``seed + 1`` and ``seed + 2`` and so never overlap.
        **kwargs: see ``DocumentDataModule``.
    """

    def __init__(
        self, num_train: int = 400, num_val: int = 50, num_test: int = 100, seed: int = 0, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)

    @property
    def label_names(self) -> list[str]:
        return list(RECEIPT_LABELS)

    def load_split(self, split: str) -> Iterable[Document]:
        hp = self.hparams
        count = {"train": hp.num_train, "val": hp.num_val, "test": hp.num_test}[split]
        seed = hp.seed + SPLITS.index(split)
        return (render_receipt(seed, i) for i in range(count))
