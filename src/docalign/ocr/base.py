"""The OCR engine interface and its result type.

An engine turns one PIL page image into an ``OcrResult``: words in reading order, one word-level box
per word as ``(x0, y0, x1, y1)`` integer pixels of the *input* image (x0 < x1, y0 < y1, origin top
left; an engine that preprocesses, e.g. upscales, maps its boxes back), and one confidence per word
in [0, 1]. ``name`` and ``settings()`` identify what the engine computes: the cache keys on both, so
any setting that can change the output (including the library version) belongs in ``settings()``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Sequence

from PIL import Image

Box = tuple[int, int, int, int]


class EngineUnavailable(RuntimeError):
    """The engine's library, binary or model files are missing; the message says how to install them."""


@dataclass
class OcrResult:
    """Words found on one page.

    Attributes:
        words: the words in reading order (no whitespace inside a word).
        boxes: one ``(x0, y0, x1, y1)`` box per word, integer pixels of the input image.
        confidences: one confidence per word, a float in [0, 1].
        width, height: size of the input image in pixels (so boxes can be scaled to 0-1000 later).
    """

    words: list[str] = field(default_factory=list)
    boxes: list[Box] = field(default_factory=list)
    confidences: list[float] = field(default_factory=list)
    width: int = 0
    height: int = 0

    def __post_init__(self) -> None:
        if not (len(self.words) == len(self.boxes) == len(self.confidences)):
            raise ValueError(
                f"OcrResult: field 'boxes'/'confidences' have {len(self.boxes)}/"
                f"{len(self.confidences)} entries but 'words' has {len(self.words)}"
            )
        self.boxes = [tuple(int(v) for v in b) for b in self.boxes]  # type: ignore[misc]
        for i, box in enumerate(self.boxes):
            if len(box) != 4:
                raise ValueError(f"OcrResult: field 'boxes[{i}]' must have 4 numbers, got {box!r}")
        self.confidences = [float(c) for c in self.confidences]

    def __len__(self) -> int:
        return len(self.words)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the cache's entry format)."""
        return {
            "words": list(self.words),
            "boxes": [list(b) for b in self.boxes],
            "confidences": [round(c, 5) for c in self.confidences],
            "width": self.width,
            "height": self.height,
        }

    @classmethod
    def from_dict(cls, data: Any) -> "OcrResult":
        """Inverse of ``to_dict``; raises ``ValueError`` naming the field when the dict is malformed."""
        if not isinstance(data, dict):
            raise ValueError(f"OcrResult: expected a dict, got {type(data).__name__}")
        for key, kind in (("words", list), ("boxes", list), ("confidences", list), ("width", int), ("height", int)):
            if not isinstance(data.get(key), kind):
                raise ValueError(f"OcrResult: field '{key}' missing or not a {kind.__name__}")
        if not all(isinstance(w, str) for w in data["words"]):
            raise ValueError("OcrResult: field 'words' holds a non-string")
        for i, box in enumerate(data["boxes"]):
            if not (isinstance(box, list) and len(box) == 4 and all(isinstance(v, int) for v in box)):
                raise ValueError(f"OcrResult: field 'boxes[{i}]' is not 4 integers: {box!r}")
        if not all(isinstance(c, (int, float)) and math.isfinite(c) for c in data["confidences"]):
            raise ValueError("OcrResult: field 'confidences' holds a non-number")
        return cls(data["words"], data["boxes"], data["confidences"], data["width"], data["height"])


class OcrEngine(ABC):
    """An OCR engine: ``engine(image) -> OcrResult``.

    Subclasses set ``name`` and implement ``settings()`` and ``_recognize``; heavy models are loaded
    lazily on first use, so constructing an engine is cheap and never touches the disk or network.
    """

    name: str = "base"

    @abstractmethod
    def settings(self) -> dict[str, Any]:
        """Everything that can change the output (JSON-serialisable); part of the cache key."""

    @abstractmethod
    def _recognize(self, image: Image.Image) -> OcrResult:
        """OCR of ``image`` (any PIL mode); boxes in its pixels."""

    def __call__(self, image: Image.Image) -> OcrResult:
        result = self._recognize(image)
        result.width, result.height = image.size
        return result

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.settings().items())})"


def split_line(text: str, box: Sequence[float], confidence: float) -> list[tuple[str, Box, float]]:
    """Split a recognised line into words with proportional boxes.

    Engines that box whole lines (rapidocr, easyocr) give ``text`` with spaces and one
    ``(x0, y0, x1, y1)`` pixel box. Each word gets the horizontal slice of the box in proportion to
    its character offset in ``text`` (spaces count as characters, so gaps land between words); all
    words share the line's top, bottom and ``confidence``. This is an approximation: it assumes
    equal-width characters on a horizontal line.
    """
    x0, y0, x1, y1 = (float(v) for v in box)
    n = len(text)
    out: list[tuple[str, Box, float]] = []
    pos = 0
    for word in text.split():
        start = text.index(word, pos)
        end = start + len(word)
        pos = end
        wx0 = x0 + (x1 - x0) * start / n
        wx1 = x0 + (x1 - x0) * end / n
        out.append(
            (
                word,
                (
                    math.floor(wx0),
                    math.floor(y0),
                    max(math.ceil(wx1), math.floor(wx0) + 1),
                    max(math.ceil(y1), math.floor(y0) + 1),
                ),
                float(confidence),
            )
        )
    return out


def quad_to_box(points: Sequence[Sequence[float]]) -> tuple[float, float, float, float]:
    """The axis-aligned ``(x0, y0, x1, y1)`` pixel box around a polygon of ``(x, y)`` points."""
    xs = [float(p[0]) for p in points]
    ys = [float(p[1]) for p in points]
    return min(xs), min(ys), max(xs), max(ys)


def preprocess(image: Image.Image, upscale: float = 1.0, binarize: bool = False, denoise: bool = False) -> Image.Image:
    """Grayscale page prepared for OCR: optional median denoise, upscale, Otsu binarisation.

    ``upscale`` multiplies both sides (Lanczos); callers divide the boxes they get by it. Denoise is a
    3x3 median filter applied before upscaling (it removes scanner speckle; at higher resolution the
    same filter would be too small). Binarisation uses Otsu's global threshold after upscaling.
    """
    import numpy as np
    from PIL import ImageFilter

    gray = image.convert("L")
    if denoise:
        gray = gray.filter(ImageFilter.MedianFilter(3))
    if upscale != 1.0:
        size = (max(1, round(gray.width * upscale)), max(1, round(gray.height * upscale)))
        gray = gray.resize(size, Image.Resampling.LANCZOS)
    if binarize:
        pixels = np.asarray(gray)
        hist = np.bincount(pixels.ravel(), minlength=256).astype(np.float64)
        levels = np.arange(256)
        weight0 = np.cumsum(hist)
        mean0 = np.cumsum(hist * levels)
        total, total_mean = weight0[-1], mean0[-1]
        weight1 = total - weight0
        with np.errstate(divide="ignore", invalid="ignore"):
            between = (total_mean * weight0 / total - mean0) ** 2 / (weight0 * weight1)
        between = np.nan_to_num(between[:-1], nan=-1.0)
        if between.max() > 0:  # a page of one grey level has nothing to separate: left as it is
            threshold = int(np.argmax(between))
            gray = Image.fromarray(np.where(pixels > threshold, 255, 0).astype(np.uint8))
    return gray
