"""Entity-labelling DataModules (BIO tags per word): FUNSD, SROIE and CORD.

All three read a release folder or, without one, a hub copy, with the same reader settings
(``segment_boxes``, the shared ``RepairLog``, ``max_pixels``): ``EntityDataModule``. FUNSD and SROIE ship
train and test only, so their validation split is carved from train (``CarvedEntityDataModule``); CORD has its
own ``dev`` split.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Iterable, Optional

from ..document import Document
from ..readers import cord as cord_reader
from ..readers import funsd as funsd_reader
from ..readers import sroie as sroie_reader
from .base import ReleaseDataModule, carve_validation, log


class EntityDataModule(ReleaseDataModule):
    """Base of the word-tagging DataModules: ``folder_reader`` over ``root``, else ``hub_reader`` over ``hub_id``.

    Subclasses set ``labels`` (the BIO tags), ``folder_reader`` and ``hub_reader`` (both also take
    ``segment_boxes``).

    Args:
        hub_id: the hub copy (or a local parquet folder) read when there is no folder.
        segment_boxes: every word gets its segment's box (LayoutLMv3's segment-level layout; the segment is the
            dataset's entity or line, see the subclass).
        **kwargs: see ``ReleaseDataModule`` and ``DocumentDataModule``.
    """

    labels: ClassVar[tuple[str, ...]] = ()

    def __init__(self, hub_id: str, segment_boxes: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)

    @property
    def label_names(self) -> list[str]:
        return list(self.labels)

    def reader_kwargs(self) -> dict[str, Any]:
        return {**super().reader_kwargs(), "segment_boxes": self.hparams.segment_boxes}


class CarvedEntityDataModule(EntityDataModule):
    """Base of FUNSD and SROIE: releases with train and test only, validation carved from train.

    ``val`` is ``val_size`` training documents chosen by hash of their file stem (``carve_validation``; hub rows:
    of their document id); ``val_size: 0`` validates on the test split instead.

    Args:
        val_size: documents carved from train for validation (0: use test).
        **kwargs: see ``EntityDataModule``, ``ReleaseDataModule`` and ``DocumentDataModule``.
    """

    hub_readable = True

    def __init__(self, val_size: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.open_hub()

    def split_keys(self, split: str) -> list[Path]:
        val_size = self.hparams.val_size
        if split == "test" or (split == "val" and val_size == 0):
            if split == "val":
                log.warning("%s: val_size is 0, so the test split doubles as the validation split", self.dataset)
            return self.reader.files("test")
        name = getattr(self.reader, "key_name", None) or (lambda k: Path(k).stem)  # hub rows: their document id
        train, val = carve_validation(self.reader.files("train"), val_size, name)
        return train if split == "train" else val


class FUNSD(CarvedEntityDataModule):
    """FUNSD forms (149 train / 50 test), 7 BIO tags; ``other`` entities are ``O`` (see ``readers.funsd``).

    Splits: ``val`` is carved from train: ``val_size`` (default 15) forms chosen by hash of their file stem,
    so train has 134 forms, val 15, test 50. ``val_size: 0`` validates on the test set instead.

    Source: the release folder ``root`` (``training_data/``, ``testing_data/``; default ``$DOCALIGN_FUNSD``), else
    the hub copy ``hub_id`` (``readers.funsd.FUNSDHubReader``; validation carved by hash of the row's ``id``, so
    not the same 15 forms as the folder's; no encoded-split cache). ``segment_boxes``: the entity's box.

    Args:
        val_size: forms carved from train for validation (0: use test).
        hub_id: the hub copy (or a local parquet folder) read when there is no folder.
        **kwargs: ``segment_boxes`` (``EntityDataModule``), ``root``, ``cache_dir``, ``max_pixels``
            (``ReleaseDataModule``) and the rest of ``DocumentDataModule``.
    """

    dataset = "FUNSD"
    env_var = "DOCALIGN_FUNSD"
    layout = "Expected the FUNSD release layout: training_data/ and testing_data/, each with images/ and annotations/."
    labels = tuple(funsd_reader.FUNSD_LABELS)
    folder_reader = funsd_reader.FUNSDReader
    hub_reader = funsd_reader.FUNSDHubReader

    def __init__(self, val_size: int = 15, hub_id: str = funsd_reader.FUNSD_HUB_ID, **kwargs: Any) -> None:
        super().__init__(val_size=val_size, hub_id=hub_id, **kwargs)


class SROIE(CarvedEntityDataModule):
    """SROIE task 3 receipts (626 train / 347 test), 9 BIO tags over company/date/address/total.

    Splits: ``val`` is carved from train: ``val_size`` (default 63, about 10%) receipts chosen by hash of
    their file stem (563 train, 63 val, 347 test). ``val_size: 0`` validates on the test set instead.

    Source: the folder ``root`` holding ``train/`` and ``test/`` (see ``readers.sroie``; default
    ``$DOCALIGN_SROIE``), else the hub copy ``hub_id`` (``readers.sroie.SROIEHubReader``: words already tagged, no
    images; validation carved by hash of the row's ``id``; no encoded-split cache). ``segment_boxes``: the OCR
    line's box; on the hub copy, the entity's box.

    Args:
        val_size: receipts carved from train for validation (0: use test).
        hub_id: the hub copy (or a local parquet folder) read when there is no folder.
        **kwargs: as for ``FUNSD``.
    """

    dataset = "SROIE"
    env_var = "DOCALIGN_SROIE"
    layout = "Expected train/ and test/, each with img/, box/ and entities/ (or flat <id>.jpg, <id>.txt, <id>.json)."
    labels = tuple(sroie_reader.SROIE_LABELS)
    folder_reader = sroie_reader.SROIEReader
    hub_reader = sroie_reader.SROIEHubReader

    def __init__(self, val_size: int = 63, hub_id: str = sroie_reader.SROIE_HUB_ID, **kwargs: Any) -> None:
        super().__init__(val_size=val_size, hub_id=hub_id, **kwargs)


class CORD(EntityDataModule):
    """CORD v2 receipts (800 train / 100 dev / 100 test), 61 BIO tags from ``labels.CORD_CATEGORIES``.

    Source: the raw release folder ``root`` (``train/``, ``dev/``, ``test/`` with ``json/`` and ``image/``;
    ``dev`` is the validation split), default ``$DOCALIGN_CORD``; with neither, the hub copy ``hub_id``
    through ``datasets`` (splits train/validation/test). Offline with the hub copy not cached, construction
    fails at once with a ``DataError`` saying so. The encoded-split cache is used for the folder only (the
    hub copy is cached by ``datasets`` itself). ``segment_boxes``: every word gets its line's box.

    Args:
        hub_id: the hub dataset used when there is no folder.
        **kwargs: as for ``FUNSD``.
    """

    dataset = "CORD"
    env_var = "DOCALIGN_CORD"
    layout = "Expected the CORD release layout: train/, dev/ and test/, each with json/ and image/."
    labels = tuple(cord_reader.CORD_LABELS)
    folder_reader = cord_reader.CORDReader
    hub_reader = cord_reader.CORDHubReader

    def __init__(self, hub_id: str = cord_reader.CORD_HUB_ID, **kwargs: Any) -> None:
        super().__init__(hub_id=hub_id, **kwargs)
        if self.root is None:
            self._reader = self.make_reader()  # checks the hub now: fail before any model is built

    def missing_root(self) -> Optional[Path]:
        return None  # the hub copy

    def reader_settings(self) -> dict[str, Any]:
        return {"segment_boxes": self.hparams.segment_boxes, "max_pixels": self.hparams.max_pixels}

    def split_keys(self, split: str) -> list[Path]:
        return self.reader.files(split)

    def load_split(self, split: str) -> Iterable[Document]:
        if self.root is None:
            return self.reader.read(split)
        return super().load_split(split)
