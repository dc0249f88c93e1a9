"""Document-classification DataModules: RVL-CDIP and Tobacco-3482 (see ``ClassificationDataModule`` for their
OCR and labels)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, ClassVar, Optional

from ...ocr import CachedEngine, OcrCache, engine_from_spec
from ..encoding import DocumentEncoder
from ..readers import classification as classification_reader
from ..readers.base import Reader
from ..readers.synthetic import SyntheticReader, check_counts
from ..synthetic_docs import DIFFICULTIES, TOBACCO3482_KINDS
from .base import DEFAULT_OCR_CACHE_DIR, ReleaseDataModule, log


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

    Offline documents: ``synthetic_docs: {train: N, val: N, test: N}`` reads rendered pages
    (``docalign.data.synthetic_docs``, one kind drawn per class, ``synthetic_kinds``; balanced classes; stream
    ``synthetic_seed``) instead of the release, with their rendered words and boxes (no OCR, no folder, no hub);
    ``experiments/_offline_docs.yaml`` sets it. ``synthetic_difficulty: hard`` (``experiments/_offline_docs_hard.yaml``)
    draws pages whose class shows only in their words and layout together (``synthetic_docs.Difficulty``).

    Args:
        ocr_engine: OCR engine spec (``rapidocr``, ``tesseract``, ``easyocr``, with ``:key=value`` settings), or
            None for image-only documents.
        ocr_cache_dir: folder of the OCR cache (None: no OCR cache).
        synthetic_docs: documents per split of the synthetic stand-in (None: the release).
        synthetic_seed: its seed (splits use ``seed``, ``seed + 1``, ``seed + 2``).
        synthetic_difficulty: ``easy`` (each kind its own words and template) or ``hard`` (words shared within
            groups of kinds, templates shared between pairs, OCR-like noise); ``synthetic_docs.DIFFICULTIES``.
        **kwargs: see ``ReleaseDataModule`` and ``DocumentDataModule``.
    """

    classes: ClassVar[tuple[str, ...]] = ()
    synthetic_kinds: ClassVar[tuple[str, ...]] = ()  # the synthetic kind drawn for each class
    hub_readable = True

    def __init__(
        self,
        ocr_engine: Optional[str] = "rapidocr",
        ocr_cache_dir: Optional[str] = DEFAULT_OCR_CACHE_DIR,
        synthetic_docs: Optional[dict[str, int]] = None,
        synthetic_seed: int = 0,
        synthetic_difficulty: str = "easy",
        **kwargs: Any,
    ) -> None:
        if synthetic_difficulty not in DIFFICULTIES:
            raise ValueError(
                f"data.init_args.synthetic_difficulty must be one of {', '.join(DIFFICULTIES)}, "
                f"got {synthetic_difficulty!r}"
            )
        if synthetic_docs is not None:
            check_counts(synthetic_docs, "data.init_args.synthetic_docs")
            ocr_engine = None  # the rendered words are exact: no OCR
        super().__init__(**kwargs)
        engine = engine_from_spec(ocr_engine) if ocr_engine else None
        self.ocr_cache = OcrCache(ocr_cache_dir) if engine is not None and ocr_cache_dir else None
        self.ocr = CachedEngine(engine, self.ocr_cache) if self.ocr_cache is not None else engine
        self._split_keys: dict[str, list[Any]] = {}
        self.open_hub()  # after the OCR engine exists: the reader takes it

    @property
    def label_names(self) -> list[str]:
        return list(self.classes)

    def resolve_root(self, root: Optional[str]) -> Any:
        return None if self.hparams.get("synthetic_docs") else super().resolve_root(root)

    def make_reader(self) -> Reader:
        hp = self.hparams
        if hp.synthetic_docs:
            return SyntheticReader(
                hp.synthetic_docs,
                hp.synthetic_seed,
                self.classes,
                self.synthetic_kinds,
                difficulty=hp.synthetic_difficulty,
                repairs=self.repairs,
                max_pixels=hp.max_pixels,
            )
        return super().make_reader()

    def ocr_words(self, image: Any) -> tuple[list[str], list[tuple[int, int, int, int]]]:
        """The reader's OCR callable: ``image -> (words, pixel boxes)``."""
        result = self.ocr(image)
        return result.words, result.boxes

    def reader_kwargs(self) -> dict[str, Any]:
        return {**super().reader_kwargs(), "ocr": self.ocr_words if self.ocr is not None else None}

    def reader_settings(self) -> dict[str, Any]:
        hp = self.hparams
        return {
            "ocr_engine": hp.ocr_engine,
            "ocr_settings": self.ocr.settings() if self.ocr is not None else None,
            "max_pixels": hp.max_pixels,
        }

    def encoder(self) -> DocumentEncoder:
        hp = self.hparams
        # No word tags here (label_names is empty for words); the classes map the documents' doc_label.
        return DocumentEncoder(
            self.tokenizer,
            [],
            max_length=hp.max_length,
            stride=hp.stride,
            image_size=hp.image_size,
            repairs=self.repairs,
            doc_label_names=self.label_names,
        )

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

    The release folder: ``root``, default ``$DOCALIGN_RVLCDIP``, else the hub.

    Args:
        hub_id: the hub copy (or a local parquet folder) read when there is no folder.
        **kwargs: ``ocr_engine``, ``ocr_cache_dir`` (``ClassificationDataModule``), ``root``, ``cache_dir``,
            ``max_pixels`` (``ReleaseDataModule``) and the rest of ``DocumentDataModule``.
    """

    dataset = "RVL-CDIP"
    env_var = "DOCALIGN_RVLCDIP"
    layout = (
        "Expected the RVL-CDIP release layout: labels/train.txt, labels/val.txt, labels/test.txt "
        "('<image path> <class index 0-15>' per line) and images/."
    )
    classes = classification_reader.RVL_CDIP_CLASSES
    synthetic_kinds = classes  # the synthetic kinds are RVL-CDIP's classes
    folder_reader = classification_reader.RVLCDIPReader
    hub_reader = classification_reader.RVLCDIPHubReader

    def __init__(self, hub_id: str = classification_reader.RVL_CDIP_HUB_ID, **kwargs: Any) -> None:
        super().__init__(**kwargs)

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

    The folder of class folders: ``root``, default ``$DOCALIGN_TOBACCO3482``, else the hub.

    Args:
        train_per_class, val_per_class: documents per class in train and val.
        hub_id: the hub copy (or a local parquet folder) read when there is no folder.
        **kwargs: as for ``RVLCDIP``.
    """

    dataset = "Tobacco3482"
    env_var = "DOCALIGN_TOBACCO3482"
    layout = "Expected one folder per class (ADVE, Email, Form, ...) holding the page images."
    classes = classification_reader.TOBACCO3482_CLASSES
    synthetic_kinds = tuple(TOBACCO3482_KINDS[c] for c in classes)
    folder_reader = classification_reader.Tobacco3482Reader
    hub_reader = classification_reader.Tobacco3482HubReader

    def __init__(
        self,
        train_per_class: int = 80,
        val_per_class: int = 20,
        hub_id: str = classification_reader.TOBACCO3482_HUB_ID,
        **kwargs: Any,
    ) -> None:
        if train_per_class < 1 or val_per_class < 0:
            raise ValueError(
                f"train_per_class must be >= 1 and val_per_class >= 0, got {train_per_class}, {val_per_class}"
            )
        super().__init__(**kwargs)

    def reader_settings(self) -> dict[str, Any]:
        hp = self.hparams
        return {**super().reader_settings(), "train_per_class": hp.train_per_class, "val_per_class": hp.val_per_class}

    def list_split(self, split: str) -> list[Any]:
        hp = self.hparams
        if hp.synthetic_docs:
            return self.reader.files(split)  # its own splits, already balanced
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
        bounds = {
            "train": (0, hp.train_per_class),
            "val": (hp.train_per_class, hp.train_per_class + hp.val_per_class),
            "test": (hp.train_per_class + hp.val_per_class, None),
        }
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
