"""DataModules of the benchmarks read from their release folders: FUNSD, CORD, SROIE (entity labelling),
RVL-CDIP, Tobacco-3482 (document classification; see ``ClassificationDataModule`` for their OCR and splits) and
DocVQA (document question answering; see ``DocVQA`` for its samples and its test split).

Each one reads with its ``docalign.data.readers`` reader, shares one ``RepairLog`` between reader and
encoder (``strict`` applies to both), and caches encoded splits on disk (``docalign.data.cache``) under
``cache_dir`` (default ``data/cache``, relative to the working directory, i.e. the repository's git-ignored
``data/`` when run through ``make``; ``null`` disables the cache). ``cache_events`` records what happened
per split: ``hit``, ``miss``, ``corrupt`` (recomputed) or ``off``.

Release folders are never hard-coded: ``root`` is a constructor argument, or else the environment variable
``DOCALIGN_FUNSD`` / ``DOCALIGN_CORD`` / ``DOCALIGN_SROIE`` / ``DOCALIGN_DOCVQA`` (and ``DOCALIGN_RVLCDIP``,
``DOCALIGN_TOBACCO3482``). Without either, they read their hub copy ``hub_id`` (``naver-clova-ix/cord-v2``,
``nielsr/funsd-layoutlmv3``, ``darentang/sroie``, ``aharley/rvl_cdip``, ``lmms-lab/DocVQA``,
``maveriq/tobacco3482``; see ``readers.hub``), checked at construction: offline with it not cached they stop with
the missing-folder error (CORD: the hub error).

Validation splits: CORD has its own (``dev``, 100 receipts). FUNSD and SROIE only have train and test, so a
deterministic validation split of ``val_size`` documents is carved from train: the train files ranked by
the SHA-256 of their file stem, first ``val_size`` taken (independent of listing order and of the rest
of the data). ``val_size: 0`` uses the test split as validation instead (then model selection sees the
test set; the run says so in its log).
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
from pathlib import Path
from typing import Any, ClassVar, Iterable, Optional

from torch.utils.data import DataLoader

from ..ocr import CachedEngine, OcrCache, engine_from_spec
from . import document, encoding, images, qa_encoding
from .cache import WindowCache, cache_key, code_fingerprint, file_signature, tokenizer_fingerprint
from .datamodule import DocumentDataModule
from .document import Document
from .encoding import DocumentEncoder, EncodedWindow
from .images import DEFAULT_MAX_PIXELS
from .qa_encoding import QAEncoder, QAWindow, collate_qa
from .readers import base as reader_base
from .readers import classification as classification_reader
from .readers import cord as cord_reader
from .readers import docvqa as docvqa_reader
from .readers import funsd as funsd_reader
from .readers import sroie as sroie_reader
from .readers.base import Reader
from .repairs import DataError

log = logging.getLogger("docalign.data")

DEFAULT_CACHE_DIR = "data/cache"
DEFAULT_OCR_CACHE_DIR = "data/cache/ocr"


def carve_validation(keys: list[Any], val_size: int, name: Any = lambda k: Path(k).stem) -> tuple[list[Any], list[Any]]:
    """Split ``keys`` into (train, val): the ``val_size`` keys whose ``name`` has the smallest SHA-256 go to val.

    Both parts keep the order of ``keys``.
    """
    if not 0 <= val_size < len(keys):
        raise ValueError(f"val_size={val_size} must be in [0, {len(keys)}) for a train split of {len(keys)} documents")
    ranked = sorted(range(len(keys)), key=lambda i: hashlib.sha256(str(name(keys[i])).encode()).hexdigest())
    chosen = set(ranked[:val_size])
    return ([k for i, k in enumerate(keys) if i not in chosen], [k for i, k in enumerate(keys) if i in chosen])


class ReleaseDataModule(DocumentDataModule):
    """Base of the DataModules that read a release folder: root resolution, splits, the encoded-split cache.

    Subclasses set ``dataset`` (cache entry names, messages) and ``env_var``, and implement ``make_reader``
    and ``split_keys``. Arguments: see the subclasses and ``DocumentDataModule``.
    """

    dataset: ClassVar[str] = ""
    env_var: ClassVar[str] = ""
    layout: ClassVar[str] = ""
    hub_readable: ClassVar[bool] = False  # without a folder, read the hub copy (``open_hub``)

    def __init__(self, root: Optional[str], cache_dir: Optional[str], max_pixels: Optional[int],
                 **base: Any) -> None:
        super().__init__(**base)
        self.root = self.resolve_root(root)
        self.cache = WindowCache(cache_dir) if cache_dir else None
        self.cache_events: dict[str, str] = {}
        self._reader: Optional[Reader] = None

    # --- where the data is ------------------------------------------------------------------------
    def resolve_root(self, root: Optional[str]) -> Optional[Path]:
        """``root``, else ``$<env_var>``; a DataError when neither names an existing folder."""
        value = root or os.environ.get(self.env_var) or None
        if value is None:
            return self.missing_root()
        path = Path(value).expanduser()
        if not path.is_dir():
            source = "data.init_args.root" if root else f"${self.env_var}"
            raise DataError(f"{self.dataset}: the release folder {path} (from {source}) does not exist. {self.layout}")
        return path

    def missing_root(self) -> Optional[Path]:
        if self.hub_readable:
            return None  # the hub copy, opened by ``open_hub``
        raise DataError(self.missing_root_message())

    def missing_root_message(self) -> str:
        return (f"{self.dataset} needs its release folder: pass `--data.init_args.root /path/to/{self.dataset}` "
                f"or set the environment variable {self.env_var}. {self.layout}")

    def open_hub(self) -> None:
        """Without a folder, open the hub copy now, so that a run that cannot have it stops before any model is
        built: the missing-folder ``DataError``, followed by why the hub copy cannot be read."""
        if self.root is not None or not self.hub_readable:
            return
        try:
            self._reader = self.make_reader()
        except DataError as err:
            raise DataError(f"{self.missing_root_message()} Its hub copy cannot be read instead: {err}") from err

    @property
    def reader(self) -> Reader:
        if self._reader is None:
            self._reader = self.make_reader()
        return self._reader

    # --- subclasses -------------------------------------------------------------------------------
    def make_reader(self) -> Reader:
        raise NotImplementedError

    def split_keys(self, split: str) -> list[Any]:
        """The reader's sample keys of ``split`` (after any validation carve), in a fixed order."""
        raise NotImplementedError

    def reader_settings(self) -> dict[str, Any]:
        """Reader-side settings that change the documents (part of the cache key)."""
        hp = self.hparams
        return {name: hp.get(name) for name in ("segment_boxes", "val_size", "max_pixels")}

    # --- documents and windows --------------------------------------------------------------------
    def load_split(self, split: str) -> Iterable[Document]:
        return self.reader.read_files(self.split_keys(split))

    def cache_parts(self, split: str, keys: list[Any]) -> dict[str, Any]:
        """Everything the encoded windows of ``split`` depend on (hashed by ``cache.cache_key``)."""
        hp = self.hparams
        reader_module = sys.modules[type(self.reader).__module__]
        files = [p for key in keys for p in self.reader.dependencies(key)]
        return {
            "datamodule": f"{type(self).__module__}.{type(self).__qualname__}", "split": split,
            "reader": self.reader_settings(), "files": file_signature(files),
            "encoder": {"max_length": hp.max_length, "stride": hp.stride, "image_size": hp.image_size,
                        "label_names": self.label_names},
            "tokenizer": tokenizer_fingerprint(self.tokenizer), "max_docs": hp.max_docs, "strict": hp.strict,
            "code": code_fingerprint([document, encoding, images, reader_base, reader_module]),
        }

    def encode_split(self, split: str) -> list[EncodedWindow]:
        if self.cache is None or self.root is None:
            self.cache_events[split] = "off"
            stats_before = self.reader.stats.copy()
            windows = super().encode_split(split)
            self.log_stats(split, self.reader.stats - stats_before)
            return windows
        key = cache_key(self.cache_parts(split, self.split_keys(split)))
        name = f"{self.dataset.lower()}-{split}"
        status, entry = self.cache.load(name, key)
        self.cache_events[split] = status
        if entry is not None:
            cached = type(self.repairs)()
            cached.counts.update(entry["repair_counts"])
            cached.examples.update(entry["repair_examples"])
            self.repairs.merge(cached)
            self.repairs.warn(f"{type(self).__name__} {split} (from the cache)")
            self.log_stats(split, entry["stats"], f" (from the cache {self.cache.path(name, key)})")
            return entry["windows"]
        counts_before, stats_before = self.repairs.counts.copy(), self.reader.stats.copy()
        examples_before = {k: len(v) for k, v in self.repairs.examples.items()}
        windows = super().encode_split(split)
        counts, stats = self.repairs.counts - counts_before, self.reader.stats - stats_before
        examples = {k: v[examples_before.get(k, 0):] for k, v in self.repairs.examples.items() if k in counts}
        self.cache.save(name, key, windows, counts, examples, stats)
        self.log_stats(split, stats)
        return windows

    def log_stats(self, split: str, stats: dict[str, int], suffix: str = "") -> None:
        """One line of the reader's counts for ``split``; a warning when something was skipped or not matched."""
        if not stats:
            return
        noteworthy = any(word in key for key in stats for word in ("skipped", "not matched", "not found", "without"))
        log.log(logging.WARNING if noteworthy else logging.INFO, "%s %s: %s%s", self.dataset, split,
                ", ".join(f"{k}: {v}" for k, v in sorted(stats.items())), suffix)


class FUNSD(ReleaseDataModule):
    """FUNSD forms (149 train / 50 test), 7 BIO tags; ``other`` entities are ``O`` (see ``readers.funsd``).

    Splits: ``val`` is carved from train: ``val_size`` (default 15) forms chosen by hash of their file stem,
    so train has 134 forms, val 15, test 50. ``val_size: 0`` validates on the test set instead.

    Source: the release folder, else the hub copy ``hub_id`` (``readers.funsd.FUNSDHubReader``; validation carved
    by hash of the row's ``id``, so not the same 15 forms as the folder's; no encoded-split cache).

    Args:
        root: the release folder (``training_data/``, ``testing_data/``); default ``$DOCALIGN_FUNSD``, else the hub.
        hub_id: the hub copy (or a local parquet folder) read when there is no folder.
        val_size: forms carved from train for validation (0: use test).
        segment_boxes: every word gets its entity's box (LayoutLMv3's segment-level layout).
        cache_dir: folder of the encoded-split cache (None: no cache).
        max_pixels: pixel limit of the image loader.
        **others: see ``DocumentDataModule``.
    """

    dataset = "FUNSD"
    env_var = "DOCALIGN_FUNSD"
    layout = "Expected the FUNSD release layout: training_data/ and testing_data/, each with images/ and annotations/."
    hub_readable = True

    def __init__(self, root: Optional[str] = None, val_size: int = 15, segment_boxes: bool = False,
                 hub_id: str = funsd_reader.FUNSD_HUB_ID,
                 cache_dir: Optional[str] = DEFAULT_CACHE_DIR, max_pixels: Optional[int] = DEFAULT_MAX_PIXELS,
                 tokenizer: str = "minilm", max_length: int = 512, stride: int = 128, image_size: int = 224,
                 batch_size: int = 8, eval_batch_size: Optional[int] = None, num_workers: int = 0,
                 pin_memory: bool = False, strict: bool = False, max_docs: Optional[int] = None) -> None:
        super().__init__(root, cache_dir, max_pixels, tokenizer=tokenizer, max_length=max_length, stride=stride,
                         image_size=image_size, batch_size=batch_size, eval_batch_size=eval_batch_size,
                         num_workers=num_workers, pin_memory=pin_memory, strict=strict, max_docs=max_docs)
        self.open_hub()

    @property
    def label_names(self) -> list[str]:
        return list(funsd_reader.FUNSD_LABELS)

    def make_reader(self) -> Reader:
        hp = self.hparams
        if self.root is None:
            return funsd_reader.FUNSDHubReader(hp.hub_id, segment_boxes=hp.segment_boxes, repairs=self.repairs,
                                               max_pixels=hp.max_pixels)
        return funsd_reader.FUNSDReader(self.root, segment_boxes=hp.segment_boxes, repairs=self.repairs,
                                        max_pixels=hp.max_pixels)

    def split_keys(self, split: str) -> list[Path]:
        return _carved(self.reader, split, self.hparams.val_size, self.dataset)


class SROIE(ReleaseDataModule):
    """SROIE task 3 receipts (626 train / 347 test), 9 BIO tags over company/date/address/total.

    Splits: ``val`` is carved from train: ``val_size`` (default 63, about 10%) receipts chosen by hash of
    their file stem (563 train, 63 val, 347 test). ``val_size: 0`` validates on the test set instead.

    Source: the folder, else the hub copy ``hub_id`` (``readers.sroie.SROIEHubReader``: words already tagged, no
    images; validation carved by hash of the row's ``id``; no encoded-split cache).

    Args:
        root: the folder holding ``train/`` and ``test/`` (see ``readers.sroie``); default ``$DOCALIGN_SROIE``, else
            the hub.
        hub_id: the hub copy (or a local parquet folder) read when there is no folder.
        val_size, segment_boxes, cache_dir, max_pixels: as for ``FUNSD`` (segment: the OCR line's box; on the hub
            copy, the entity's box).
        **others: see ``DocumentDataModule``.
    """

    dataset = "SROIE"
    env_var = "DOCALIGN_SROIE"
    layout = "Expected train/ and test/, each with img/, box/ and entities/ (or flat <id>.jpg, <id>.txt, <id>.json)."
    hub_readable = True

    def __init__(self, root: Optional[str] = None, val_size: int = 63, segment_boxes: bool = False,
                 hub_id: str = sroie_reader.SROIE_HUB_ID,
                 cache_dir: Optional[str] = DEFAULT_CACHE_DIR, max_pixels: Optional[int] = DEFAULT_MAX_PIXELS,
                 tokenizer: str = "minilm", max_length: int = 512, stride: int = 128, image_size: int = 224,
                 batch_size: int = 8, eval_batch_size: Optional[int] = None, num_workers: int = 0,
                 pin_memory: bool = False, strict: bool = False, max_docs: Optional[int] = None) -> None:
        super().__init__(root, cache_dir, max_pixels, tokenizer=tokenizer, max_length=max_length, stride=stride,
                         image_size=image_size, batch_size=batch_size, eval_batch_size=eval_batch_size,
                         num_workers=num_workers, pin_memory=pin_memory, strict=strict, max_docs=max_docs)
        self.open_hub()

    @property
    def label_names(self) -> list[str]:
        return list(sroie_reader.SROIE_LABELS)

    def make_reader(self) -> Reader:
        hp = self.hparams
        if self.root is None:
            return sroie_reader.SROIEHubReader(hp.hub_id, segment_boxes=hp.segment_boxes, repairs=self.repairs,
                                               max_pixels=hp.max_pixels)
        return sroie_reader.SROIEReader(self.root, segment_boxes=hp.segment_boxes, repairs=self.repairs,
                                        max_pixels=hp.max_pixels)

    def split_keys(self, split: str) -> list[Path]:
        return _carved(self.reader, split, self.hparams.val_size, self.dataset)


class CORD(ReleaseDataModule):
    """CORD v2 receipts (800 train / 100 dev / 100 test), 61 BIO tags from ``labels.CORD_CATEGORIES``.

    Source: the raw release folder ``root`` (``train/``, ``dev/``, ``test/`` with ``json/`` and ``image/``;
    ``dev`` is the validation split), default ``$DOCALIGN_CORD``; with neither, the hub copy ``hub_id``
    through ``datasets`` (splits train/validation/test). Offline with the hub copy not cached, construction
    fails at once with a ``DataError`` saying so. The encoded-split cache is used for the folder only (the
    hub copy is cached by ``datasets`` itself).

    Args:
        root: the raw release folder (None: ``$DOCALIGN_CORD``, else the hub).
        hub_id: the hub dataset used when there is no folder.
        segment_boxes: every word gets its line's box.
        cache_dir, max_pixels: as for ``FUNSD``.
        **others: see ``DocumentDataModule``.
    """

    dataset = "CORD"
    env_var = "DOCALIGN_CORD"
    layout = "Expected the CORD release layout: train/, dev/ and test/, each with json/ and image/."

    def __init__(self, root: Optional[str] = None, hub_id: str = cord_reader.CORD_HUB_ID, segment_boxes: bool = False,
                 cache_dir: Optional[str] = DEFAULT_CACHE_DIR, max_pixels: Optional[int] = DEFAULT_MAX_PIXELS,
                 tokenizer: str = "minilm", max_length: int = 512, stride: int = 128, image_size: int = 224,
                 batch_size: int = 8, eval_batch_size: Optional[int] = None, num_workers: int = 0,
                 pin_memory: bool = False, strict: bool = False, max_docs: Optional[int] = None) -> None:
        super().__init__(root, cache_dir, max_pixels, tokenizer=tokenizer, max_length=max_length, stride=stride,
                         image_size=image_size, batch_size=batch_size, eval_batch_size=eval_batch_size,
                         num_workers=num_workers, pin_memory=pin_memory, strict=strict, max_docs=max_docs)
        if self.root is None:
            self._reader = self.make_reader()  # checks the hub now: fail before any model is built

    def missing_root(self) -> Optional[Path]:
        return None  # the hub copy

    @property
    def label_names(self) -> list[str]:
        return list(cord_reader.CORD_LABELS)

    def make_reader(self) -> Reader:
        hp = self.hparams
        if self.root is None:
            return cord_reader.CORDHubReader(hp.hub_id, segment_boxes=hp.segment_boxes, repairs=self.repairs,
                                             max_pixels=hp.max_pixels)
        return cord_reader.CORDReader(self.root, segment_boxes=hp.segment_boxes, repairs=self.repairs,
                                      max_pixels=hp.max_pixels)

    def reader_settings(self) -> dict[str, Any]:
        return {"segment_boxes": self.hparams.segment_boxes, "max_pixels": self.hparams.max_pixels}

    def split_keys(self, split: str) -> list[Path]:
        return self.reader.files(split)

    def load_split(self, split: str) -> Iterable[Document]:
        if self.root is None:
            return self.reader.read(split)
        return super().load_split(split)


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

    Args:
        root: the folder holding ``train/``, ``val/`` and ``test/``; default ``$DOCALIGN_DOCVQA``, else the hub.
        hub_id: the hub copy (or a local parquet folder) read when there is no folder.
        hub_config: its configuration (``DocVQA`` for ``lmms-lab/DocVQA``; None: the default one).
        ocr_engine, ocr_cache_dir: the OCR of the hub copy's pages (as for ``RVLCDIP``; unused with a folder).
        test_split: ``val`` (default) or ``test``: what the ``test`` stage scores (see above).
        max_question_tokens: the longest question kept, in sub-tokens (longer ones are cut and counted);
            ``max_length - 3 - max_question_tokens`` must exceed ``stride``.
        cache_dir, max_pixels: as for ``FUNSD``.
        **others: see ``DocumentDataModule`` (``max_docs`` counts pages, not questions).
    """

    dataset = "DocVQA"
    env_var = "DOCALIGN_DOCVQA"
    layout = ("Expected the DocVQA release layout: train/, val/ and test/, each with <split>_v1.0.json, documents/ "
              "and ocr_results/.")
    collate = staticmethod(collate_qa)
    hub_readable = True

    def __init__(self, root: Optional[str] = None, test_split: str = "val", max_question_tokens: int = 64,
                 hub_id: str = docvqa_reader.DOCVQA_HUB_ID, hub_config: Optional[str] = docvqa_reader.DOCVQA_HUB_CONFIG,
                 ocr_engine: Optional[str] = "rapidocr", ocr_cache_dir: Optional[str] = DEFAULT_OCR_CACHE_DIR,
                 cache_dir: Optional[str] = DEFAULT_CACHE_DIR, max_pixels: Optional[int] = DEFAULT_MAX_PIXELS,
                 tokenizer: str = "minilm", max_length: int = 512, stride: int = 128, image_size: int = 224,
                 batch_size: int = 8, eval_batch_size: Optional[int] = None, num_workers: int = 0,
                 pin_memory: bool = False, strict: bool = False, max_docs: Optional[int] = None) -> None:
        if test_split not in ("val", "test"):
            raise ValueError(f"DocVQA: test_split must be 'val' or 'test', got {test_split!r}")
        super().__init__(root, cache_dir, max_pixels, tokenizer=tokenizer, max_length=max_length, stride=stride,
                         image_size=image_size, batch_size=batch_size, eval_batch_size=eval_batch_size,
                         num_workers=num_workers, pin_memory=pin_memory, strict=strict, max_docs=max_docs)
        if self.cache is not None:
            self.cache = WindowCache(cache_dir, QAWindow)
        self._encoding: Optional[str] = None  # the split being encoded (training skips unlocated answers)
        self._split_keys: dict[str, list[Any]] = {}
        self.ocr: Optional[CachedEngine] = None
        if self.root is None:  # the hub copy: its pages need OCR
            if not ocr_engine:
                raise DataError(f"{self.missing_root_message()} Its hub copy has no OCR words, so it needs "
                                f"`--data.init_args.ocr_engine` (e.g. rapidocr), not None.")
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

    def make_reader(self) -> Reader:
        hp = self.hparams
        if self.root is None:
            return docvqa_reader.DocVQAHubReader(hp.hub_id, ocr=self.ocr_words, config=hp.hub_config,
                                                 repairs=self.repairs, max_pixels=hp.max_pixels)
        return docvqa_reader.DocVQAReader(self.root, repairs=self.repairs, max_pixels=hp.max_pixels)

    def reader_settings(self) -> dict[str, Any]:
        return {"max_pixels": self.hparams.max_pixels}

    def encoder(self) -> QAEncoder:
        hp = self.hparams
        return QAEncoder(self.tokenizer, max_length=hp.max_length, stride=hp.stride, image_size=hp.image_size,
                         repairs=self.repairs, max_question_tokens=hp.max_question_tokens,
                         skip_unlocated=self._encoding == "train", stats=self.reader.stats)

    def split_keys(self, split: str) -> list[Any]:
        """The pages of ``split`` (``predict``: the release's test split); listed once per split, so problems in
        the questions file are reported once."""
        folder = "test" if split == "predict" else split
        if folder not in self._split_keys:
            self._split_keys[folder] = self.reader.files(folder)
        pages = self._split_keys[folder]
        if split == "test" and not any(answers for page in pages for _, answers in page.questions):
            source = self.reader.questions_file("test") if self.root is not None else \
                f"{self.hparams.hub_id}[{self.reader.hub_splits['test']}]"
            raise DataError(f"{source}: field 'answers': none of the {len(pages)} "
                            f"pages' questions has an answer (the release's test split is scored by the DocVQA "
                            f"evaluation server), so the test stage cannot compute ANLS on it. Use "
                            f"`--data.init_args.test_split val` to test on the validation split, or `docalign "
                            f"predict` for the test split's answers.")
        return pages

    def cache_parts(self, split: str, keys: list[Any]) -> dict[str, Any]:
        parts = super().cache_parts(split, keys)
        parts["encoder"].update(max_question_tokens=self.hparams.max_question_tokens, skip_unlocated=split == "train")
        parts["qa_code"] = code_fingerprint([qa_encoding])
        return parts

    def encode_split(self, split: str) -> list[EncodedWindow]:
        if split == "test" and self.hparams.test_split == "val":
            log.warning("%s: the release's test split has no answers, so the test stage scores the validation split "
                        "(test_split: val)", self.dataset)
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


def _carved(reader: Reader, split: str, val_size: int, dataset: str) -> list[Any]:
    """Keys of ``split`` for a release with train and test only (validation carved from train)."""
    if split == "test" or (split == "val" and val_size == 0):
        if split == "val":
            log.warning("%s: val_size is 0, so the test split doubles as the validation split", dataset)
        return reader.files("test")
    name = getattr(reader, "key_name", None) or (lambda k: Path(k).stem)  # hub rows: their document id
    train, val = carve_validation(reader.files("train"), val_size, name)
    return train if split == "train" else val



class ClassificationDataModule(ReleaseDataModule):
    """Base of the document-classification DataModules: OCR through the on-disk OCR cache, class ids per window.

    The releases ship images only, so the words and boxes come from OCR: ``ocr_engine`` (a
    ``docalign.ocr.engine_from_spec`` spec, ``rapidocr`` by default, e.g. ``tesseract:psm=6``; None: no OCR,
    image-only documents) wrapped in ``docalign.ocr.CachedEngine`` over ``ocr_cache_dir``, keyed by the
    image's pixels and the engine's settings, so a second run (or a changed encoder setting that misses the
    encoded-split cache) pays no OCR. The encoded splits are cached like FUNSD's; the engine and its
    settings are part of that cache's key.

    Labels: ``label_names`` are the classes; the encoder maps each document's ``doc_label`` to its index
    (``DocumentEncoder(doc_label_names=...)``) and copies it to every window (``batch["doc_label"]``).
    """

    classes: ClassVar[tuple[str, ...]] = ()

    def __init__(self, root: Optional[str], ocr_engine: Optional[str], ocr_cache_dir: Optional[str],
                 cache_dir: Optional[str], max_pixels: Optional[int], **base: Any) -> None:
        super().__init__(root, cache_dir, max_pixels, **base)
        engine = engine_from_spec(ocr_engine) if ocr_engine else None
        self.ocr_cache = OcrCache(ocr_cache_dir) if engine is not None and ocr_cache_dir else None
        self.ocr = CachedEngine(engine, self.ocr_cache) if self.ocr_cache is not None else engine
        self._split_keys: dict[str, list[Any]] = {}

    @property
    def label_names(self) -> list[str]:
        return list(self.classes)

    def ocr_words(self, image: Any) -> tuple[list[str], list[tuple[int, int, int, int]]]:
        """The reader's OCR callable: ``image -> (words, pixel boxes)``."""
        result = self.ocr(image)
        return result.words, result.boxes

    def reader_kwargs(self) -> dict[str, Any]:
        return {"ocr": self.ocr_words if self.ocr is not None else None, "repairs": self.repairs,
                "max_pixels": self.hparams.max_pixels}

    def reader_settings(self) -> dict[str, Any]:
        hp = self.hparams
        return {"ocr_engine": hp.ocr_engine, "ocr_settings": self.ocr.settings() if self.ocr is not None else None,
                "max_pixels": hp.max_pixels}

    def encoder(self) -> DocumentEncoder:
        hp = self.hparams
        # No word tags here (label_names is empty for words); the classes map the documents' doc_label.
        return DocumentEncoder(self.tokenizer, [], max_length=hp.max_length, stride=hp.stride,
                               image_size=hp.image_size, repairs=self.repairs, doc_label_names=self.label_names)

    def split_keys(self, split: str) -> list[Any]:
        # Listed once per split: the label file's problems are reported once, not per call.
        if split not in self._split_keys:
            self._split_keys[split] = self.list_split(split)
        return self._split_keys[split]

    def list_split(self, split: str) -> list[Any]:
        raise NotImplementedError


class RVLCDIP(ClassificationDataModule):
    """RVL-CDIP (320,000 train / 40,000 val / 40,000 test scans), 16 classes (``RVL_CDIP_CLASSES``).

    Splits are the release's label-list files ``labels/{train,val,test}.txt`` (``<image path> <class index>``
    per line, images under ``images/``). A malformed line or a class index outside 0-15 is skipped and
    counted (``strict: true``: raised, naming the file and line). Without a folder, the hub copy ``hub_id``
    (``readers.classification.RVLCDIPHubReader``; splits train/validation/test; same OCR path; no encoded-split
    cache, the OCR cache still applies).

    Args:
        root: the release folder; default ``$DOCALIGN_RVLCDIP``, else the hub.
        hub_id: the hub copy (or a local parquet folder) read when there is no folder.
        ocr_engine: OCR engine spec (``rapidocr``, ``tesseract``, ``easyocr``, with ``:key=value`` settings), or
            None for image-only documents.
        ocr_cache_dir: folder of the OCR cache (None: no OCR cache).
        cache_dir: folder of the encoded-split cache (None: no cache).
        max_pixels: pixel limit of the image loader.
        **others: see ``DocumentDataModule``.
    """

    dataset = "RVL-CDIP"
    env_var = "DOCALIGN_RVLCDIP"
    layout = ("Expected the RVL-CDIP release layout: labels/train.txt, labels/val.txt, labels/test.txt "
              "('<image path> <class index 0-15>' per line) and images/.")
    classes = classification_reader.RVL_CDIP_CLASSES
    hub_readable = True

    def __init__(self, root: Optional[str] = None, hub_id: str = classification_reader.RVL_CDIP_HUB_ID,
                 ocr_engine: Optional[str] = "rapidocr",
                 ocr_cache_dir: Optional[str] = DEFAULT_OCR_CACHE_DIR, cache_dir: Optional[str] = DEFAULT_CACHE_DIR,
                 max_pixels: Optional[int] = DEFAULT_MAX_PIXELS, tokenizer: str = "minilm", max_length: int = 512,
                 stride: int = 128, image_size: int = 224, batch_size: int = 8, eval_batch_size: Optional[int] = None,
                 num_workers: int = 0, pin_memory: bool = False, strict: bool = False,
                 max_docs: Optional[int] = None) -> None:
        super().__init__(root, ocr_engine, ocr_cache_dir, cache_dir, max_pixels, tokenizer=tokenizer,
                         max_length=max_length, stride=stride, image_size=image_size, batch_size=batch_size,
                         eval_batch_size=eval_batch_size, num_workers=num_workers, pin_memory=pin_memory,
                         strict=strict, max_docs=max_docs)
        self.open_hub()  # after the OCR engine exists: the reader takes it

    def make_reader(self) -> Reader:
        if self.root is None:
            return classification_reader.RVLCDIPHubReader(self.hparams.hub_id, **self.reader_kwargs())
        return classification_reader.RVLCDIPReader(self.root, **self.reader_kwargs())

    def list_split(self, split: str) -> list[Any]:
        return self.reader.files(split)


class Tobacco3482(ClassificationDataModule):
    """Tobacco-3482 (3,482 scans in 10 class folders, ``TOBACCO3482_CLASSES``); no official split.

    Splits, carved deterministically per class (stratified): within each class folder the files are ranked
    by the SHA-256 of ``<class>/<file stem>``; the first ``train_per_class`` go to train, the next
    ``val_per_class`` to val, the rest to test (each split keeps the reader's order: class, then file name).
    The defaults, 80 + 20, are the usual protocol of 100 training documents per class (Kumar et al., 2014),
    with a fifth of them held out for model selection: on the full release 800 train / 200 val / 2,482 test
    (every class has more than 100 documents). ``val_per_class: 0`` validates on the test split instead.

    Source: the folder, else the hub copy ``hub_id`` (``readers.classification.Tobacco3482HubReader``; the same
    per-class carve, files named ``<class>/<hub split>-<row>`` so the subsets differ from the folder's; no
    encoded-split cache, the OCR cache still applies).

    Args:
        root: the folder of class folders; default ``$DOCALIGN_TOBACCO3482``, else the hub.
        hub_id: the hub copy (or a local parquet folder) read when there is no folder.
        train_per_class, val_per_class: documents per class in train and val.
        ocr_engine, ocr_cache_dir, cache_dir, max_pixels: as for ``RVLCDIP``.
        **others: see ``DocumentDataModule``.
    """

    dataset = "Tobacco3482"
    env_var = "DOCALIGN_TOBACCO3482"
    layout = "Expected one folder per class (ADVE, Email, Form, ...) holding the page images."
    classes = classification_reader.TOBACCO3482_CLASSES
    hub_readable = True

    def __init__(self, root: Optional[str] = None, train_per_class: int = 80, val_per_class: int = 20,
                 hub_id: str = classification_reader.TOBACCO3482_HUB_ID,
                 ocr_engine: Optional[str] = "rapidocr", ocr_cache_dir: Optional[str] = DEFAULT_OCR_CACHE_DIR,
                 cache_dir: Optional[str] = DEFAULT_CACHE_DIR, max_pixels: Optional[int] = DEFAULT_MAX_PIXELS,
                 tokenizer: str = "minilm", max_length: int = 512, stride: int = 128, image_size: int = 224,
                 batch_size: int = 8, eval_batch_size: Optional[int] = None, num_workers: int = 0,
                 pin_memory: bool = False, strict: bool = False, max_docs: Optional[int] = None) -> None:
        if train_per_class < 1 or val_per_class < 0:
            raise ValueError(f"train_per_class must be >= 1 and val_per_class >= 0, got {train_per_class}, "
                             f"{val_per_class}")
        super().__init__(root, ocr_engine, ocr_cache_dir, cache_dir, max_pixels, tokenizer=tokenizer,
                         max_length=max_length, stride=stride, image_size=image_size, batch_size=batch_size,
                         eval_batch_size=eval_batch_size, num_workers=num_workers, pin_memory=pin_memory,
                         strict=strict, max_docs=max_docs)
        self.open_hub()  # after the OCR engine exists: the reader takes it

    def make_reader(self) -> Reader:
        if self.root is None:
            return classification_reader.Tobacco3482HubReader(self.hparams.hub_id, **self.reader_kwargs())
        return classification_reader.Tobacco3482Reader(self.root, **self.reader_kwargs())

    def reader_settings(self) -> dict[str, Any]:
        hp = self.hparams
        return {**super().reader_settings(), "train_per_class": hp.train_per_class, "val_per_class": hp.val_per_class}

    def list_split(self, split: str) -> list[Any]:
        hp = self.hparams
        if split == "val" and hp.val_per_class == 0:
            log.warning("%s: val_per_class is 0, so the test split doubles as the validation split", self.dataset)
            return self.split_keys("test")
        keys = self.split_keys("all") if split != "all" else self.reader.files("all")
        if split == "all":
            return keys
        label_of = getattr(self.reader, "key_label", lambda key: key[1])  # hub rows carry their label
        name_of = getattr(self.reader, "key_name", lambda key: Path(key[0]).stem)
        by_class: dict[str, list[int]] = {}
        for i, key in enumerate(keys):
            by_class.setdefault(label_of(key), []).append(i)
        bounds = {"train": (0, hp.train_per_class),
                  "val": (hp.train_per_class, hp.train_per_class + hp.val_per_class),
                  "test": (hp.train_per_class + hp.val_per_class, None)}
        if split not in bounds:
            raise ValueError(f"{self.dataset} has the splits train, val and test, not {split!r}")
        start, stop = bounds[split]
        chosen: set[int] = set()
        for label, indices in by_class.items():
            ranked = sorted(indices, key=lambda i: hashlib.sha256(f"{label}/{name_of(keys[i])}".encode()).hexdigest())
            if split == "test" and len(ranked) <= start:
                log.warning("%s: class %s has only %d documents, none left for test", self.dataset, label, len(ranked))
            chosen.update(ranked[start:stop])
        return [k for i, k in enumerate(keys) if i in chosen]
