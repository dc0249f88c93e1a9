"""Document classification releases: RVL-CDIP (label-list files) and Tobacco-3482 (class folders).

Neither ships OCR. A reader takes an optional ``ocr`` callable, ``ocr(image) -> (words, boxes)`` with
``image`` an RGB ``PIL.Image``, ``words`` a list of strings and ``boxes`` one ``(x0, y0, x1, y1)`` per word
in pixels of that image (the engines in ``docalign.ocr`` have this shape). Without ``ocr`` the documents
have no words (image-only classification). Pages where OCR finds nothing are kept and counted in
``stats["pages without OCR words"]``; blank pages are legitimate samples here.

RVL-CDIP's hub copy ``aharley/rvl_cdip`` (columns ``image`` and ``label``, a ClassLabel in the order of
``RVL_CDIP_CLASSES``; splits train/validation/test) is read by ``RVLCDIPHubReader``, with the same OCR callable.
Tobacco-3482's hub copy ``maveriq/tobacco3482`` (one split, ``train``, of all 3,482 scans; columns ``image`` and
``label``) is read by ``Tobacco3482HubReader``; its classes must be ``TOBACCO3482_CLASSES`` in that order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, NamedTuple, Optional, Sequence

from PIL import Image

from ..document import Document
from ..repairs import DataError
from .base import IMAGE_SUFFIXES, Box, Reader
from .hub import HubReader, HubRow

OCRFunction = Callable[[Image.Image], tuple[Sequence[str], Sequence[Sequence[float]]]]

# Class index -> name, in the order of RVL-CDIP's label files (Harley et al., 2015).
RVL_CDIP_CLASSES: tuple[str, ...] = (
    "letter",
    "form",
    "email",
    "handwritten",
    "advertisement",
    "scientific report",
    "scientific publication",
    "specification",
    "file folder",
    "news article",
    "budget",
    "invoice",
    "presentation",
    "questionnaire",
    "resume",
    "memo",
)
RVL_CDIP_HUB_ID = "aharley/rvl_cdip"
# Tobacco-3482's ten class folders (Kumar et al., 2014).
TOBACCO3482_CLASSES: tuple[str, ...] = (
    "ADVE",
    "Email",
    "Form",
    "Letter",
    "Memo",
    "News",
    "Note",
    "Report",
    "Resume",
    "Scientific",
)
# The hub copy most often used (e.g. by the DiT/LayoutLMv3 distillation and early-exit studies); its ClassLabel
# order is checked against TOBACCO3482_CLASSES when a split is loaded.
TOBACCO3482_HUB_ID = "maveriq/tobacco3482"


class _OCRMixin:
    """Image + optional OCR -> ``Document`` with ``doc_label``; for readers with ``ocr``, ``repairs`` and ``stats``."""

    ocr: Optional[OCRFunction]

    def document_from_image(self, image: Image.Image, label: str, doc_id: str, where: str) -> Optional[Document]:
        words: list[str] = []
        boxes: list[Box] = []
        if self.ocr is not None:
            recognised = self._run_ocr(image, where)
            if recognised is None:
                return None
            words, boxes = recognised
            self.check_boxes(where, [f"ocr box of word {i}" for i in range(len(words))], boxes, image.size)
            if not words:
                self.stats["pages without OCR words"] += 1
        self.stats["words"] += len(words)
        return Document(doc_id=doc_id, image=image, words=words, boxes=boxes, doc_label=label, source=where)

    def _run_ocr(self, image: Image.Image, where: str) -> Optional[tuple[list[str], list[Box]]]:
        try:
            raw_words, raw_boxes = self.ocr(image)  # type: ignore[misc]
            raw_words, raw_boxes = list(raw_words), list(raw_boxes)
        except Exception as err:  # noqa: BLE001 - an engine failing on one page must not end a lenient run
            self.repairs.report(where, "ocr", f"OCR failed ({type(err).__name__}: {err})", "skip the document")
            return None
        if len(raw_words) != len(raw_boxes):
            self.repairs.report(
                where, "ocr", f"OCR returned {len(raw_words)} words but {len(raw_boxes)} boxes", "skip the document"
            )
            return None
        words: list[str] = []
        boxes: list[Box] = []
        for i, (word, box) in enumerate(zip(raw_words, raw_boxes)):
            if not isinstance(word, str) or not word.strip():
                self.stats["empty OCR words skipped"] += 1
                continue
            parsed = self.parse_box(box, where, f"ocr box of word {i}")
            if parsed is not None:
                words.append(word.strip())
                boxes.append(parsed)
        return words, boxes


class _OCRReader(_OCRMixin, Reader):
    """Shared by the classification folder readers: an image file + optional OCR -> ``Document``."""

    def __init__(self, root: str | Path, *, ocr: Optional[OCRFunction] = None, **kwargs: Any) -> None:
        super().__init__(root, **kwargs)
        self.ocr = ocr

    def document(self, image_path: Path, label: str, doc_id: str, where: str) -> Optional[Document]:
        image = self.open_image(image_path, where)
        if image is None:
            return None
        return self.document_from_image(image, label, doc_id, where)


class RVLCDIPReader(_OCRReader):
    """Reads the RVL-CDIP release.

    Layout under ``root``: ``labels/{train,val,test}.txt``, one sample per line,
    ``<image path relative to images/> <class index 0-15>``, and ``images/<that path>`` (TIFF scans).
    Class names are ``RVL_CDIP_CLASSES`` (``doc_label``).

    Args:
        root: the release folder.
        ocr: ``image -> (words, boxes)`` (see the module docstring), or None for image-only documents.
        labels_dir, images_dir: sub-folder names, relative to ``root``.
        strict, repairs, max_pixels: see ``Reader``.
    """

    splits = ("train", "val", "test")

    def __init__(
        self,
        root: str | Path,
        *,
        ocr: Optional[OCRFunction] = None,
        labels_dir: str = "labels",
        images_dir: str = "images",
        **kwargs: Any,
    ) -> None:
        super().__init__(root, ocr=ocr, **kwargs)
        self.labels_dir, self.images_dir = self.root / labels_dir, self.root / images_dir

    def label_file(self, split: str) -> Path:
        return self.labels_dir / f"{split}.txt"

    def files(self, split: str) -> list[tuple[str, str, str]]:
        """``(relative image path, class name, "labels/<split>.txt:<line>")`` per well-formed line, in file order."""
        self.check_split(split)
        path = self.label_file(split)
        if not path.is_file():
            raise FileNotFoundError(f"RVL-CDIP label file {path} not found (root={self.root})")
        keys = []
        for n, raw in enumerate(path.read_bytes().splitlines(), start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                self.repairs.report(str(path), f"line {n}", f"not UTF-8 ({err})", "skip the line")
                continue
            if not line.strip():
                continue
            parts = line.split()
            where = f"{path}:{n}"
            if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
                self.repairs.report(
                    str(path), f"line {n}", f"expected '<image path> <class index>', got {line[:80]!r}", "skip the line"
                )
                continue
            if self.confined_path(self.images_dir, parts[0], str(path), f"line {n}", "skip the line") is None:
                continue
            index = int(parts[1])
            if not 0 <= index < len(RVL_CDIP_CLASSES):
                self.repairs.report(
                    str(path),
                    f"line {n}",
                    f"unknown label {index} (classes are 0-{len(RVL_CDIP_CLASSES) - 1})",
                    "skip the line",
                )
                continue
            keys.append((parts[0], RVL_CDIP_CLASSES[index], where))
        return keys

    def dependencies(self, key: tuple[str, str, str]) -> list[Path]:
        return [Path(key[2].rsplit(":", 1)[0]), self.images_dir / key[0]]

    def read_file(self, key: tuple[str, str, str]) -> Optional[Document]:
        relative, label, where = key
        return self.document(self.images_dir / relative, label, relative, where)


class Tobacco3482Reader(_OCRReader):
    """Reads Tobacco-3482: ``root/<class>/<id>.<jpg|png|tif>``, one folder per class (``TOBACCO3482_CLASSES``).

    The release has no official split (papers sample e.g. 100 documents per class for training), so the
    reader has one split, ``all``; choosing train/val/test subsets is left to the caller.

    Args:
        root: the folder of class folders.
        ocr: ``image -> (words, boxes)``, or None.
        classes: the expected class folder names; another folder is reported as an unknown label.
        strict, repairs, max_pixels: see ``Reader``.
    """

    splits = ("all",)

    def __init__(
        self,
        root: str | Path,
        *,
        ocr: Optional[OCRFunction] = None,
        classes: Sequence[str] = TOBACCO3482_CLASSES,
        **kwargs: Any,
    ) -> None:
        super().__init__(root, ocr=ocr, **kwargs)
        self.classes = tuple(classes)

    def files(self, split: str = "all") -> list[tuple[Path, str]]:
        """``(image path, class name)`` sorted by class, then file name."""
        self.check_split(split)
        if not self.root.is_dir():
            raise FileNotFoundError(f"Tobacco-3482 folder {self.root} not found")
        keys = []
        for folder in sorted(p for p in self.root.iterdir() if p.is_dir()):
            if folder.name not in self.classes:
                self.repairs.report(
                    str(folder),
                    "label",
                    f"unknown class folder {folder.name!r} (known: {', '.join(self.classes)})",
                    "skip its files",
                )
                continue
            for path in sorted(folder.iterdir()):
                if path.suffix.lower() in IMAGE_SUFFIXES:
                    keys.append((path, folder.name))
                else:
                    self.stats["non-image files ignored"] += 1
        return keys

    def dependencies(self, key: tuple[Path, str]) -> list[Path]:
        return [key[0]]

    def read_file(self, key: tuple[Path, str]) -> Optional[Document]:
        path, label = key
        return self.document(path, label, f"{label}/{path.stem}", str(path))


class _LabelledHubReader(_OCRMixin, HubReader):
    """A hub reader of page images with a class per row; words from OCR through the cache."""

    image_column: str

    def labelled_row_document(self, row: dict, label: str, doc_id: str, where: str) -> Optional[Document]:
        """The row's page image (column ``image_column``) as a ``Document`` of class ``label``, or None (reported)."""
        if self.image_column not in row:
            self.repairs.report(where, self.image_column, "missing (no such column)", "skip the document")
            return None
        image, _ = self.page_image(row, self.image_column, where)
        if image is None:
            return None
        return self.document_from_image(image, label, doc_id, where)


class RVLCDIPHubReader(_LabelledHubReader):
    """Reads the hub copy of RVL-CDIP through ``datasets`` (see ``readers.hub``; 320,000 / 40,000 / 40,000 rows).

    Each row is a page image (``image_column``) and a class index (``label_column``) into ``RVL_CDIP_CLASSES``
    (``doc_label``); words come from ``ocr`` as for ``RVLCDIPReader``. A split whose label column names its
    classes in another order raises ``DataError`` at once (every label would be wrong); a row with a null or
    non-image ``image``, or a label outside 0-15, is skipped and counted (strict: raised naming the row).
    Documents are named ``<hub split>-<row index>``. Offline with nothing cached, construction fails at once.

    Args:
        hub_id: the dataset repository (default ``aharley/rvl_cdip``), or a local folder of parquet files.
        ocr: ``image -> (words, boxes)``, or None for image-only documents.
        revision: see ``readers.hub.HubReader`` (default: the hub's parquet conversion).
        image_column, label_column: column names.
        strict, repairs, max_pixels: see ``Reader``.
    """

    splits = ("train", "val", "test")
    hub_splits = {"train": "train", "val": "validation", "test": "test"}
    instead = (
        "Read the RVL-CDIP release folder instead (labels/{train,val,test}.txt and images/): "
        "`--data.init_args.root /path/to/rvl-cdip` or set DOCALIGN_RVLCDIP."
    )

    def __init__(
        self,
        hub_id: str = RVL_CDIP_HUB_ID,
        *,
        ocr: Optional[OCRFunction] = None,
        image_column: str = "image",
        label_column: str = "label",
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("id_column", None)
        super().__init__(hub_id, **kwargs)
        self.ocr = ocr
        self.image_column, self.label_column = image_column, label_column

    def check_features(self, data: Any) -> None:
        names = getattr(data.features.get(self.label_column), "names", None)
        if names and [str(n).lower() for n in names] != list(RVL_CDIP_CLASSES):
            raise DataError(
                f"{self.hub_id}: field '{self.label_column}': its classes are {list(names)}, not "
                f"RVL-CDIP's {list(RVL_CDIP_CLASSES)} in that order; every label would be wrong"
            )

    def read_file(self, key: HubRow) -> Optional[Document]:
        where = self.where(key)
        row = self.row(key)
        if row is None:
            return None
        label = row.get(self.label_column)
        if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < len(RVL_CDIP_CLASSES):
            reason = (
                "missing (no such column, or a null value)"
                if label is None
                else f"unknown label {label!r} (classes are 0-{len(RVL_CDIP_CLASSES) - 1})"
            )
            self.repairs.report(where, self.label_column, reason, "skip the document")
            return None
        return self.labelled_row_document(row, RVL_CDIP_CLASSES[label], key.doc_id, where)


class LabelledHubRow(NamedTuple):
    """A ``HubRow`` that also carries the row's class name (read with the listing, for a stratified carve)."""

    split: str
    index: int
    doc_id: str
    label: str


class Tobacco3482HubReader(_LabelledHubReader):
    """Reads a hub copy of Tobacco-3482 through ``datasets`` (see ``readers.hub``), by default ``maveriq/tobacco3482``.

    Like the folder reader it has one split, ``all`` (the copy's only split, ``train``, holds all 3,482 scans; the
    DataModule carves train/val/test per class). Each row is a page image (``image_column``) and a class index
    (``label_column``) into ``TOBACCO3482_CLASSES`` (``doc_label``); words come from ``ocr``. A split whose label
    column names other classes, or ours in another order, raises ``DataError`` at once (names compared
    case-insensitively); a row with a label outside 0-9 is left out of the listing and counted, a null or
    non-image ``image`` skips the document (strict: raised naming the row and field). Documents are named
    ``<class>/<hub split>-<row index>``. Offline with nothing cached, construction fails at once.

    Args:
        hub_id: the dataset repository, or a local folder of parquet files.
        ocr: ``image -> (words, boxes)``, or None for image-only documents.
        revision: default None, the repository's main branch (the copy is parquet already).
        hub_split: the copy's split holding the scans.
        image_column, label_column: column names.
        strict, repairs, max_pixels: see ``Reader``.
    """

    splits = ("all",)
    instead = (
        "Read the Tobacco-3482 folder of class folders instead: `--data.init_args.root /path/to/Tobacco3482` "
        "or set DOCALIGN_TOBACCO3482."
    )

    def __init__(
        self,
        hub_id: str = TOBACCO3482_HUB_ID,
        *,
        ocr: Optional[OCRFunction] = None,
        revision: Optional[str] = None,
        hub_split: str = "train",
        image_column: str = "image",
        label_column: str = "label",
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("id_column", None)
        self.hub_splits = {"all": hub_split}
        super().__init__(hub_id, revision=revision, **kwargs)
        self.ocr = ocr
        self.image_column, self.label_column = image_column, label_column

    def check_features(self, data: Any) -> None:
        feature = data.features.get(self.label_column)
        if feature is None:
            raise DataError(
                f"{self.hub_id}: field '{self.label_column}': no such column (columns: {', '.join(data.column_names)})"
            )
        names = getattr(feature, "names", None)
        if names and [str(n).lower() for n in names] != [c.lower() for c in TOBACCO3482_CLASSES]:
            raise DataError(
                f"{self.hub_id}: field '{self.label_column}': its classes are {list(names)}, not "
                f"Tobacco-3482's {list(TOBACCO3482_CLASSES)} in that order; every label would be wrong"
            )

    def files(self, split: str = "all") -> list[LabelledHubRow]:  # type: ignore[override]
        """One key per row with a valid label, in the hub's row order."""
        data = self.dataset(split)
        hub_split = self.hub_splits[split]
        keys = []
        for i, label in enumerate(data[self.label_column]):
            if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < len(TOBACCO3482_CLASSES):
                reason = (
                    "missing (null)"
                    if label is None
                    else f"unknown label {label!r} (classes are 0-{len(TOBACCO3482_CLASSES) - 1})"
                )
                self.repairs.report(f"{self.hub_id}[{hub_split}][{i}]", self.label_column, reason, "skip the document")
                continue
            name = TOBACCO3482_CLASSES[label]
            keys.append(LabelledHubRow(split, i, f"{name}/{hub_split}-{i}", name))
        return keys

    @staticmethod
    def key_label(key: LabelledHubRow) -> str:
        return key.label

    def read_file(self, key: LabelledHubRow) -> Optional[Document]:  # type: ignore[override]
        where = self.where(key)  # type: ignore[arg-type]
        row = self.row(key)  # type: ignore[arg-type]
        if row is None:
            return None
        return self.labelled_row_document(row, key.label, key.doc_id, where)
