"""The pages of ``docalign predict``'s inputs and their words.

Inputs are image files (``.png``, ``.jpg``/``.jpeg``, ``.tif``/``.tiff``, ``.bmp``, ``.webp``; the first frame), PDFs
(every page, rendered at ``dpi`` with the pixel limit checked before rendering: ``data.images.render_pdf_page``) and
folders of those (sorted; ``recursive`` for subfolders). A page's id names its output files: the file's stem, with
``_p<N>`` (1-based) for PDF pages.

Words come from OCR through the on-disk cache (``docalign.ocr``: any engine, ``engine_from_spec``) or from a words
JSON: ``{"words": [...], "boxes": [[x0, y0, x1, y1], ...]}`` in the page's pixels (``docalign ocr``'s cache entries'
``result`` has this form too; ``confidences`` is optional). ``--words`` names one such file (one page) or a folder
holding ``<page id>.json`` per page.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from PIL import Image

from ..data.images import DEFAULT_MAX_PIXELS, DEFAULT_PDF_DPI, load_image, pdf_page_count
from ..data.repairs import DataError
from ..ocr import CachedEngine, OcrCache, OcrResult, engine_from_spec

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")
PDF_SUFFIX = ".pdf"


@dataclass(frozen=True)
class PageRef:
    """One page to predict: ``index`` is the PDF page (0-based); 0 for images."""

    path: Path
    index: int = 0

    @property
    def is_pdf(self) -> bool:
        return self.path.suffix.lower() == PDF_SUFFIX

    @property
    def page_id(self) -> str:
        return f"{self.path.stem}_p{self.index + 1}" if self.is_pdf else self.path.stem

    def load(self, max_pixels: Optional[int] = DEFAULT_MAX_PIXELS, dpi: int = DEFAULT_PDF_DPI) -> Image.Image:
        """The page as RGB (``DataError`` naming the file when it cannot be read or is over ``max_pixels``)."""
        image = load_image(self.path, page=self.index, dpi=dpi, max_pixels=max_pixels)
        assert image is not None  # no RepairLog: a bad file raises
        return image


def find_pages(inputs: Sequence[str | Path], recursive: bool = False) -> list[PageRef]:
    """Every page of ``inputs`` in order (folders sorted); a ``DataError`` naming an input that is none of them."""
    pages: list[PageRef] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files = sorted(p for p in (path.rglob("*") if recursive else path.iterdir()) if p.is_file())
            files = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES + (PDF_SUFFIX,)]
            if not files:
                raise DataError(f"{path}: a folder with no page images or PDFs ({', '.join(IMAGE_SUFFIXES)}, .pdf)")
        elif path.is_file():
            if path.suffix.lower() not in IMAGE_SUFFIXES + (PDF_SUFFIX,):
                raise DataError(f"{path}: not a page image or PDF ({', '.join(IMAGE_SUFFIXES)}, .pdf)")
            files = [path]
        else:
            raise DataError(f"{path}: no such file or folder")
        for file in files:
            if file.suffix.lower() == PDF_SUFFIX:
                pages += [PageRef(file, i) for i in range(pdf_page_count(file))]
            else:
                pages.append(PageRef(file))
    ids = [p.page_id for p in pages]
    clashes = sorted({i for i in ids if ids.count(i) > 1})
    if clashes:
        raise DataError(f"two input pages would write the same output file ({', '.join(clashes)}.json): rename one")
    return pages


def read_words(path: Path, image: Image.Image) -> OcrResult:
    """A words JSON (see the module docstring) checked against ``image``; ``DataError`` names the file and field."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: cannot be read as JSON ({err})") from err
    if isinstance(data, dict) and isinstance(data.get("result"), dict):  # an OCR cache entry
        data = data["result"]
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected an object with 'words' and 'boxes', got {type(data).__name__}")
    words, boxes = data.get("words"), data.get("boxes")
    if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
        raise DataError(f"{path}: field 'words' must be a list of strings")
    if not isinstance(boxes, list) or len(boxes) != len(words):
        raise DataError(f"{path}: field 'boxes' must be a list of one box per word ({len(words)})")
    clean = []
    for i, box in enumerate(boxes):
        ok = isinstance(box, list) and len(box) == 4 and all(isinstance(v, (int, float)) for v in box)
        if not ok or not all(math.isfinite(v) for v in box):
            raise DataError(f"{path}: field 'boxes[{i}]' is not 4 finite numbers: {box!r}")
        clean.append([round(v) for v in box])
    confidences = data.get("confidences", [1.0] * len(words))
    if not isinstance(confidences, list) or len(confidences) != len(words):
        raise DataError(f"{path}: field 'confidences' must hold one number per word")
    return OcrResult(words, clean, confidences, image.width, image.height)


class WordSource:
    """Words for each page: from ``words`` (a JSON file or a folder of ``<page id>.json``) or OCR with ``engine``
    (a spec ``name[:key=value,...]``) through the cache in ``cache_dir``."""

    def __init__(self, engine: str, cache_dir: Path, words: Optional[Path] = None) -> None:
        self.words = words
        self.engine: Optional[CachedEngine] = None
        if words is None:
            self.engine = CachedEngine(engine_from_spec(engine), OcrCache(cache_dir))
        elif not words.exists():
            raise DataError(f"--words: {words} does not exist")
        self.spec = engine

    def __call__(self, page: PageRef, image: Image.Image) -> tuple[OcrResult, dict]:
        """The page's words and where they came from (``{"engine", "cache_hit"}`` or ``{"words_file"}``)."""
        if self.engine is not None:
            result = self.engine(image)
            return result, {"engine": self.spec, "cache_hit": self.engine.last_hit}
        assert self.words is not None
        file = self.words / f"{page.page_id}.json" if self.words.is_dir() else self.words
        if not file.is_file():
            raise DataError(f"--words: {file} (the words of page {page.page_id}) does not exist")
        return read_words(file, image), {"words_file": str(file)}
