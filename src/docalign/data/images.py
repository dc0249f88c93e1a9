"""Opening page images robustly: any common mode -> RGB, EXIF orientation, a pixel limit, PDF pages.

``load_image`` is the one entry point the readers use. It returns an 8-bit RGB ``PIL.Image`` or, when
the file is bad and the ``RepairLog`` is lenient, ``None`` after counting the skip; a strict log (or no
log at all) raises ``DataError`` naming the file and the field instead.

What it handles:
- modes ``1``, ``L``, ``P``, ``RGB``, ``CMYK``, ``YCbCr``, ``LAB``, ``HSV`` convert to RGB silently; images
  with transparency (``RGBA``, ``LA``, ``PA``, ``P`` with a transparent colour) are composited on white,
  because a scanned page's transparent background is paper, not black;
- 16- and 32-bit modes (``I;16*``, ``I``, ``F``) are a repair: rescaled to 8 bits (``I;16``: divided by 257;
  ``I`` and ``F``: min-max over the image), reported, so a strict run stops on them;
- EXIF orientation is applied (``PIL.ImageOps.exif_transpose``), so annotations drawn on the upright
  page line up;
- ``max_pixels`` (width x height, default ``DEFAULT_MAX_PIXELS``) guards against decompression bombs:
  the size is read from the header before any pixel is decoded; ``None`` disables the check;
- zero-byte, missing, truncated or unidentifiable files;
- ``.pdf`` files: one page rendered with PyMuPDF at ``dpi`` dots per inch (size checked before rendering).
"""

from __future__ import annotations

import threading
import warnings
from pathlib import Path
from typing import Optional, Union

import numpy as np
from PIL import Image, ImageOps

from ..conventions import MAX_PAGE_PIXELS
from .repairs import DataError, RepairLog

# A 600-dpi A4 scan is 4960 x 7016 = 34.8 M pixels; twice that is still a page, not a bomb.
DEFAULT_MAX_PIXELS = MAX_PAGE_PIXELS
DEFAULT_PDF_DPI = 144
PDF_POINTS_PER_INCH = 72

_CONVERT_SILENTLY = {"1", "L", "P", "RGB", "CMYK", "YCbCr", "LAB", "HSV"}
_WITH_ALPHA = {"RGBA", "RGBa", "LA", "La", "PA"}
_PIL_LIMIT_LOCK = threading.Lock()

PathLike = Union[str, Path]


def load_image(
    path: PathLike,
    *,
    repairs: Optional[RepairLog] = None,
    where: Optional[str] = None,
    field: str = "image",
    max_pixels: Optional[int] = DEFAULT_MAX_PIXELS,
    page: int = 0,
    dpi: int = DEFAULT_PDF_DPI,
) -> Optional[Image.Image]:
    """Open ``path`` as an upright 8-bit RGB image.

    Args:
        path: an image file PIL can read, or a ``.pdf`` (page ``page``, 0-based, rendered at ``dpi``).
        repairs: where problems go; None behaves as a strict log (raise).
        where: the record named in messages (default: ``path``), e.g. the annotation file that refers
            to the image; the image's own path is always part of the message.
        field: the field named in messages (``image``, ``documents/xnbl0037_1.png`` ...).
        max_pixels: refuse pages with more than this many pixels (width x height); None: no limit.

    Returns:
        The image, or None when the file is bad and ``repairs`` is lenient (counted as a skipped document).

    Raises:
        DataError: the file is bad and ``repairs`` is strict or None.
    """
    path = Path(path)
    log = repairs if repairs is not None else RepairLog(strict=True)
    where = where or str(path)
    try:
        if not path.is_file():
            raise _Bad(f"image file {path} not found")
        if path.stat().st_size == 0:
            raise _Bad(f"image file {path} is empty (0 bytes)")
        if path.suffix.lower() == ".pdf":
            return render_pdf_page(path, page=page, dpi=dpi, max_pixels=max_pixels)
        image = _open_checked(path, max_pixels)
    except _Bad as err:
        log.report(where, field, str(err), "skip the document")
        return None
    return _to_rgb(image, path, where, field, log)


class _Bad(DataError):
    """An unusable file; ``load_image`` turns it into a report naming the record and the field."""


def _open_checked(path: Path, max_pixels: Optional[int]) -> Image.Image:
    """Read the header, check the pixel count, then decode (EXIF orientation applied)."""
    try:
        # PIL's own bomb check (a module global) is replaced by ours for this call: hold a lock so that
        # concurrent threads never see the global changed.
        with _PIL_LIMIT_LOCK:
            saved = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = None
            try:
                handle = Image.open(path)
            finally:
                Image.MAX_IMAGE_PIXELS = saved
        with handle:
            width, height = handle.size
            if max_pixels is not None and width * height > max_pixels:
                raise _Bad(
                    f"image {path} has {width}x{height} = {width * height:,} pixels, over the limit of "
                    f"{max_pixels:,} (max_pixels; a decompression bomb or a wrong file?)"
                )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                handle.load()
                upright = ImageOps.exif_transpose(handle)
            return upright if upright is not handle else handle.copy()
    except _Bad:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise _Bad(f"image {path} cannot be read ({type(err).__name__}: {err})") from err


def _to_rgb(image: Image.Image, path: Path, where: str, field: str, log: RepairLog) -> Image.Image:
    mode = image.mode
    if mode == "RGB":
        return image
    if mode == "P" and "transparency" in image.info:
        image, mode = image.convert("RGBA"), "RGBA"
    if mode in _WITH_ALPHA:
        rgba = image.convert("RGBA")
        page = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(page, rgba).convert("RGB")
    if mode in _CONVERT_SILENTLY:
        return image.convert("RGB")
    # High bit depth (16-bit PNG/TIFF scans, float images): PIL's convert would clip at 255.
    log.report(where, field, f"image {path} has mode {mode!r} (more than 8 bits per pixel)", "rescale it to 8 bits")
    pixels = np.asarray(image, dtype=np.float64)
    if mode.startswith("I;16"):
        scaled = pixels / 257.0
    else:
        low, high = float(pixels.min()), float(pixels.max())
        scaled = (pixels - low) * (255.0 / (high - low)) if high > low else np.zeros_like(pixels)
    gray = Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), mode="L")
    return gray.convert("RGB")


def render_pdf_page(
    path: PathLike, page: int = 0, dpi: int = DEFAULT_PDF_DPI, max_pixels: Optional[int] = DEFAULT_MAX_PIXELS
) -> Image.Image:
    """Render page ``page`` (0-based) of a PDF at ``dpi`` dots per inch to an RGB image.

    The output is ``round(width_pt * dpi / 72) x round(height_pt * dpi / 72)`` pixels (PDF sizes are in
    points of 1/72 inch). Raises ``_Bad`` (via ``load_image``: ``DataError`` or a counted skip) for an
    unreadable PDF, a missing page or a page over ``max_pixels``; called directly, it raises ``DataError``.
    """
    try:
        import pymupdf
    except ImportError:  # older PyMuPDF releases only have the ``fitz`` name
        import fitz as pymupdf
    path = Path(path)
    try:
        document = pymupdf.open(path)
    except Exception as err:  # noqa: BLE001 - PyMuPDF raises several unrelated types for bad files
        raise _Bad(f"PDF {path} cannot be opened ({type(err).__name__}: {err})") from err
    with document:
        if not 0 <= page < document.page_count:
            raise _Bad(f"PDF {path} has {document.page_count} page(s); page {page} (0-based) does not exist")
        pdf_page = document[page]
        zoom = dpi / PDF_POINTS_PER_INCH
        width, height = round(pdf_page.rect.width * zoom), round(pdf_page.rect.height * zoom)
        if max_pixels is not None and width * height > max_pixels:
            fits = int(dpi * (max_pixels / (width * height)) ** 0.5)
            raise _Bad(
                f"PDF {path} page {page} at {dpi} dpi would be {width}x{height} = {width * height:,} "
                f"pixels, over the limit of {max_pixels:,} (max_pixels; lower the dpi: {fits} dpi or less would fit)"
            )
        try:
            pixmap = pdf_page.get_pixmap(matrix=pymupdf.Matrix(zoom, zoom), alpha=False, colorspace=pymupdf.csRGB)
        except Exception as err:  # noqa: BLE001
            raise _Bad(f"PDF {path} page {page} cannot be rendered ({type(err).__name__}: {err})") from err
        return Image.frombytes("RGB", (pixmap.width, pixmap.height), pixmap.samples)


def pdf_page_count(path: PathLike) -> int:
    """The number of pages of a PDF (``DataError`` naming the file when it cannot be opened)."""
    try:
        import pymupdf
    except ImportError:  # older PyMuPDF releases only have the ``fitz`` name
        import fitz as pymupdf
    try:
        with pymupdf.open(Path(path)) as document:
            return document.page_count
    except Exception as err:  # noqa: BLE001 - PyMuPDF raises several unrelated types for bad files
        raise DataError(f"PDF {path} cannot be opened ({type(err).__name__}: {err})") from err


__all__ = ["DEFAULT_MAX_PIXELS", "DEFAULT_PDF_DPI", "DataError", "load_image", "pdf_page_count", "render_pdf_page"]
