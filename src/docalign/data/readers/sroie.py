"""SROIE task 3 (Huang et al., ICDAR 2019): scanned receipts, key information company/date/address/total.

Two layouts of the release are read, per split folder ``root/{train,test}``:

- the common one (SROIE2019)::

      img/<id>.jpg        receipt scan
      box/<id>.txt        OCR lines (``.csv`` also accepted)
      entities/<id>.txt   the key information, a JSON object (``.json`` also accepted)

- flat: ``<id>.jpg``, ``<id>.txt`` (OCR lines) and ``<id>.json`` (key information) side by side.

An OCR line is ``x1,y1,x2,y2,x3,y3,x4,y4,text`` (a quad in pixels, clockwise from top-left; the text may
itself contain commas). The key information is ``{"company": ..., "date": ..., "address": ..., "total":
...}``. Files are UTF-8; a file that is not is decoded as Latin-1 (``stats["decoded as latin-1"]``).

Words and labels: each line's text is split on whitespace; a word's box is the slice of its line's box
proportional to its characters' offsets (``segment_boxes``: the whole line box, as LayoutLMv3 uses). The
SROIE annotation gives entity *values*, not positions, so each value is located in the word sequence by
``find_spans`` (letters and digits only, case-insensitive, across line breaks). An exact span is
preferred; otherwise the shortest span containing it (``"9.00"`` inside ``"RM9.00"``). Company, address
and date take their first occurrence; total takes the last occurrence on a line with "TOTAL" in it, else
the last occurrence. A value that does not occur, or only where another entity already lies, is counted
in ``stats["entities not matched"]`` (and ``stats["<key> not matched"]``), not raised: it is a property of
the release, not bad input. Every other word is ``O``.

Hub copy, read by ``SROIEHubReader``: ``darentang/sroie`` (splits train/test; columns ``id``, ``words``, ``bboxes`` on
the 0-1000 grid, ``ner_tags`` ClassLabel ``O, B-COMPANY, I-COMPANY, B-DATE, I-DATE, B-ADDRESS, I-ADDRESS, B-TOTAL,
I-TOTAL`` and ``image_path``, a path on the machine that built the copy, never opened). Its words are already
tagged, so no value matching happens; tags map to ours by lower-casing the type (``B-COMPANY`` -> ``B-company``).
Without images, its pages are blank 1000 x 1000 images with the boxes in 0-1000 units (see
``readers.hub.TaggedHubReader``, which also lists the repairs; an ``image`` column, when a copy has one, is used).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from ..document import Document
from ..labels import bio_label_names
from .base import Box, Reader, alnum_key, find_image, find_spans, points_to_box, split_line_box
from .hub import TaggedHubReader

SROIE_CATEGORIES: tuple[str, ...] = ("company", "date", "address", "total")
SROIE_LABELS: list[str] = bio_label_names(SROIE_CATEGORIES)
SROIE_HUB_ID = "darentang/sroie"
_OCR_SUFFIXES = (".txt", ".csv")
_ENTITY_SUFFIXES = (".txt", ".json")


class SROIEReader(Reader):
    """Reads SROIE task-3 folders (see the module docstring for layouts, box estimation and matching).

    Args:
        root: the folder holding ``train/`` and ``test/``.
        segment_boxes: every word gets its OCR line's box.
        strict, repairs, max_pixels: see ``Reader``.
    """

    splits = ("train", "test")

    def __init__(self, root: str | Path, *, segment_boxes: bool = False, **kwargs: Any) -> None:
        super().__init__(root, **kwargs)
        self.segment_boxes = segment_boxes

    # --- layout -----------------------------------------------------------------------------------
    def _nested(self, ocr: Path) -> bool:
        return ocr.parent.name == "box"

    def files(self, split: str) -> list[Path]:
        """The split's OCR files, sorted by name."""
        self.check_split(split)
        folder = self.root / split
        if (folder / "box").is_dir():
            return sorted(p for p in (folder / "box").iterdir() if p.suffix.lower() in _OCR_SUFFIXES)
        if not folder.is_dir():
            raise FileNotFoundError(
                f"SROIE {split} not found: {folder} is not a folder (root={self.root}; expected "
                f"train/ and test/, each with img/, box/, entities/ or flat <id>.jpg/.txt/.json)"
            )
        return sorted(p for p in folder.glob("*.txt"))

    def image_path(self, ocr: Path) -> Path:
        return find_image(ocr.parent.parent / "img" if self._nested(ocr) else ocr.parent, ocr.stem)

    def entity_path(self, ocr: Path) -> Path:
        if self._nested(ocr):
            folder = ocr.parent.parent / "entities"
            return next(
                (p for s in _ENTITY_SUFFIXES if (p := folder / f"{ocr.stem}{s}").is_file()), folder / f"{ocr.stem}.txt"
            )
        return ocr.with_suffix(".json")

    def dependencies(self, ocr: Path) -> list[Path]:
        return [ocr, self.entity_path(ocr), self.image_path(ocr)]

    # --- parsing ----------------------------------------------------------------------------------
    def _text(self, path: Path, field: str) -> Optional[str]:
        try:
            raw = path.read_bytes()
        except OSError as err:
            reason = "file not found" if isinstance(err, FileNotFoundError) else f"cannot be read ({err})"
            self.repairs.report(str(path), field, reason, "skip the document")
            return None
        try:
            return raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            self.stats["decoded as latin-1"] += 1
            return raw.decode("latin-1")

    def parse_ocr(self, path: Path) -> Optional[tuple[list[str], list[Box], list[int], list[str]]]:
        """``(words, boxes, line_of_word, fields)`` from an OCR file; None when the file is unusable."""
        text = self._text(path, "ocr")
        if text is None:
            return None
        words: list[str] = []
        boxes: list[Box] = []
        line_of: list[int] = []
        fields: list[str] = []
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            parts = line.split(",", 8)
            try:
                if len(parts) < 9:
                    raise ValueError(f"{len(parts)} comma-separated fields")
                coords = [float(v) for v in parts[:8]]
            except ValueError as err:
                self.repairs.report(
                    str(path),
                    f"line {n}",
                    f"expected x1,y1,x2,y2,x3,y3,x4,y4,text ({err}): {line[:60]!r}",
                    "skip the line",
                )
                continue
            line_text = parts[8].strip()
            line_words = line_text.split()
            if not line_words:
                self.stats["empty lines skipped"] += 1
                continue
            line_box = points_to_box(coords[0::2], coords[1::2])
            word_boxes = (
                [line_box] * len(line_words) if self.segment_boxes else split_line_box(line_box, line_words, line_text)
            )
            words += line_words
            boxes += word_boxes
            line_of += [n] * len(line_words)
            fields += [f"line {n}"] * len(line_words)
        self.stats["words"] += len(words)
        return words, boxes, line_of, fields

    def parse_entities(self, path: Path) -> Optional[dict[str, str]]:
        """The key information ``{category: value}`` (only well-formed, known keys); None when unusable."""
        text = self._text(path, "entities")
        if text is None:
            return None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            self.repairs.report(str(path), "entities", f"invalid or truncated JSON ({err})", "skip the document")
            return None
        if not isinstance(data, dict):
            self.repairs.report(
                str(path), "entities", f"not a JSON object but {type(data).__name__}", "skip the document"
            )
            return None
        values = {}
        for key in data:
            if key not in SROIE_CATEGORIES:
                self.repairs.report(
                    str(path), key, f"unknown entity {key!r} (known: {', '.join(SROIE_CATEGORIES)})", "ignore it"
                )
        for key in SROIE_CATEGORIES:
            value = data.get(key)
            if not isinstance(value, str) or not value.strip():
                reason = "missing" if key not in data else f"not a non-empty string: {value!r}"
                self.repairs.report(str(path), key, reason, "leave it unlabelled")
                continue
            values[key] = value
        return values

    def label(self, words: list[str], line_of: list[int], entities: dict[str, str]) -> list[str]:
        """BIO labels of ``words`` from the entity values (counts what does not match)."""
        labels = ["O"] * len(words)
        for key, value in entities.items():
            span = self._choose(key, find_spans(words, value), words, line_of, labels)
            if span is None:
                self.stats["entities not matched"] += 1
                self.stats[f"{key} not matched"] += 1
                continue
            first, last, exact = span
            self.stats["entities matched" if exact else "entities matched inside a word"] += 1
            labels[first] = f"B-{key}"
            for i in range(first + 1, last + 1):
                labels[i] = f"I-{key}"
        return labels

    @staticmethod
    def _choose(
        key: str, spans: list[tuple[int, int, bool]], words: list[str], line_of: list[int], labels: list[str]
    ) -> Optional[tuple[int, int, bool]]:
        free = [s for s in spans if all(labels[i] == "O" for i in range(s[0], s[1] + 1))]
        exact = [s for s in free if s[2]]
        candidates = exact or free
        if not candidates:
            return None
        if key != "total":
            return candidates[0]
        total_lines = {line_of[i] for i, w in enumerate(words) if "TOTAL" in alnum_key(w)}
        on_total_line = [s for s in candidates if line_of[s[0]] in total_lines]
        return (on_total_line or candidates)[-1]

    def read_file(self, ocr: Path) -> Optional[Document]:
        parsed = self.parse_ocr(ocr)
        if parsed is None:
            return None
        words, boxes, line_of, fields = parsed
        if not self.require_words(str(ocr), words):
            return None
        entities = self.parse_entities(self.entity_path(ocr))
        if entities is None:
            return None
        image = self.open_image(self.image_path(ocr), str(ocr))
        if image is None:
            return None
        self.check_boxes(str(ocr), fields, boxes, image.size)
        return Document(
            doc_id=ocr.stem,
            image=image,
            words=words,
            boxes=boxes,
            word_labels=self.label(words, line_of, entities),
            source=str(ocr),
        )


class SROIEHubReader(TaggedHubReader):
    """Reads the hub copy of SROIE through ``datasets`` (see the module docstring; columns and repairs:
    ``readers.hub.TaggedHubReader``).

    Offline with nothing cached, construction fails at once with a ``DataError`` naming the release folder to use.

    Args:
        hub_id: the dataset repository (default ``darentang/sroie``), or a local folder of parquet files.
        revision: see ``readers.hub.HubReader`` (default: the hub's parquet conversion).
        segment_boxes: every word of an entity gets the entity's box (the hub copy has no OCR lines).
        words_column, boxes_column, tags_column, image_column, id_column: column names.
        strict, repairs, max_pixels: see ``Reader``.
    """

    splits = ("train", "test")
    hub_splits = {"train": "train", "test": "test"}
    categories = SROIE_CATEGORIES
    hub_tag_names = ("O", "B-COMPANY", "I-COMPANY", "B-DATE", "I-DATE", "B-ADDRESS", "I-ADDRESS", "B-TOTAL", "I-TOTAL")
    instead = (
        "Read the SROIE task-3 folders instead (train/ and test/, each with img/, box/ and entities/): "
        "`--data.init_args.root /path/to/SROIE` or set DOCALIGN_SROIE."
    )

    def __init__(self, hub_id: str = SROIE_HUB_ID, **kwargs: Any) -> None:
        super().__init__(hub_id, **kwargs)
