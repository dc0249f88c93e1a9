"""``docalign ocr``: OCR a folder of page images into the cache, in parallel.

    docalign ocr data/scans --engine tesseract --set psm=6 --cache-dir data/ocr_cache --workers 2

Pages: every ``.png``, ``.jpg``/``.jpeg``, ``.tif``/``.tiff`` (each frame of a multi-page TIFF is a page)
and, when PyMuPDF is installed, each page of a ``.pdf`` rendered at ``--pdf-dpi``. A page over ``--max-pixels``
(width x height, default ``MAX_PAGE_PIXELS`` = 80 M) is refused as a failed page, before it is rendered or
decoded, with the resolution that would fit (it is not silently shrunk: boxes stay in the pixels of the page
the readers render). Already cached pages cost a hash and a file read. Prints one summary line (pages,
failed, words, seconds, cache hits) and exits 1 when a page failed (each failure is reported on stderr with its file), 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

from PIL import Image

from ..conventions import MAX_PAGE_PIXELS
from . import DEFAULT_ENGINE, ENGINES, EngineUnavailable, get_engine, parse_value
from .cache import CachedEngine, OcrCache

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff"}
PDF_SUFFIX = ".pdf"


def default_cache_dir() -> Path:
    """``$DOCALIGN_OCR_CACHE``, else ``$XDG_CACHE_HOME/docalign/ocr`` (``~/.cache/docalign/ocr``)."""
    if os.environ.get("DOCALIGN_OCR_CACHE"):
        return Path(os.environ["DOCALIGN_OCR_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "docalign" / "ocr"


@dataclass(frozen=True)
class Page:
    """One page to OCR: ``index`` is the frame (TIFF) or page (PDF) number, 0-based."""

    path: Path
    index: int = 0
    pdf_dpi: int = 200
    max_pixels: Optional[int] = MAX_PAGE_PIXELS

    @property
    def page_id(self) -> str:
        multi_page = self.path.suffix.lower() in (PDF_SUFFIX, ".tif", ".tiff")
        return f"{self.path}#{self.index + 1}" if multi_page else str(self.path)

    def load(self) -> Image.Image:
        """The page as a PIL image (PDF pages rendered at ``pdf_dpi`` dots per inch, RGB).

        A page over ``max_pixels`` (width x height; None: no limit) is refused before it is rendered or decoded
        (``PageTooLarge``, naming the page, its size and, for a PDF, the resolution that would fit).
        """
        if self.path.suffix.lower() == PDF_SUFFIX:
            import fitz  # PyMuPDF

            with fitz.open(self.path) as pdf:
                page = pdf[self.index]
                zoom = self.pdf_dpi / 72
                width, height = round(page.rect.width * zoom), round(page.rect.height * zoom)
                if self.max_pixels is not None and width * height > self.max_pixels:
                    fits = int(self.pdf_dpi * (self.max_pixels / (width * height)) ** 0.5)
                    raise PageTooLarge(
                        f"at {self.pdf_dpi} dpi the page would be {width}x{height} = {width * height:,} pixels, over "
                        f"the limit of {self.max_pixels:,} (--max-pixels); --pdf-dpi {fits} or less would fit"
                    )
                pix = page.get_pixmap(matrix=fitz.Matrix(zoom, zoom), alpha=False)
                return Image.frombytes("RGB", (pix.width, pix.height), pix.samples)
        with Image.open(self.path) as im:  # PIL reads the size from the header; nothing is decoded yet
            im.seek(self.index)
            width, height = im.size
            if self.max_pixels is not None and width * height > self.max_pixels:
                raise PageTooLarge(
                    f"the image is {width}x{height} = {width * height:,} pixels, over the limit of "
                    f"{self.max_pixels:,} (--max-pixels; a decompression bomb or a wrong file?)"
                )
            im.load()
            return im.copy()


class PageTooLarge(ValueError):
    """A page over the pixel limit; ``docalign ocr`` reports it as a failed page with its file."""


def find_pages(
    folder: Path, recursive: bool = False, pdf_dpi: int = 200, max_pixels: Optional[int] = MAX_PAGE_PIXELS
) -> tuple[list[Page], list[str]]:
    """The pages under ``folder`` in sorted path order, and the problems found while listing them."""
    files = sorted(p for p in (folder.rglob("*") if recursive else folder.iterdir()) if p.is_file())
    pages: list[Page] = []
    problems: list[str] = []
    for path in files:
        suffix = path.suffix.lower()
        try:
            if suffix in (".tif", ".tiff"):
                with Image.open(path) as im:
                    pages += [Page(path, i, max_pixels=max_pixels) for i in range(getattr(im, "n_frames", 1))]
            elif suffix in IMAGE_SUFFIXES:
                pages.append(Page(path, max_pixels=max_pixels))
            elif suffix == PDF_SUFFIX:
                try:
                    import fitz  # PyMuPDF
                except ImportError:
                    problems.append(f"{path}: PDF pages need PyMuPDF (pip install pymupdf); skipped")
                    continue
                with fitz.open(path) as pdf:
                    pages += [Page(path, i, pdf_dpi, max_pixels) for i in range(pdf.page_count)]
        except Exception as err:  # noqa: BLE001 - reported and counted, never silent
            problems.append(f"{path}: cannot open ({type(err).__name__}: {err}); skipped")
    return pages, problems


# --- worker side: one engine per process, built once ------------------------------------------------
_ENGINE: Optional[CachedEngine] = None


def _init_worker(engine: str, settings: dict[str, Any], cache_dir: str, threads: Optional[int]) -> None:
    global _ENGINE
    if threads:  # before any engine library is imported, so torch / OpenMP / onnxruntime see it
        os.environ["OMP_NUM_THREADS"] = os.environ["OMP_THREAD_LIMIT"] = str(threads)
    _ENGINE = CachedEngine(get_engine(engine, **settings), OcrCache(cache_dir))


def _ocr_page(page: Page) -> tuple[str, int, bool, Optional[str]]:
    """(page id, words, cache hit, error message or None) of one page."""
    assert _ENGINE is not None
    try:
        image = page.load()
    except PageTooLarge as err:
        return page.page_id, 0, False, f"refused: {err}"
    except Exception as err:  # noqa: BLE001
        return page.page_id, 0, False, f"cannot read image ({type(err).__name__}: {err})"
    try:
        result = _ENGINE(image)
    except EngineUnavailable:
        raise
    except Exception as err:  # noqa: BLE001
        return page.page_id, 0, False, f"OCR failed ({type(err).__name__}: {err})"
    return page.page_id, len(result), _ENGINE.last_hit, None


def _results(pages: Sequence[Page], workers: int, init_args: tuple) -> Iterator[tuple[str, int, bool, Optional[str]]]:
    if workers <= 1:
        _init_worker(*init_args)
        for page in pages:
            yield _ocr_page(page)
        return
    with ProcessPoolExecutor(
        workers, mp_context=get_context("spawn"), initializer=_init_worker, initargs=init_args
    ) as pool:
        for future in as_completed([pool.submit(_ocr_page, p) for p in pages]):
            yield future.result()


def run(
    folder: str | Path,
    engine: str = DEFAULT_ENGINE,
    settings: Optional[dict[str, Any]] = None,
    cache_dir: str | Path | None = None,
    workers: int = 1,
    recursive: bool = False,
    pdf_dpi: int = 200,
    progress: bool = True,
    max_pixels: Optional[int] = MAX_PAGE_PIXELS,
) -> dict[str, Any]:
    """OCR every page under ``folder`` into the cache; returns the summary as a dict.

    Summary keys: ``pages`` (found), ``done``, ``failed``, ``words``, ``seconds`` (wall clock),
    ``cache_hits``, ``engine``, ``cache_dir``, ``errors`` (list of "page: message").
    """
    from tqdm import tqdm

    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder}: not a folder")
    settings = dict(settings or {})
    get_engine(engine, **settings)  # bad name or setting: fail before starting workers
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    pages, errors = find_pages(folder, recursive, pdf_dpi, max_pixels)
    if not pages and not errors:
        raise ValueError(f"{folder}: no page images ({', '.join(sorted(IMAGE_SUFFIXES | {PDF_SUFFIX}))})")
    workers = max(1, min(workers, len(pages) or 1))
    threads = max(1, (os.cpu_count() or 1) // workers) if workers > 1 else None
    summary: dict[str, Any] = {
        "pages": len(pages),
        "done": 0,
        "failed": len(errors),
        "words": 0,
        "cache_hits": 0,
        "engine": engine,
        "settings": settings,
        "cache_dir": str(cache_dir),
    }
    start = time.perf_counter()
    bar = tqdm(total=len(pages), unit="page", desc=f"ocr {engine}", disable=not progress, file=sys.stderr)
    for page_id, words, hit, error in _results(pages, workers, (engine, settings, str(cache_dir), threads)):
        if error:
            summary["failed"] += 1
            errors.append(f"{page_id}: {error}")
        else:
            summary["done"] += 1
            summary["words"] += words
            summary["cache_hits"] += int(hit)
        bar.update(1)
        bar.set_postfix(hits=summary["cache_hits"], refresh=False)
    bar.close()
    summary["seconds"] = round(time.perf_counter() - start, 2)
    summary["errors"] = errors
    return summary


def format_summary(s: dict[str, Any]) -> str:
    """The one-line summary ``docalign ocr`` prints."""
    return (
        f"docalign ocr: {s['pages']} pages, {s['done']} done, {s['failed']} failed, {s['words']} words, "
        f"{s['seconds']:.1f} s, cache hits {s['cache_hits']}/{s['done']} "
        f"(engine {s['engine']}, cache {s['cache_dir']})"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="docalign ocr", description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", help="folder of page images (png, jpg, tif) and PDFs")
    parser.add_argument("--engine", default=DEFAULT_ENGINE, choices=sorted(ENGINES))
    parser.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="engine setting, repeatable (e.g. --set psm=6 --set upscale=2)",
    )
    parser.add_argument("--cache-dir", default=None, help=f"cache folder (default: {default_cache_dir()})")
    parser.add_argument("--workers", type=int, default=1, help="parallel processes (default 1)")
    parser.add_argument("--recursive", action="store_true", help="also look in subfolders")
    parser.add_argument("--pdf-dpi", type=int, default=200, help="resolution of rendered PDF pages (dots per inch)")
    parser.add_argument(
        "--max-pixels",
        type=int,
        default=MAX_PAGE_PIXELS,
        help=f"refuse pages over this many pixels, width x height (default {MAX_PAGE_PIXELS:,}; PDF pages are "
        "checked before rendering, images before decoding; 0: no limit)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point (``docalign ocr ...``); returns the exit status."""
    args = build_parser().parse_args(argv)
    settings = {}
    for item in args.settings:
        key, eq, value = item.partition("=")
        if not eq:
            print(f"docalign ocr: error: --set {item!r} is not KEY=VALUE", file=sys.stderr)
            return 2
        settings[key] = parse_value(value)
    try:
        summary = run(
            args.folder,
            args.engine,
            settings,
            args.cache_dir,
            args.workers,
            args.recursive,
            args.pdf_dpi,
            progress=not args.no_progress,
            max_pixels=args.max_pixels or None,
        )
    except (ValueError, EngineUnavailable) as err:
        print(f"docalign ocr: error: {err}", file=sys.stderr)
        return 2
    for error in summary["errors"]:
        print(f"docalign ocr: {error}", file=sys.stderr)
    print(format_summary(summary))
    return 1 if summary["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
