"""RapidOCR 3.x (PaddleOCR's PP-OCR models as ONNX, shipped in the wheel): line-level boxes.

RapidOCR detects and recognises text *lines*. Two ways to get word boxes (``word_boxes``):

- ``proportional``: split each line's text on spaces and give each word the slice of the line box
  proportional to its character offsets (``docalign.ocr.base.split_line``): an approximation that
  assumes equal-width characters.
- ``native``: RapidOCR's ``return_word_box=True``, which places words from the recogniser's CTC
  character positions (more exact on proportional fonts); falls back to ``proportional`` for a
  line whose word list does not match its text.
"""

from __future__ import annotations

import os
from typing import Any

from PIL import Image

from .base import EngineUnavailable, OcrEngine, OcrResult, quad_to_box, split_line


class RapidOcrEngine(OcrEngine):
    """RapidOCR with the wheel's default (PP-OCRv6 small) models.

    Args:
        word_boxes: ``native`` or ``proportional`` (see the module docstring).
        upscale: resize factor applied before OCR (boxes are mapped back to input pixels).
        text_score: drop lines whose recognition score (0-1) is below this.
        threads: onnxruntime intra-op threads; None = ``OMP_NUM_THREADS`` when set (``docalign ocr
            --workers N`` sets it per worker), else onnxruntime's default (all cores).
    """

    name = "rapidocr"

    def __init__(
        self, word_boxes: str = "native", upscale: float = 1.0, text_score: float = 0.5, threads: int | None = None
    ) -> None:
        if word_boxes not in ("native", "proportional"):
            raise ValueError(f"rapidocr: setting 'word_boxes' must be 'native' or 'proportional', got {word_boxes!r}")
        self.word_boxes, self.upscale, self.text_score = word_boxes, float(upscale), float(text_score)
        self.threads = threads
        self._ocr = None

    def settings(self) -> dict[str, Any]:
        from importlib.metadata import version

        return {
            "word_boxes": self.word_boxes,
            "upscale": self.upscale,
            "text_score": self.text_score,
            "version": version("rapidocr"),
        }

    def _load(self):
        if self._ocr is None:
            try:
                from rapidocr import RapidOCR
            except ImportError as err:
                raise EngineUnavailable("rapidocr is not installed: pip install 'docalign[ocr]'") from err
            threads = self.threads if self.threads is not None else int(os.environ.get("OMP_NUM_THREADS", -1))
            self._ocr = RapidOCR(
                params={
                    "Global.log_level": "error",
                    "Global.text_score": self.text_score,
                    "EngineConfig.onnxruntime.intra_op_num_threads": threads,
                }
            )
        return self._ocr

    def _recognize(self, image: Image.Image) -> OcrResult:
        import numpy as np

        page = image.convert("RGB")
        if self.upscale != 1.0:
            page = page.resize(
                (round(page.width * self.upscale), round(page.height * self.upscale)), Image.Resampling.LANCZOS
            )
        out = self._load()(np.asarray(page), return_word_box=self.word_boxes == "native")
        result = OcrResult()
        if out.txts is None:  # nothing detected
            return result
        native = getattr(out, "word_results", None) if self.word_boxes == "native" else None
        s = self.upscale
        for i, (text, score, quad) in enumerate(zip(out.txts, out.scores, out.boxes)):
            words = self._native_words(native[i]) if native and i < len(native) else None
            if words is None or [w for w, _, _ in words] != text.split():
                words = split_line(text, quad_to_box(quad), score)
            for word, box, conf in words:
                x0, y0, x1, y1 = box
                result.words.append(word)
                result.boxes.append(
                    (int(x0 / s), int(y0 / s), max(round(x1 / s), int(x0 / s) + 1), max(round(y1 / s), int(y0 / s) + 1))
                )
                result.confidences.append(float(conf))
        return result

    @staticmethod
    def _native_words(line) -> list[tuple[str, tuple[int, int, int, int], float]] | None:
        """RapidOCR's (word, score, 4-point box) tuples of one line as (word, pixel box, confidence)."""
        words = []
        for item in line:
            if len(item) != 3 or not isinstance(item[0], str):
                return None
            text, conf, quad = item
            x0, y0, x1, y1 = quad_to_box(quad)
            for part in text.split():  # a native "word" may hold a space; keep the shared box
                words.append(
                    (part, (int(x0), int(y0), max(round(x1), int(x0) + 1), max(round(y1), int(y0) + 1)), float(conf))
                )
        return words or None
