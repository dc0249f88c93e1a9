"""CORD v2 (Park et al., 2019): Indonesian receipts, 30 entity categories (61 BIO tags).

Two sources yield the same records; ``parse_cord_ground_truth`` handles the parsed ground-truth dict of
both:

- the raw release layout under ``root``: ``{train,dev,test}/json/<name>.json`` and
  ``{train,dev,test}/image/<name>.png`` (``dev`` is the validation split), read by ``CORDReader``;
- the hub copy ``naver-clova-ix/cord-v2`` (parquet; columns ``image`` and ``ground_truth``, a JSON
  string; splits train/validation/test), read by ``CORDHubReader`` through ``datasets``.

Ground truth: ``{"valid_line": [{"category": "menu.nm", "words": [{"quad": {"x1": .., "y1": .., ...,
"x4": .., "y4": ..}, "text": "...", "is_key": 0|1, ...}], "group_id": .., ...}], "meta": {"image_size":
{"width": W, "height": H}, ...}, ...}``; quads are in pixels of a ``W x H`` image.

Labelling (as in LayoutLMv3's CORD data): every word of a line gets the line's category, ``B-`` on the
first word and ``I-`` after; category ``other`` gives ``O``. A word's box is the axis-aligned hull of its
quad (``segment_boxes``: the hull of its line). Words with blank text are skipped
(``stats["empty words skipped"]``). When the image's size differs from ``meta.image_size`` the boxes are
scaled to the image (``stats["boxes scaled to the image size"]``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator, Optional

from PIL import Image

from ..document import Document
from ..images import DEFAULT_MAX_PIXELS
from ..labels import CORD_CATEGORIES, bio_label_names, bio_tags
from ..repairs import RepairLog
from .base import Box, Reader, find_image, points_to_box, union_box, word_text
from .hub import require_hub_dataset

CORD_LABELS: list[str] = bio_label_names(CORD_CATEGORIES)
CORD_OTHER = "other"
CORD_HUB_ID = "naver-clova-ix/cord-v2"
CORD_FOLDERS = {"train": "train", "val": "dev", "test": "test"}
CORD_HUB_SPLITS = {"train": "train", "val": "validation", "test": "test"}
_QUAD_KEYS = ("x1", "y1", "x2", "y2", "x3", "y3", "x4", "y4")


def parse_cord_ground_truth(
    gt: Any,
    where: str,
    repairs: RepairLog,
    stats: Any,
    image_size: Optional[tuple[int, int]] = None,
    segment_boxes: bool = False,
) -> Optional[tuple[list[str], list[Box], list[str], list[str]]]:
    """``(words, boxes, labels, fields)`` of one CORD ground-truth dict; None when the record is skipped.

    Args:
        gt: the parsed JSON (a raw ``json/*.json`` file or the hub's ``ground_truth`` string, decoded).
        where: the file or hub row named in messages.
        repairs: bad input is reported here (strict: raised).
        stats: a ``Counter`` of non-error counts.
        image_size: (width, height) of the actual image in pixels; boxes are scaled to it when
            ``meta.image_size`` differs.
        segment_boxes: every word gets the box of its whole line.
    """
    if not isinstance(gt, dict):
        repairs.report(where, "ground_truth", f"not a JSON object but {type(gt).__name__}", "skip the document")
        return None
    lines = gt.get("valid_line")
    if not isinstance(lines, list):
        repairs.report(where, "valid_line", "missing or not a list", "skip the document")
        return None
    sx, sy = _scale(gt, where, repairs, stats, image_size)
    words: list[str] = []
    boxes: list[Box] = []
    labels: list[str] = []
    fields: list[str] = []
    for i, line in enumerate(lines):
        if not isinstance(line, dict) or not isinstance(line.get("words"), list):
            repairs.report(where, f"valid_line[{i}].words", "missing or not a list", "skip the line")
            continue
        category = line.get("category")
        if category == CORD_OTHER:
            category = None
        elif category not in CORD_CATEGORIES:
            reason = "missing" if category is None else f"unknown category {category!r}"
            repairs.report(where, f"valid_line[{i}].category", reason, "label its words 'O'")
            category = None
        kept: list[tuple[str, Box, str]] = []
        for j, word in enumerate(line["words"]):
            field = f"valid_line[{i}].words[{j}]"
            text = word_text(
                word.get("text") if isinstance(word, dict) else None, where, f"{field}.text", repairs, stats
            )
            if text is None:
                continue
            quad = word.get("quad")
            try:
                xs = [float(quad[k]) * sx for k in _QUAD_KEYS[0::2]]
                ys = [float(quad[k]) * sy for k in _QUAD_KEYS[1::2]]
            except (TypeError, KeyError, ValueError):
                repairs.report(where, f"{field}.quad", f"needs numbers x1..x4, y1..y4, got {quad!r}", "skip the word")
                continue
            kept.append((text, points_to_box(xs, ys), f"{field}.quad"))
        if not kept:
            stats["lines without words"] += 1
            continue
        line_box = union_box([b for _, b, _ in kept])
        words += [w for w, _, _ in kept]
        boxes += [line_box if segment_boxes else b for _, b, _ in kept]
        fields += [f for _, _, f in kept]
        labels += bio_tags(category, len(kept))
    stats["words"] += len(words)
    if not words:
        repairs.report(where, "valid_line", "no words on the page", "skip the document")
        return None
    return words, boxes, labels, fields


def _scale(
    gt: dict, where: str, repairs: RepairLog, stats: Any, image_size: Optional[tuple[int, int]]
) -> tuple[float, float]:
    """Factors from ``meta.image_size`` to the actual image (1, 1 when either is unknown)."""
    meta_size = (gt.get("meta") or {}).get("image_size") if isinstance(gt.get("meta"), dict) else None
    if meta_size is None:
        stats["no meta.image_size"] += 1
    if meta_size is None or image_size is None:
        return 1.0, 1.0
    try:
        width, height = float(meta_size["width"]), float(meta_size["height"])
        assert width > 0 and height > 0
    except (TypeError, KeyError, ValueError, AssertionError):
        repairs.report(
            where, "meta.image_size", f"needs positive width and height, got {meta_size!r}", "use the image's own size"
        )
        return 1.0, 1.0
    if (width, height) == tuple(map(float, image_size)):
        return 1.0, 1.0
    stats["boxes scaled to the image size"] += 1
    return image_size[0] / width, image_size[1] / height


class CORDReader(Reader):
    """Reads the raw CORD release folder (``root/{train,dev,test}/{json,image}``; see the module docstring).

    Args:
        root: the folder holding ``train/``, ``dev/`` and ``test/``.
        segment_boxes: every word gets its line's box.
        strict, repairs, max_pixels: see ``Reader``.
    """

    splits = ("train", "val", "test")

    def __init__(self, root: str | Path, *, segment_boxes: bool = False, **kwargs: Any) -> None:
        super().__init__(root, **kwargs)
        self.segment_boxes = segment_boxes

    def files(self, split: str) -> list[Path]:
        self.check_split(split)
        folder = self.root / CORD_FOLDERS[split] / "json"
        if not folder.is_dir():
            raise FileNotFoundError(
                f"CORD {split} annotations not found: {folder} is not a folder (root={self.root}; "
                f"expected train/, dev/, test/ each with json/ and image/)"
            )
        return sorted(folder.glob("*.json"))

    def image_path(self, annotation: Path) -> Path:
        return find_image(annotation.parent.parent / "image", annotation.stem)

    def dependencies(self, annotation: Path) -> list[Path]:
        return [annotation, self.image_path(annotation)]

    def read_file(self, path: Path) -> Optional[Document]:
        gt = self.read_json(path)
        if gt is None:
            return None
        image = self.open_image(self.image_path(path), str(path))
        if image is None:
            return None
        return _document(gt, image, path.stem, str(path), self)


def _document(gt: Any, image: Image.Image, doc_id: str, where: str, reader: Reader) -> Optional[Document]:
    parsed = parse_cord_ground_truth(
        gt, where, reader.repairs, reader.stats, image.size, segment_boxes=getattr(reader, "segment_boxes", False)
    )
    if parsed is None:
        return None
    words, boxes, labels, fields = parsed
    reader.check_boxes(where, fields, boxes, image.size)
    return Document(doc_id=doc_id, image=image, words=words, boxes=boxes, word_labels=labels, source=where)


class CORDHubReader(Reader):
    """Reads the hub copy of CORD v2 through ``datasets`` (parquet; needs the hub or its local cache).

    Offline (``HF_HUB_OFFLINE=1``) with nothing cached, construction fails at once with a ``DataError``
    that says what could not be fetched and how to read the raw release folder instead.

    Args:
        hub_id: the dataset repository (default ``naver-clova-ix/cord-v2``).
        revision: a branch, tag or commit of it (None: the default branch).
        segment_boxes, strict, repairs, max_pixels: see ``CORDReader``.
    """

    splits = ("train", "val", "test")

    def __init__(
        self,
        hub_id: str = CORD_HUB_ID,
        *,
        revision: Optional[str] = None,
        segment_boxes: bool = False,
        strict: bool = False,
        repairs: Optional[RepairLog] = None,
        max_pixels: Optional[int] = DEFAULT_MAX_PIXELS,
    ) -> None:
        super().__init__(".", strict=strict, repairs=repairs, max_pixels=max_pixels)
        self.hub_id, self.revision, self.segment_boxes = hub_id, revision, segment_boxes
        check_hub_dataset(hub_id, revision)

    def _split(self, split: str) -> Any:
        from datasets import load_dataset

        return load_dataset(self.hub_id, split=CORD_HUB_SPLITS[split], revision=self.revision)

    def read(self, split: str) -> Iterator[Document]:
        self.check_split(split)
        for i, row in enumerate(self._split(split)):
            where = f"{self.hub_id}[{CORD_HUB_SPLITS[split]}][{i}]"
            try:
                gt = json.loads(row["ground_truth"])
            except (TypeError, KeyError, json.JSONDecodeError) as err:
                self.repairs.report(where, "ground_truth", f"not a JSON string ({err})", "skip the document")
                continue
            image = row.get("image")
            if not isinstance(image, Image.Image):
                self.repairs.report(where, "image", "missing or not an image", "skip the document")
                continue
            doc = _document(gt, image.convert("RGB"), f"{CORD_HUB_SPLITS[split]}-{i}", where, self)
            if doc is not None:
                self.stats["documents"] += 1
                yield doc
        self.log_summary(split)


def check_hub_dataset(hub_id: str, revision: Optional[str] = None) -> None:
    """Fail fast when the dataset ``hub_id`` cannot be had: offline and not in the local hub cache (a local
    folder of parquet files always passes; see ``readers.hub``)."""
    require_hub_dataset(
        hub_id,
        revision,
        "Read the raw CORD release folder instead (train/, dev/, test/ with json/ "
        "and image/): `--data.init_args.root /path/to/CORD` or set DOCALIGN_CORD.",
    )
