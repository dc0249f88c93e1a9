"""OCR engines behind one interface, with an on-disk cache keyed by image content.

    from docalign.ocr import get_engine, OcrCache, CachedEngine
    engine = CachedEngine(get_engine("tesseract"), OcrCache("data/ocr_cache"))
    result = engine(page)            # OcrResult: words, boxes (x0, y0, x1, y1 pixels), confidences 0-1
    doc = Document.from_ocr(result, "page-1", page)   # docalign.data.document.Document

``docalign ocr <folder>`` fills the cache for a folder of page images in parallel
(``docalign.ocr.command``); ``benchmarks/ocr_funsd.py`` measures the engines on FUNSD.
"""

from __future__ import annotations

import json
from typing import Any

from .base import EngineUnavailable, OcrEngine, OcrResult, split_line
from .cache import CachedEngine, OcrCache, cache_key, image_digest
from .easyocr_engine import EasyOcrEngine
from .rapidocr_engine import RapidOcrEngine
from .tesseract import TesseractEngine

ENGINES: dict[str, type[OcrEngine]] = {
    "tesseract": TesseractEngine,
    "easyocr": EasyOcrEngine,
    "rapidocr": RapidOcrEngine,
}
DEFAULT_ENGINE = "rapidocr"


def get_engine(name: str = DEFAULT_ENGINE, **settings: Any) -> OcrEngine:
    """Build the OCR engine ``name`` (``tesseract``, ``easyocr`` or ``rapidocr``) with ``settings``.

    Settings are the engine class's keyword arguments (e.g. ``get_engine("tesseract", psm=6)``);
    an unknown name or setting raises ``ValueError`` naming it. Loading models happens on first use.

    The default engine is rapidocr (PP-OCRv6 ONNX models from its wheel; no system binary, no
    download), chosen by measurement (``benchmarks/ocr_funsd.py``, docs/RESULTS.md "OCR engines on
    FUNSD"): on all 50 FUNSD test pages it recalled 0.763 of the ground-truth words (precision
    0.831) against 0.699 (0.759) for the best tesseract setting found (``psm=11, upscale=1.5``,
    now tesseract's defaults here; tesseract's own defaults: 0.526 on 10 pages), and easyocr
    recalled 0.44 on 5 pages. Cost on 2 shared CPU cores: rapidocr about 7 s/page, tesseract about
    3 s/page, easyocr about 40 s/page. Use tesseract when speed matters more than recall.
    """
    try:
        cls = ENGINES[name]
    except KeyError:
        raise ValueError(f"unknown OCR engine {name!r}; choose one of {sorted(ENGINES)}") from None
    try:
        return cls(**settings)
    except TypeError as err:
        raise ValueError(f"OCR engine {name!r}: bad settings {settings}: {err}") from None


def parse_value(text: str) -> Any:
    """A command-line setting value: JSON when it parses (``2``, ``0.5``, ``true``), else the string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def engine_from_spec(spec: str) -> OcrEngine:
    """``get_engine`` from a spec string ``name[:key=value,key=value]``, e.g. ``tesseract:psm=6,upscale=2``."""
    name, _, rest = spec.partition(":")
    settings: dict[str, Any] = {}
    for item in filter(None, rest.split(",")):
        key, eq, value = item.partition("=")
        if not eq:
            raise ValueError(f"OCR engine spec {spec!r}: setting {item!r} is not key=value")
        settings[key.strip()] = parse_value(value.strip())
    return get_engine(name.strip(), **settings)


__all__ = [
    "OcrEngine",
    "OcrResult",
    "EngineUnavailable",
    "OcrCache",
    "CachedEngine",
    "ENGINES",
    "DEFAULT_ENGINE",
    "get_engine",
    "engine_from_spec",
    "parse_value",
    "cache_key",
    "image_digest",
    "split_line",
    "TesseractEngine",
    "EasyOcrEngine",
    "RapidOcrEngine",
]
