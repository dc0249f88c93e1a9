"""What every dataset reader shares: the bad-input policy, JSON and box parsing, image opening, counts.

Two kinds of counts, kept apart on purpose:
- ``reader.repairs`` (a ``RepairLog``) is for *bad input*: invalid JSON, a missing key, an unknown label,
  an unreadable image, a box outside its page. Strict: the first one raises ``DataError`` naming the file
  and the field. Lenient: the sample (or the one entity, line or word) is repaired or skipped and counted.
- ``reader.stats`` (a ``Counter``) is for *known properties of a release* that are not errors and must
  not stop a strict run, such as FUNSD's 890 words with empty text, SROIE entity values that do not
  occur in the OCR, DocVQA answers not found as a word span. They are counted and logged, never silent.

Readers pass word boxes through unchanged: the encoder already clips boxes to the page and swaps
inverted corners, with counts. In strict mode a reader checks boxes against the page size itself, so the
error names the raw field (``form[3].words[2].box``) instead of the encoder's ``boxes[17]``.
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence

from PIL import Image

from ..document import Document
from ..images import DEFAULT_MAX_PIXELS, load_image
from ..repairs import RepairLog

log = logging.getLogger("docalign.data")

Box = tuple[float, float, float, float]
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".pdf")


class Reader:
    """Base of the dataset readers.

    Args:
        root: the release folder (layout documented per reader).
        strict: raise ``DataError`` on the first bad sample instead of repairing or skipping it.
        repairs: a ``RepairLog`` to count into (shared with the encoder by the DataModules); when given,
            its own ``strict`` setting wins over ``strict``.
        max_pixels: the image loader's pixel limit (width x height; None: no limit).

    Subclasses implement ``files(split)`` (the sample keys of a split, sorted), ``read_file(key)``
    (one ``Document`` or None when skipped) and ``dependencies(key)`` (the raw files a sample reads,
    for cache keys).
    """

    splits: tuple[str, ...] = ()

    def __init__(
        self,
        root: str | Path,
        *,
        strict: bool = False,
        repairs: Optional[RepairLog] = None,
        max_pixels: Optional[int] = DEFAULT_MAX_PIXELS,
    ) -> None:
        self.root = Path(root).expanduser()
        self.repairs = repairs if repairs is not None else RepairLog(strict=strict)
        self.stats: Counter[str] = Counter()
        self.max_pixels = max_pixels

    @property
    def strict(self) -> bool:
        return self.repairs.strict

    # --- the interface ----------------------------------------------------------------------------
    def files(self, split: str) -> list[Any]:
        raise NotImplementedError

    def read_file(self, key: Any) -> Optional[Document]:
        raise NotImplementedError

    def dependencies(self, key: Any) -> list[Path]:
        raise NotImplementedError

    def read_files(self, keys: Iterable[Any]) -> Iterator[Document]:
        """The documents of ``keys`` in order, lazily; skipped samples are counted, not yielded."""
        for key in keys:
            doc = self.read_file(key)
            if doc is not None:
                self.stats["documents"] += 1
                yield doc

    def read(self, split: str) -> Iterator[Document]:
        """All documents of ``split`` in a fixed (sorted) order, lazily."""
        before = self.repairs.snapshot()
        yield from self.read_files(self.files(split))
        self.log_summary(split, before)

    def log_summary(self, what: str, before=None) -> None:
        """The reader's counts, and its repairs (those since ``before``, a ``RepairLog.snapshot()``, if given)."""
        if self.stats:
            log.info(
                "%s %s: %s", type(self).__name__, what, ", ".join(f"{k}: {v}" for k, v in sorted(self.stats.items()))
            )
        (self.repairs.since(*before) if before is not None else self.repairs).warn(f"{type(self).__name__} {what}")

    def check_split(self, split: str) -> None:
        if split not in self.splits:
            raise ValueError(f"{type(self).__name__} has splits {', '.join(self.splits)}; got {split!r}")

    # --- helpers for subclasses -------------------------------------------------------------------
    def read_json(self, path: Path, field: str = "json") -> Optional[Any]:
        """Parsed JSON of ``path``, or None (counted) when the file is missing, empty, truncated or invalid."""
        try:
            text = path.read_bytes().decode("utf-8-sig")
        except FileNotFoundError:
            self.repairs.report(str(path), field, "file not found", "skip the document")
            return None
        except (OSError, UnicodeDecodeError) as err:
            self.repairs.report(str(path), field, f"cannot be read ({type(err).__name__}: {err})", "skip the document")
            return None
        if not text.strip():
            self.repairs.report(str(path), field, "empty file", "skip the document")
            return None
        try:
            return json.loads(text)
        except json.JSONDecodeError as err:
            self.repairs.report(str(path), field, f"invalid or truncated JSON ({err})", "skip the document")
            return None

    def confined_path(
        self, base: Path, relative: Any, where: str, field: str, repair: str = "skip the document"
    ) -> Optional[Path]:
        """``base / relative`` for a path read from an annotation file, or None (counted) when it could leave
        ``base``: absolute paths, ``..`` components, and paths whose resolved location (symbolic links
        followed) is outside the resolved ``base`` are refused naming the file and the field."""
        text = str(relative)
        if not text.strip() or "\0" in text:
            self.repairs.report(where, field, f"empty or invalid path {text[:80]!r}", repair)
            return None
        pure = PurePosixPath(text.replace("\\", "/"))
        if pure.is_absolute() or PureWindowsPath(text).drive or ".." in pure.parts:
            self.repairs.report(
                where,
                field,
                f"path {text[:80]!r} leaves the dataset folder {base} "
                "(absolute or with '..'); paths in annotations are relative to it",
                repair,
            )
            return None
        path = base / pure
        try:
            inside = path.resolve().is_relative_to(base.resolve())
        except (OSError, RuntimeError, ValueError):  # a symlink loop, an invalid name
            inside = False
        if not inside:
            self.repairs.report(where, field, f"path {text[:80]!r} resolves outside the dataset folder {base}", repair)
            return None
        return path

    def open_image(self, path: Path, where: str, field: str = "image") -> Optional[Image.Image]:
        """The page image as RGB, or None (counted) when unusable; see ``docalign.data.images``."""
        return load_image(
            path, repairs=self.repairs, where=where, field=f"{field} ({path.name})", max_pixels=self.max_pixels
        )

    def parse_box(self, value: Any, where: str, field: str, repair: str = "skip the word") -> Optional[Box]:
        """``[x0, y0, x1, y1]`` (4 finite numbers, pixels) or None (counted) when malformed."""
        if isinstance(value, (list, tuple)) and len(value) == 4:
            try:
                box = tuple(float(v) for v in value)
            except (TypeError, ValueError):
                box = None
            if box is not None and all(math.isfinite(v) for v in box):
                return box  # type: ignore[return-value]
        self.repairs.report(where, field, f"box must be 4 finite numbers, got {value!r}", repair)
        return None

    def check_boxes(self, where: str, fields: Sequence[str], boxes: Sequence[Box], size: tuple[int, int]) -> None:
        """Strict mode only: raise on an inverted box or one outside the ``size`` page.

        Lenient mode leaves boxes untouched: the encoder clips and swaps them and counts each repair.
        """
        if not self.strict:
            return
        width, height = size
        for name, (x0, y0, x1, y1) in zip(fields, boxes):
            if x1 < x0 or y1 < y0:
                self.repairs.report(
                    where,
                    name,
                    f"inverted box {[x0, y0, x1, y1]} (x1 < x0 or y1 < y0)",
                    "let the encoder swap its corners",
                )
            if x0 < 0 or y0 < 0 or x1 > width or y1 > height:
                self.repairs.report(
                    where,
                    name,
                    f"box {[x0, y0, x1, y1]} outside the {width}x{height} image",
                    "let the encoder clip it to the page",
                )

    def require_words(self, where: str, words: Sequence[str], repair: str = "skip the document") -> bool:
        """Report a page with no words; True when there are words."""
        if words:
            return True
        self.repairs.report(where, "words", "no words on the page", repair)
        return False


def word_text(text: Any, where: str, field: str, repairs: RepairLog, stats: Any) -> Optional[str]:
    """A word's text, stripped; None for a word to skip: not a string (reported at ``field``, with the
    repair "skip the word") or blank (counted in ``stats["empty words skipped"]``, a known property of
    the releases, not an error)."""
    if not isinstance(text, str):
        repairs.report(where, field, f"missing or not a string: {text!r}", "skip the word")
        return None
    if not text.strip():
        stats["empty words skipped"] += 1
        return None
    return text.strip()


def find_image(folder: Path, stem: str, suffixes: Sequence[str] = IMAGE_SUFFIXES) -> Path:
    """``folder/stem.<suffix>`` for the first suffix that exists (upper case too); the ``.png`` path if none."""
    for suffix in suffixes:
        for candidate in (folder / f"{stem}{suffix}", folder / f"{stem}{suffix.upper()}"):
            if candidate.is_file():
                return candidate
    return folder / f"{stem}{suffixes[0]}"


def points_to_box(xs: Sequence[float], ys: Sequence[float]) -> Box:
    """The axis-aligned box (x0, y0, x1, y1) around a polygon's points (a rotated quad's hull)."""
    return (min(xs), min(ys), max(xs), max(ys))


def union_box(boxes: Sequence[Box]) -> Box:
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))


def split_line_box(box: Box, words: Sequence[str], text: str) -> list[Box]:
    """Boxes of ``words`` estimated from their line's ``box`` in proportion to character offsets.

    ``words`` are ``text.split()``; each word gets the horizontal slice of the line box that its characters
    occupy in ``text`` (monospace approximation) and the line's full height.
    """
    x0, y0, x1, y1 = box
    length = max(len(text), 1)
    out, start = [], 0
    for word in words:
        begin = text.index(word, start)
        end = begin + len(word)
        out.append((x0 + (x1 - x0) * begin / length, y0, x0 + (x1 - x0) * end / length, y1))
        start = end
    return out


def alnum_key(text: str) -> str:
    """Matching key: upper-case letters and digits only (``"RM 9.00"`` -> ``"RM900"``)."""
    return "".join(ch for ch in text.upper() if ch.isalnum())


def find_spans(
    words: Sequence[str], value: str, key: Callable[[str], str] = alnum_key, exact_only: bool = False
) -> list[tuple[int, int, bool]]:
    """Word spans ``(first, last, exact)`` (inclusive) whose text contains ``value``.

    Words and value are compared through ``key`` (default: letters and digits, upper case), so spacing,
    punctuation and line breaks do not matter. A span is *exact* when its key equals the value's key;
    otherwise the value lies inside it (e.g. ``"9.00"`` in ``"RM9.00"``) and the span is minimal: dropping
    its first or last word loses the match. ``exact_only`` keeps only exact spans. Returns [] for an
    empty value.
    """
    target = key(value)
    if not target:
        return []
    keys = [key(w) for w in words]
    spans = []
    for i, first in enumerate(keys):
        if not first:
            continue
        acc = ""
        for j in range(i, len(keys)):
            acc += keys[j]
            if target in acc:
                if target not in acc[len(first) :]:  # the match needs word i: the span is minimal
                    exact = acc == target
                    if exact or not exact_only:
                        spans.append((i, j, exact))
                break
            if len(acc) >= len(first) + len(target):  # a match starting in word i would have ended already
                break
    return spans
