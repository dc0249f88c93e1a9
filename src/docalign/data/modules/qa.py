"""Document question answering: the DocVQA DataModule (extractive answers on the release's OCR)."""

from __future__ import annotations

from typing import Any, Optional

from torch.utils.data import DataLoader

from ...ocr import CachedEngine, OcrCache, engine_from_spec
from .. import qa_encoding
from ..cache import WindowCache, code_fingerprint
from ..encoding import EncodedWindow
from ..qa_encoding import QAEncoder, QAWindow, collate_qa
from ..readers import docvqa as docvqa_reader
from ..readers.base import Reader
from ..readers.synthetic import SyntheticReader, check_counts
from ..repairs import DataError
from .base import DEFAULT_OCR_CACHE_DIR, ReleaseDataModule, log


class DocVQA(ReleaseDataModule):
    """DocVQA (39,463 train / 5,349 val / 5,188 test questions on 12,000+ pages): extractive QA on the release's OCR.

    Samples: one per (question, window of its page), ``[CLS] question [SEP] page words [SEP]`` with the token
    indices of the first located answer span as targets (``data.qa_encoding``; batches from ``collate_qa``).
    Splits: the release folders ``train/``, ``val/`` and ``test/`` (see ``readers.docvqa``).

    Answers that the reader could not locate as a word span of the OCR: in ``train`` the question is skipped
    and counted (``training questions skipped (no answer located in the OCR)``, logged as a warning with the
    reader's counts and kept in the cache entry); in ``val`` and ``test`` it is kept without a target, since
    ANLS compares the predicted text with the answer strings, so such questions count (usually as misses).

    The test split: the release's ``test/`` has no answers (the DocVQA evaluation server scores it), so with
    ``test_split: val`` (the default) the ``test`` stage scores the validation split and logs a warning
    saying so. ``test_split: test`` reads ``test/`` instead and is refused with a ``DataError`` (before
    training, at setup) when none of its questions has an answer. ``predict`` always reads the release's
    ``test/``: answers to submit.

    Source: the release folder, else the hub copy ``hub_id`` (``readers.docvqa.DocVQAHubReader``: questions grouped
    per page image, words from ``ocr_engine`` through the OCR cache as for ``RVLCDIP``; no encoded-split cache).
    ``lmms-lab/DocVQA`` has only ``validation`` and ``test`` (no answers): ``fit`` needs a copy with ``train``
    (e.g. ``HuggingFaceM4/DocumentVQA`` with ``hub_config: null``); ``validate`` and ``predict`` work on it.

    The release folder: ``root``, the folder holding ``train/``, ``val/`` and ``test/``; default
    ``$DOCALIGN_DOCVQA``, else the hub.

    Offline documents: ``synthetic_docs: {train: N, val: N, test: N}`` reads rendered pages of the sixteen kinds
    (``docalign.data.synthetic_docs``, stream ``synthetic_seed``) with their questions over rendered fields ("What
    is the invoice date?", answers located by construction) instead of the release (no folder, hub or OCR); their
    test split has answers, so the ``test`` stage scores it (``test_split`` does not apply).
    ``experiments/_offline_docs.yaml`` sets it.

    Args:
        hub_id: the hub copy (or a local parquet folder) read when there is no folder.
        hub_config: its configuration (``DocVQA`` for ``lmms-lab/DocVQA``; None: the default one).
        ocr_engine, ocr_cache_dir: the OCR of the hub copy's pages (as for ``RVLCDIP``; unused with a folder).
        test_split: ``val`` (default) or ``test``: what the ``test`` stage scores (see above).
        max_question_tokens: the longest question kept, in sub-tokens (longer ones are cut and counted);
            ``max_length - 3 - max_question_tokens`` must exceed ``stride``.
        synthetic_docs: pages per split of the synthetic stand-in (None: the release).
        synthetic_seed: its seed (splits use ``seed``, ``seed + 1``, ``seed + 2``).
        **kwargs: ``root``, ``cache_dir``, ``max_pixels`` (``ReleaseDataModule``) and the rest of
            ``DocumentDataModule`` (``max_docs`` counts pages, not questions).
    """

    dataset = "DocVQA"
    env_var = "DOCALIGN_DOCVQA"
    layout = (
        "Expected the DocVQA release layout: train/, val/ and test/, each with <split>_v1.0.json, documents/ "
        "and ocr_results/."
    )
    collate = staticmethod(collate_qa)
    hub_readable = True

    def __init__(
        self,
        test_split: str = "val",
        max_question_tokens: int = 64,
        hub_id: str = docvqa_reader.DOCVQA_HUB_ID,
        hub_config: Optional[str] = docvqa_reader.DOCVQA_HUB_CONFIG,
        ocr_engine: Optional[str] = "rapidocr",
        ocr_cache_dir: Optional[str] = DEFAULT_OCR_CACHE_DIR,
        synthetic_docs: Optional[dict[str, int]] = None,
        synthetic_seed: int = 0,
        **kwargs: Any,
    ) -> None:
        if test_split not in ("val", "test"):
            raise ValueError(f"DocVQA: test_split must be 'val' or 'test', got {test_split!r}")
        if synthetic_docs is not None:
            check_counts(synthetic_docs, "data.init_args.synthetic_docs")
        super().__init__(**kwargs)
        if self.cache is not None:
            self.cache = WindowCache(self.hparams.cache_dir, QAWindow)
        self._encoding: Optional[str] = None  # the split being encoded (training skips unlocated answers)
        self._split_keys: dict[str, list[Any]] = {}
        self.ocr: Optional[CachedEngine] = None
        if self.root is None and not synthetic_docs:  # the hub copy: its pages need OCR
            if not ocr_engine:
                raise DataError(
                    f"{self.missing_root_message()} Its hub copy has no OCR words, so it needs "
                    f"`--data.init_args.ocr_engine` (e.g. rapidocr), not None."
                )
            engine = engine_from_spec(ocr_engine)
            self.ocr = CachedEngine(engine, OcrCache(ocr_cache_dir)) if ocr_cache_dir else engine
            self.open_hub()
        self.encoder()  # checks max_question_tokens against max_length and stride now, not at setup

    @property
    def label_names(self) -> list[str]:
        return []  # no tags: the model predicts answer spans (ExtractiveQA accepts the link and ignores it)

    def ocr_words(self, image: Any) -> tuple[list[str], list[tuple[int, int, int, int]]]:
        result = self.ocr(image)  # type: ignore[misc]
        return result.words, result.boxes

    def resolve_root(self, root: Optional[str]) -> Any:
        return None if self.hparams.get("synthetic_docs") else super().resolve_root(root)

    def make_reader(self) -> Reader:
        hp = self.hparams
        if hp.synthetic_docs:
            return SyntheticReader(hp.synthetic_docs, hp.synthetic_seed, repairs=self.repairs, max_pixels=hp.max_pixels)
        if self.root is None:
            return docvqa_reader.DocVQAHubReader(
                hp.hub_id, ocr=self.ocr_words, config=hp.hub_config, repairs=self.repairs, max_pixels=hp.max_pixels
            )
        return docvqa_reader.DocVQAReader(self.root, repairs=self.repairs, max_pixels=hp.max_pixels)

    def reader_settings(self) -> dict[str, Any]:
        return {"max_pixels": self.hparams.max_pixels}

    def encoder(self) -> QAEncoder:
        hp = self.hparams
        return QAEncoder(
            self.tokenizer,
            max_length=hp.max_length,
            stride=hp.stride,
            image_size=hp.image_size,
            repairs=self.repairs,
            max_question_tokens=hp.max_question_tokens,
            skip_unlocated=self._encoding == "train",
            stats=self.reader.stats,
        )

    def split_keys(self, split: str) -> list[Any]:
        """The pages of ``split`` (``predict``: the release's test split); listed once per split, so problems in
        the questions file are reported once."""
        folder = "test" if split == "predict" else split
        if self.hparams.synthetic_docs:
            return self.reader.files(folder)  # every split has answers
        if folder not in self._split_keys:
            self._split_keys[folder] = self.reader.files(folder)
        pages = self._split_keys[folder]
        if split == "test" and not any(answers for page in pages for _, answers in page.questions):
            source = (
                self.reader.questions_file("test")
                if self.root is not None
                else f"{self.hparams.hub_id}[{self.reader.hub_splits['test']}]"
            )
            raise DataError(
                f"{source}: field 'answers': none of the {len(pages)} "
                f"pages' questions has an answer (the release's test split is scored by the DocVQA "
                f"evaluation server), so the test stage cannot compute ANLS on it. Use "
                f"`--data.init_args.test_split val` to test on the validation split, or `docalign "
                f"predict` for the test split's answers."
            )
        return pages

    def cache_parts(self, split: str, keys: list[Any]) -> dict[str, Any]:
        parts = super().cache_parts(split, keys)
        parts["encoder"].update(max_question_tokens=self.hparams.max_question_tokens, skip_unlocated=split == "train")
        parts["qa_code"] = code_fingerprint([qa_encoding])
        return parts

    def encode_split(self, split: str) -> list[EncodedWindow]:
        if split == "test" and self.hparams.test_split == "val" and not self.hparams.synthetic_docs:
            log.warning(
                "%s: the release's test split has no answers, so the test stage scores the validation split "
                "(test_split: val)",
                self.dataset,
            )
            return self.windows["val"] if "val" in self.windows else self.encode_split("val")
        self._encoding = split
        try:
            return super().encode_split(split)
        finally:
            self._encoding = None

    def setup(self, stage: Optional[str] = None) -> None:
        if self.hparams.test_split == "test" and stage in (None, "fit", "test"):
            self.split_keys("test")  # refuse a test split without answers before any training
        if stage == "predict":
            if "predict" not in self.windows:
                self.windows["predict"] = self.encode_split("predict")
            return
        super().setup(stage)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("predict", self.hparams.eval_batch_size or self.hparams.batch_size, shuffle=False)
