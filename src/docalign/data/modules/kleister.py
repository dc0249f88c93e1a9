"""The Kleister-NDA DataModule: long multi-page NDAs, word tagging with weak BIO labels over 4 keys.

Splits: ``train`` is the release's train (254 documents), ``val`` its dev-0 (83), ``test`` is ``test_split``:
dev-0 by default (test-A's expected values are withheld by the benchmark, so it has no labels to score; its
predictions go to out.tsv through ``docalign.inference.kleister``).

Documents come from ``readers.kleister.KleisterNDAReader`` (page images rendered at ``dpi``, words from the PDF
text layer, OCR by ``ocr_engine`` only for pages without one) with weak labels from the expected values
(``docalign.data.kleister_values``). Windows run over all pages (``DocumentEncoder``: each token keeps its page,
each window carries the image of its main page).
"""

from __future__ import annotations

from typing import Any, Optional

from ...ocr import CachedEngine, OcrCache, engine_from_spec
from ..kleister_values import KLEISTER_LABELS
from ..readers.kleister import DEFAULT_KLEISTER_DPI, KleisterNDAReader, KleisterRow
from .base import DEFAULT_OCR_CACHE_DIR, ReleaseDataModule

_SPLITS = {"train": "train", "val": "dev-0"}


class KleisterNDA(ReleaseDataModule):
    """Kleister-NDA (``readers.kleister``): 9 BIO tags over effective_date, jurisdiction, party, term.

    Args:
        test_split: the release split used as ``test`` (``dev-0``, or ``test-A`` for unlabelled predictions).
        dpi: page image resolution (boxes are scaled to 0-1000 per page, so it only changes the images).
        max_pages: read at most this many pages per document (None: all).
        ocr_engine: ``docalign.ocr.engine_from_spec`` spec for pages without a text layer (27 of the
            release's 3,227), or None: such pages keep no words (counted).
        ocr_cache_dir: the OCR cache folder (None: no cache).
        **kwargs: ``root`` (default ``$DOCALIGN_KLEISTER_NDA``), ``cache_dir``, ``max_pixels``
            (``ReleaseDataModule``) and the rest of ``DocumentDataModule``.
    """

    dataset = "Kleister-NDA"
    env_var = "DOCALIGN_KLEISTER_NDA"
    layout = (
        "Expected the Kleister-NDA release layout: documents/*.pdf, in-header.tsv, train/, dev-0/ and test-A/ with "
        "in.tsv.xz (train and dev-0 with expected.tsv)."
    )
    folder_reader = KleisterNDAReader

    def __init__(
        self,
        test_split: str = "dev-0",
        dpi: int = DEFAULT_KLEISTER_DPI,
        max_pages: Optional[int] = None,
        ocr_engine: Optional[str] = "tesseract",
        ocr_cache_dir: Optional[str] = DEFAULT_OCR_CACHE_DIR,
        **kwargs: Any,
    ) -> None:
        if test_split not in KleisterNDAReader.splits:
            raise ValueError(f"data.init_args.test_split must be one of {KleisterNDAReader.splits}, got {test_split!r}")
        super().__init__(**kwargs)
        engine = engine_from_spec(ocr_engine) if ocr_engine else None
        cache = OcrCache(ocr_cache_dir) if engine is not None and ocr_cache_dir else None
        self.ocr = CachedEngine(engine, cache) if cache is not None else engine

    @property
    def label_names(self) -> list[str]:
        return list(KLEISTER_LABELS)

    def reader_kwargs(self) -> dict[str, Any]:
        hp = self.hparams
        return {**super().reader_kwargs(), "dpi": hp.dpi, "max_pages": hp.max_pages, "ocr": self.ocr}

    def reader_settings(self) -> dict[str, Any]:
        hp = self.hparams
        return {
            "dpi": hp.dpi,
            "max_pages": hp.max_pages,
            "max_pixels": hp.max_pixels,
            "ocr_engine": hp.ocr_engine,
            "ocr_settings": self.ocr.settings() if self.ocr is not None else None,
        }

    def release_split(self, split: str) -> str:
        return _SPLITS.get(split) or self.hparams.test_split

    def split_keys(self, split: str) -> list[KleisterRow]:
        return self.reader.files(self.release_split(split))

    def cache_parts(self, split: str, keys: list[Any]) -> dict[str, Any]:
        return {**super().cache_parts(split, keys), "release_split": self.release_split(split)}

    def rows(self, split: str) -> list[KleisterRow]:
        """The in.tsv rows of a DataModule split (their keys and expected values), in document order."""
        return self.split_keys(split)
