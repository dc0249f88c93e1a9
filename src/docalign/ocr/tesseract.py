"""Tesseract (the system ``tesseract`` binary through pytesseract): word-level boxes natively.

Needs ``tesseract-ocr`` from the OS (``apt-get install tesseract-ocr``) and ``pytesseract``.
"""

from __future__ import annotations

import functools
import shutil
from typing import Any

from PIL import Image

from .base import EngineUnavailable, OcrEngine, OcrResult, preprocess


@functools.lru_cache(maxsize=None)
def tesseract_version() -> str:
    """The system tesseract's version string (e.g. ``5.3.0``); raises ``EngineUnavailable`` if absent."""
    try:
        import pytesseract
    except ImportError as err:
        raise EngineUnavailable("pytesseract is not installed: pip install 'docalign[ocr]'") from err
    if shutil.which(pytesseract.pytesseract.tesseract_cmd) is None:
        raise EngineUnavailable("the tesseract binary is not on PATH: apt-get install -y tesseract-ocr")
    return str(pytesseract.get_tesseract_version())


class TesseractEngine(OcrEngine):
    """Tesseract with page segmentation ``psm``, engine mode ``oem`` and optional preprocessing.

    Args:
        psm: page segmentation mode (3 = automatic layout, 6 = one uniform block, 11 = sparse text:
            find as much text as possible in no particular order, 12 = sparse text with OSD).
        oem: OCR engine mode (1 = LSTM, 0 = legacy, 3 = default: whatever the traineddata offers).
        lang: traineddata name(s), e.g. ``eng`` or ``eng+deu``.
        upscale: resize factor applied before OCR (boxes are mapped back to input pixels).
        binarize / denoise: see ``docalign.ocr.base.preprocess``.
        min_confidence: drop words whose confidence (0-1) is below this.

    The defaults (sparse text, LSTM, 1.5x upscaling) were chosen on FUNSD's forms: psm 11 finds the
    scattered fields that automatic layout (psm 3) misses, and the ~100 dpi scans read better
    enlarged; median denoising erases their thin strokes (docs/RESULTS.md).
    """

    name = "tesseract"

    def __init__(
        self,
        psm: int = 11,
        oem: int = 1,
        lang: str = "eng",
        upscale: float = 1.5,
        binarize: bool = False,
        denoise: bool = False,
        min_confidence: float = 0.0,
    ) -> None:
        self.psm, self.oem, self.lang = int(psm), int(oem), lang
        self.upscale, self.binarize, self.denoise = float(upscale), bool(binarize), bool(denoise)
        self.min_confidence = float(min_confidence)

    def settings(self) -> dict[str, Any]:
        return {
            "psm": self.psm,
            "oem": self.oem,
            "lang": self.lang,
            "upscale": self.upscale,
            "binarize": self.binarize,
            "denoise": self.denoise,
            "min_confidence": self.min_confidence,
            "version": tesseract_version(),
        }

    def _recognize(self, image: Image.Image) -> OcrResult:
        import pytesseract

        tesseract_version()  # a clear error if the binary is missing
        page = preprocess(image, self.upscale, self.binarize, self.denoise)
        data = pytesseract.image_to_data(
            page, lang=self.lang, config=f"--psm {self.psm} --oem {self.oem}", output_type=pytesseract.Output.DICT
        )
        scale = self.upscale
        result = OcrResult()
        for i, text in enumerate(data["text"]):
            conf = float(data["conf"][i])
            # level 5 rows are words; conf -1 marks block/line rows and empty detections.
            if int(data["level"][i]) != 5 or conf < 0 or not text.strip():
                continue
            conf /= 100.0
            if conf < self.min_confidence:
                continue
            left, top, w, h = (int(data[k][i]) for k in ("left", "top", "width", "height"))
            box = (
                int(left / scale),
                int(top / scale),
                max(int(round((left + w) / scale)), int(left / scale) + 1),
                max(int(round((top + h) / scale)), int(top / scale) + 1),
            )
            for word in text.split():  # tesseract words never hold spaces, but be safe
                result.words.append(word)
                result.boxes.append(box)
                result.confidences.append(conf)
        return result
