"""The bases of every DataModule: documents -> encoded windows -> padded batches.

``DocumentDataModule`` holds what every DataModule shares (tokenizer, windows, batch sizes, loaders; its
arguments are written once, here: the subclasses forward ``**kwargs`` to it). ``batch_size`` is the *global*
batch size: with N processes each loads ``batch_size / N`` windows, so changing the number of GPUs or nodes
does not change the optimisation.

``ReleaseDataModule`` is the base of the benchmarks read from their release folders (``entities``,
``classification``, ``qa``). Each one reads with its ``docalign.data.readers`` reader, shares one
``RepairLog`` between reader and encoder (``strict`` applies to both), and caches encoded splits on disk
(``docalign.data.cache``) under ``cache_dir`` (default ``data/cache``, relative to the working directory, i.e.
the repository's git-ignored ``data/`` when run through ``make``; ``null`` disables the cache).
``cache_events`` records what happened per split: ``hit``, ``miss``, ``corrupt`` (recomputed) or ``off``.

Release folders are never hard-coded: ``root`` is a constructor argument, or else the environment variable
``DOCALIGN_FUNSD`` / ``DOCALIGN_CORD`` / ``DOCALIGN_SROIE`` / ``DOCALIGN_DOCVQA`` (and ``DOCALIGN_RVLCDIP``,
``DOCALIGN_TOBACCO3482``). Without either, they read their hub copy ``hub_id`` (``naver-clova-ix/cord-v2``,
``nielsr/funsd-layoutlmv3``, ``darentang/sroie``, ``aharley/rvl_cdip``, ``lmms-lab/DocVQA``,
``maveriq/tobacco3482``; see ``readers.hub``), checked at construction: offline with it not cached they stop with
the missing-folder error (CORD: the hub error).

Validation splits: CORD has its own (``dev``, 100 receipts). FUNSD and SROIE only have train and test, so a
deterministic validation split of ``val_size`` documents is carved from train (``carve_validation``): the
train files ranked by the SHA-256 of their file stem, first ``val_size`` taken (independent of listing order
and of the rest of the data). ``val_size: 0`` uses the test split as validation instead (then model selection
sees the test set; the run says so in its log).
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
from functools import partial
from itertools import islice
from pathlib import Path
from typing import Any, ClassVar, Iterable, Optional

import lightning as L
from torch.utils.data import DataLoader

from ...hub import load_tokenizer
from .. import document, encoding, images
from ..cache import WindowCache, cache_key, code_fingerprint, file_signature, tokenizer_fingerprint
from ..document import Document
from ..encoding import DocumentEncoder, EncodedWindow, collate_windows
from ..images import DEFAULT_MAX_PIXELS
from ..readers import base as reader_base
from ..readers.base import Reader
from ..repairs import DataError, RepairLog
from ..samplers import ResumableLoader, ResumableSampler

log = logging.getLogger("docalign.data")

SPLITS = ("train", "val", "test")
DEFAULT_CACHE_DIR = "data/cache"
DEFAULT_OCR_CACHE_DIR = "data/cache/ocr"

# The tokenizer when none is named and no CLI fills it in (the CLI makes an unset tokenizer follow the backbone).
DEFAULT_TOKENIZER = "minilm"


class DocumentDataModule(L.LightningDataModule):
    """Base class: subclasses name their ``label_names`` and implement ``load_split``.

    Args:
        tokenizer: checkpoint whose tokenizer encodes the words (``minilm``, a folder or a hub id); it
            must match the backbone's vocabulary (checked when the model is built). None (default): the CLI
            makes it follow the backbone (its hub checkpoint, else its text warm start); outside the CLI, ``minilm``.
        max_length: tokens per window (special tokens included), at most the model's 512.
        stride: tokens shared by consecutive windows of a long document.
        image_size: side of the square page image; linked from ``model.backbone.image_size``.
        batch_size: global batch size (all processes together).
        eval_batch_size: global batch size for validation and test (default: ``batch_size``).
        num_workers, pin_memory: DataLoader settings.
        strict: raise on the first bad sample instead of repairing it (see ``RepairLog``).
        max_docs: use only the first ``max_docs`` documents of each split (quick runs and tests).
        group_by_length: 0 (default): training batches are plain shuffles; ``k``: windows of similar length are
            batched together within chunks of ``k`` batches of a shuffled pass, so batches pad less (the demo uses
            8; ``docalign.data.samplers``). Validation and test keep the document order.
    """

    collate = staticmethod(collate_windows)  # windows -> padded batch; a task's DataModule may name its own

    def __init__(
        self,
        tokenizer: Optional[str] = None,
        max_length: int = 512,
        stride: int = 128,
        image_size: int = 224,
        batch_size: int = 8,
        eval_batch_size: Optional[int] = None,
        num_workers: int = 0,
        pin_memory: bool = False,
        strict: bool = False,
        max_docs: Optional[int] = None,
        group_by_length: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.tokenizer = load_tokenizer(tokenizer or DEFAULT_TOKENIZER)
        self.max_length = max_length
        self.windows: dict[str, list[EncodedWindow]] = {}
        self.repairs = RepairLog(strict=strict)

    # --- what the model is linked to -------------------------------------------------------------
    @property
    def label_names(self) -> list[str]:
        raise NotImplementedError

    @property
    def vocab_size(self) -> int:
        return len(self.tokenizer)

    # --- subclasses -------------------------------------------------------------------------------
    def load_split(self, split: str) -> Iterable[Document]:
        """The documents of ``split`` (one of ``train``, ``val``, ``test``), in a fixed order."""
        raise NotImplementedError

    # --- shared machinery -------------------------------------------------------------------------
    def encoder(self) -> DocumentEncoder:
        hp = self.hparams
        return DocumentEncoder(
            self.tokenizer,
            self.label_names,
            max_length=hp.max_length,
            stride=hp.stride,
            image_size=hp.image_size,
            repairs=self.repairs,
        )

    def encode_split(self, split: str) -> list[EncodedWindow]:
        encoder = self.encoder()
        windows = []
        before = self.repairs.snapshot()
        for i, doc in enumerate(islice(self.load_split(split), self.hparams.max_docs)):
            windows.extend(encoder.encode(doc, i))
        self.repairs.since(*before).warn(f"{type(self).__name__} {split}")  # this split's repairs only
        return windows

    def setup(self, stage: Optional[str] = None) -> None:
        needed = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("test",)}
        for split in needed.get(stage, SPLITS) if stage else SPLITS:
            if split not in self.windows:
                self.windows[split] = self.encode_split(split)

    def per_device_batch(self, global_batch: int) -> int:
        world = self.trainer.world_size if self.trainer is not None else 1
        if global_batch % world:
            raise ValueError(
                f"data.batch_size={global_batch} is the global batch size and must be divisible by the "
                f"number of processes ({world}); choose a multiple of {world}."
            )
        return global_batch // world

    def _loader(self, split: str, global_batch: int, shuffle: bool) -> DataLoader:
        hp = self.hparams
        return DataLoader(
            self.windows[split],
            batch_size=self.per_device_batch(global_batch),
            shuffle=shuffle,
            collate_fn=partial(self.collate, pad_token_id=self.tokenizer.pad_token_id),
            num_workers=hp.num_workers,
            pin_memory=hp.pin_memory,
            persistent_workers=hp.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        """Shuffled windows from a loader that resumes mid-epoch exactly (``docalign.data.samplers``)."""
        hp, trainer = self.hparams, self.trainer
        windows = self.windows["train"]
        world, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
        batch = self.per_device_batch(hp.batch_size)
        grouping = hp.get("group_by_length", 0)  # absent from checkpoints of older runs
        return ResumableLoader(
            windows,
            batch_size=batch,
            sampler=ResumableSampler(
                windows,
                num_replicas=world,
                rank=rank,
                seed=int(os.environ.get("PL_GLOBAL_SEED", 0)),
                group_by_length=grouping,
                lengths=[self.window_length(w) for w in windows] if grouping else None,
                batch_size=batch,
            ),
            collate_fn=partial(self.collate, pad_token_id=self.tokenizer.pad_token_id),
            num_workers=hp.num_workers,
            pin_memory=hp.pin_memory,
            persistent_workers=hp.num_workers > 0,
            epoch_batches=(lambda: trainer.num_training_batches) if trainer is not None else None,
        )

    @staticmethod
    def window_length(window: Any) -> int:
        """A training sample's padded dimension (tokens) for ``group_by_length``; a task's DataModule whose samples
        are not ``EncodedWindow``s names its own."""
        return len(window.input_ids)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self.hparams.eval_batch_size or self.hparams.batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.hparams.eval_batch_size or self.hparams.batch_size, shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self.test_dataloader()


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

    Subclasses set ``dataset`` (cache entry names, messages) and ``env_var``, name their readers
    (``folder_reader`` over ``root``, ``hub_reader`` over ``hub_id``, both given ``reader_kwargs()``) or
    override ``make_reader``, and implement ``split_keys``.

    Args:
        root: the release folder (its layout: the subclass's ``layout``); default ``$<env_var>``, else the hub
            copy where the subclass reads one.
        cache_dir: folder of the encoded-split cache (None: no cache).
        max_pixels: pixel limit of the image loader.
        **kwargs: see ``DocumentDataModule``.
    """

    dataset: ClassVar[str] = ""
    env_var: ClassVar[str] = ""
    layout: ClassVar[str] = ""
    hub_readable: ClassVar[bool] = False  # without a folder, read the hub copy (``open_hub``)
    folder_reader: ClassVar[type[Reader]]
    hub_reader: ClassVar[type[Reader]]

    def __init__(
        self,
        root: Optional[str] = None,
        cache_dir: Optional[str] = DEFAULT_CACHE_DIR,
        max_pixels: Optional[int] = DEFAULT_MAX_PIXELS,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
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
        return (
            f"{self.dataset} needs its release folder: pass `--data.init_args.root /path/to/{self.dataset}` "
            f"or set the environment variable {self.env_var}. {self.layout}"
        )

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
        if self.root is None:
            return self.hub_reader(self.hparams.hub_id, **self.reader_kwargs())
        return self.folder_reader(self.root, **self.reader_kwargs())

    def reader_kwargs(self) -> dict[str, Any]:
        """The readers' settings besides their source."""
        return {"repairs": self.repairs, "max_pixels": self.hparams.max_pixels}

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
            "datamodule": f"{type(self).__module__}.{type(self).__qualname__}",
            "split": split,
            "reader": self.reader_settings(),
            "files": file_signature(files),
            "encoder": {
                "max_length": hp.max_length,
                "stride": hp.stride,
                "image_size": hp.image_size,
                "label_names": self.label_names,
            },
            "tokenizer": tokenizer_fingerprint(self.tokenizer),
            "max_docs": hp.max_docs,
            "strict": hp.strict,
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
            cached.warn(f"{type(self).__name__} {split} (from the cache)")
            self.log_stats(split, entry["stats"], f" (from the cache {self.cache.path(name, key)})")
            return entry["windows"]
        counts_before, stats_before = self.repairs.counts.copy(), self.reader.stats.copy()
        examples_before = {k: len(v) for k, v in self.repairs.examples.items()}
        windows = super().encode_split(split)
        counts, stats = self.repairs.counts - counts_before, self.reader.stats - stats_before
        examples = {k: v[examples_before.get(k, 0) :] for k, v in self.repairs.examples.items() if k in counts}
        self.cache.save(name, key, windows, counts, examples, stats)
        self.log_stats(split, stats)
        return windows

    def log_stats(self, split: str, stats: dict[str, int], suffix: str = "") -> None:
        """One line of the reader's counts for ``split``; a warning when something was skipped or not matched."""
        if not stats:
            return
        noteworthy = any(word in key for key in stats for word in ("skipped", "not matched", "not found", "without"))
        log.log(
            logging.WARNING if noteworthy else logging.INFO,
            "%s %s: %s%s",
            self.dataset,
            split,
            ", ".join(f"{k}: {v}" for k, v in sorted(stats.items())),
            suffix,
        )
