"""DataModules: documents -> encoded windows -> padded batches.

``batch_size`` is the *global* batch size: with N processes each loads ``batch_size / N`` windows, so
changing the number of GPUs or nodes does not change the optimisation.
"""

from __future__ import annotations

from functools import partial
from itertools import islice
from typing import Iterable, Optional

import lightning as L
from torch.utils.data import DataLoader

from ..hub import load_tokenizer
from .document import Document
from .encoding import DocumentEncoder, EncodedWindow, collate_windows
from .repairs import RepairLog
from .synthetic import LABEL_NAMES as RECEIPT_LABELS
from .synthetic import render_receipt

SPLITS = ("train", "val", "test")


class DocumentDataModule(L.LightningDataModule):
    """Base class: subclasses name their ``label_names`` and implement ``load_split``.

    Args:
        tokenizer: checkpoint whose tokenizer encodes the words (``minilm``, a folder or a hub id); it
            must match the backbone's vocabulary (checked when the model is built).
        max_length: tokens per window (special tokens included), at most the model's 512.
        stride: tokens shared by consecutive windows of a long document.
        image_size: side of the square page image; linked from ``model.backbone.image_size``.
        batch_size: global batch size (all processes together).
        eval_batch_size: global batch size for validation and test (default: ``batch_size``).
        num_workers, pin_memory: DataLoader settings.
        strict: raise on the first bad sample instead of repairing it (see ``RepairLog``).
        max_docs: use only the first ``max_docs`` documents of each split (quick runs and tests).
    """

    collate = staticmethod(collate_windows)  # windows -> padded batch; a task's DataModule may name its own

    def __init__(self, tokenizer: str = "minilm", max_length: int = 512, stride: int = 128, image_size: int = 224,
                 batch_size: int = 8, eval_batch_size: Optional[int] = None, num_workers: int = 0,
                 pin_memory: bool = False, strict: bool = False, max_docs: Optional[int] = None) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.tokenizer = load_tokenizer(tokenizer)
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
        return DocumentEncoder(self.tokenizer, self.label_names, max_length=hp.max_length, stride=hp.stride,
                               image_size=hp.image_size, repairs=self.repairs)

    def encode_split(self, split: str) -> list[EncodedWindow]:
        encoder = self.encoder()
        windows = []
        for i, doc in enumerate(islice(self.load_split(split), self.hparams.max_docs)):
            windows.extend(encoder.encode(doc, i))
        self.repairs.warn(f"{type(self).__name__} {split}")
        return windows

    def setup(self, stage: Optional[str] = None) -> None:
        needed = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("test",)}
        for split in needed.get(stage, SPLITS) if stage else SPLITS:
            if split not in self.windows:
                self.windows[split] = self.encode_split(split)

    def per_device_batch(self, global_batch: int) -> int:
        world = self.trainer.world_size if self.trainer is not None else 1
        if global_batch % world:
            raise ValueError(f"data.batch_size={global_batch} is the global batch size and must be divisible by the "
                             f"number of processes ({world}); choose a multiple of {world}.")
        return global_batch // world

    def _loader(self, split: str, global_batch: int, shuffle: bool) -> DataLoader:
        hp = self.hparams
        return DataLoader(
            self.windows[split], batch_size=self.per_device_batch(global_batch), shuffle=shuffle,
            collate_fn=partial(self.collate, pad_token_id=self.tokenizer.pad_token_id),
            num_workers=hp.num_workers, pin_memory=hp.pin_memory, persistent_workers=hp.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.hparams.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self.hparams.eval_batch_size or self.hparams.batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.hparams.eval_batch_size or self.hparams.batch_size, shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self.test_dataloader()


class SyntheticReceipts(DocumentDataModule):
    """The offline embedded default: rendered receipts in CORD's label schema (see ``synthetic``).

    Args:
        num_train, num_val, num_test: receipts per split.
        seed: the generator seed; splits use ``seed``, ``seed + 1`` and ``seed + 2`` and so never overlap.
        **kwargs: see ``DocumentDataModule``.
    """

    def __init__(self, num_train: int = 400, num_val: int = 50, num_test: int = 100, seed: int = 0,
                 tokenizer: str = "minilm", max_length: int = 512, stride: int = 128, image_size: int = 224,
                 batch_size: int = 8, eval_batch_size: Optional[int] = None, num_workers: int = 0,
                 pin_memory: bool = False, strict: bool = False, max_docs: Optional[int] = None) -> None:
        super().__init__(tokenizer=tokenizer, max_length=max_length, stride=stride, image_size=image_size,
                         batch_size=batch_size, eval_batch_size=eval_batch_size, num_workers=num_workers,
                         pin_memory=pin_memory, strict=strict, max_docs=max_docs)

    @property
    def label_names(self) -> list[str]:
        return list(RECEIPT_LABELS)

    def load_split(self, split: str) -> Iterable[Document]:
        hp = self.hparams
        count = {"train": hp.num_train, "val": hp.num_val, "test": hp.num_test}[split]
        seed = hp.seed + SPLITS.index(split)
        return (render_receipt(seed, i) for i in range(count))
