"""FUNSD (Jaume et al., 2019): noisy scanned forms, word-level BIO labels.

Raw release layout under ``root``::

    training_data/images/<stem>.png       149 grayscale scans
    training_data/annotations/<stem>.json
    testing_data/images/<stem>.png        50
    testing_data/annotations/<stem>.json

An annotation is ``{"form": [entity, ...]}``; an entity is ``{"id", "label", "text", "box", "words",
"linking"}`` with ``label`` in header/question/answer/other, ``box = [x0, y0, x1, y1]`` in pixels and
``words = [{"text", "box"}, ...]``.

Labelling (the usual FUNSD setup, as in LayoutLM/LayoutLMv3's FUNSD data): the words of a header,
question or answer entity get ``B-<label>`` then ``I-<label>``; the words of an ``other`` entity get
``O``. That gives the 7 tags ``O, B-header, I-header, B-question, I-question, B-answer, I-answer``.
Words whose text is empty or blank (890 in the release) carry nothing to read and are skipped, counted
in ``stats["empty words skipped"]``; an entity left with no words is counted in
``stats["entities without words"]``. ``stats["words"]`` and ``stats["entities"]`` count every word and
entity in the files read (31,485 and 9,743 over the whole release).

Hub copies, read by ``FUNSDHubReader`` (see ``readers.hub.TaggedHubReader`` for the mapping and repairs; splits
train/test): ``nielsr/funsd-layoutlmv3`` (the default: columns ``id``, ``tokens``, ``bboxes`` segment-level on the
0-1000 grid, ``ner_tags`` ClassLabel ``O, B-HEADER, I-HEADER, B-QUESTION, I-QUESTION, B-ANSWER, I-ANSWER``, and
``image``, so boxes become pixels of the image) and ``nielsr/funsd`` (``words`` and word-level ``bboxes`` instead,
and an ``image_path`` string instead of an image: that copy's pages are blank 1000 x 1000 images with the boxes
in 0-1000 units). Tags map to ours by lower-casing the type (``B-HEADER`` -> ``B-header``). The hub copies
drop the empty words and keep no ``other``-entity grouping, so ``stats`` counts differ from the folder's.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Optional

from ..document import Document
from ..labels import bio_label_names, bio_tags
from .base import Box, Reader, find_image, word_text
from .hub import TaggedHubReader

FUNSD_CATEGORIES: tuple[str, ...] = ("header", "question", "answer")
FUNSD_OTHER = "other"
FUNSD_LABELS: list[str] = bio_label_names(FUNSD_CATEGORIES)
FUNSD_FOLDERS = {"train": "training_data", "test": "testing_data"}
FUNSD_HUB_ID = "nielsr/funsd-layoutlmv3"  # or "nielsr/funsd" (word-level boxes, no images)


class FUNSDReader(Reader):
    """Reads the FUNSD release folder (see the module docstring for layout and labelling).

    Args:
        root: the folder holding ``training_data/`` and ``testing_data/``.
        segment_boxes: give every word its entity's box (segment-level layout, as LayoutLMv3 uses)
            instead of its own box.
        strict, repairs, max_pixels: see ``Reader``.
    """

    splits = ("train", "test")

    def __init__(self, root: str | Path, *, segment_boxes: bool = False, **kwargs: Any) -> None:
        super().__init__(root, **kwargs)
        self.segment_boxes = segment_boxes

    def files(self, split: str) -> list[Path]:
        """The split's annotation files, sorted by name."""
        self.check_split(split)
        folder = self.root / FUNSD_FOLDERS[split] / "annotations"
        if not folder.is_dir():
            raise FileNotFoundError(
                f"FUNSD {split} annotations not found: {folder} is not a folder (root={self.root}; "
                f"expected {'/'.join(FUNSD_FOLDERS.values())} with images/ and annotations/)"
            )
        return sorted(folder.glob("*.json"))

    def image_path(self, annotation: Path) -> Path:
        return find_image(annotation.parent.parent / "images", annotation.stem)

    def dependencies(self, annotation: Path) -> list[Path]:
        return [annotation, self.image_path(annotation)]

    def parse(self, path: Path) -> Optional[tuple[list[str], list[Box], list[str], list[str], list[Box]]]:
        """``(words, boxes, labels, fields, word_boxes)`` of one annotation file, without its image; None when skipped.

        ``fields`` names each word's raw location (``form[3].words[2].box``) for error messages. ``word_boxes``: each
        word's own box (with ``segment_boxes``, where ``boxes`` are the entities'; a word whose own box is malformed
        gets its entity's, counted in ``stats["word boxes taken from the entity"]``, not a repair: no model input
        changes); equal to ``boxes`` otherwise.
        """
        where = str(path)
        data = self.read_json(path)
        if data is None:
            return None
        form = data.get("form") if isinstance(data, dict) else None
        if not isinstance(form, list):
            self.repairs.report(where, "form", "missing or not a list of entities", "skip the document")
            return None
        words: list[str] = []
        boxes: list[Box] = []
        labels: list[str] = []
        fields: list[str] = []
        own_boxes: list[Box] = []
        for i, entity in enumerate(form):
            self.stats["entities"] += 1
            if not isinstance(entity, dict):
                self.repairs.report(where, f"form[{i}]", "entity is not an object", "skip the entity")
                continue
            category = self._category(entity, where, i)
            raw_words = entity.get("words")
            if not isinstance(raw_words, list):
                self.repairs.report(where, f"form[{i}].words", "missing or not a list", "skip the entity")
                continue
            entity_box = None
            if "box" in entity or self.segment_boxes:
                entity_box = self.parse_box(entity.get("box"), where, f"form[{i}].box", "use the word boxes")
            kept: list[tuple[str, Box, str]] = []
            kept_own: list[Box] = []
            for j, word in enumerate(raw_words):
                self.stats["words"] += 1
                field = f"form[{i}].words[{j}]"
                text = word_text(
                    word.get("text") if isinstance(word, dict) else None,
                    where,
                    f"{field}.text",
                    self.repairs,
                    self.stats,
                )
                if text is None:
                    continue
                if self.segment_boxes and entity_box is not None:
                    box = entity_box
                    own = _quiet_box(word.get("box") if isinstance(word, dict) else None)
                    if own is None:
                        self.stats["word boxes taken from the entity"] += 1
                    kept_own.append(own or entity_box)
                else:
                    box = self.parse_box(
                        word.get("box"),
                        where,
                        f"{field}.box",
                        "use the entity's box" if entity_box else "skip the word",
                    )
                    box = box or entity_box
                    if box is None:
                        continue
                    kept_own.append(box)
                kept.append((text, box, f"{field}.box"))
            if not kept:
                self.stats["entities without words"] += 1
                continue
            words += [w for w, _, _ in kept]
            boxes += [b for _, b, _ in kept]
            fields += [f for _, _, f in kept]
            own_boxes += kept_own
            labels += bio_tags(category, len(kept))
        if not self.require_words(where, words):
            return None
        return words, boxes, labels, fields, own_boxes

    def _category(self, entity: dict, where: str, i: int) -> Optional[str]:
        """The entity's category (None for ``other`` and for repaired labels, i.e. tag ``O``)."""
        label = entity.get("label")
        if label == FUNSD_OTHER:
            return None
        if label in FUNSD_CATEGORIES:
            return label
        reason = "missing" if label is None else f"unknown label {label!r} (known: header, question, answer, other)"
        self.repairs.report(where, f"form[{i}].label", reason, "label its words 'O'")
        return None

    def read_file(self, path: Path) -> Optional[Document]:
        parsed = self.parse(path)
        if parsed is None:
            return None
        words, boxes, labels, fields, own_boxes = parsed
        image = self.open_image(self.image_path(path), str(path))
        if image is None:
            return None
        self.check_boxes(str(path), fields, boxes, image.size)
        return Document(
            doc_id=path.stem,
            image=image,
            words=words,
            boxes=boxes,
            word_labels=labels,
            source=str(path),
            word_boxes=own_boxes if self.segment_boxes else None,
        )


def _quiet_box(value: Any) -> Optional[Box]:
    """``[x0, y0, x1, y1]`` as 4 finite floats, or None (not reported: the caller has a fallback)."""
    if isinstance(value, (list, tuple)) and len(value) == 4:
        try:
            box = tuple(float(v) for v in value)
        except (TypeError, ValueError):
            return None
        if all(math.isfinite(v) for v in box):
            return box  # type: ignore[return-value]
    return None


class FUNSDHubReader(TaggedHubReader):
    """Reads a hub copy of FUNSD through ``datasets`` (see the module docstring; columns and repairs:
    ``readers.hub.TaggedHubReader``).

    Offline (``HF_HUB_OFFLINE=1``) with nothing cached, construction fails at once with a ``DataError`` that says
    what could not be fetched and how to read the release folder instead.

    Args:
        hub_id: the dataset repository (default ``nielsr/funsd-layoutlmv3``; ``nielsr/funsd`` works too), or a local
            folder of parquet files.
        revision: see ``readers.hub.HubReader`` (default: the hub's parquet conversion).
        segment_boxes: every word of an entity gets the entity's box (the union of its words' boxes).
        words_column, boxes_column, tags_column, image_column, id_column: column names (``words_column`` None:
            ``tokens`` when present, else ``words``).
        strict, repairs, max_pixels: see ``Reader``.
    """

    splits = ("train", "test")
    hub_splits = {"train": "train", "test": "test"}
    categories = FUNSD_CATEGORIES
    hub_tag_names = ("O", "B-HEADER", "I-HEADER", "B-QUESTION", "I-QUESTION", "B-ANSWER", "I-ANSWER")
    instead = (
        "Read the raw FUNSD release folder instead (training_data/ and testing_data/ with images/ and "
        "annotations/): `--data.init_args.root /path/to/FUNSD` or set DOCALIGN_FUNSD."
    )

    def __init__(self, hub_id: str = FUNSD_HUB_ID, **kwargs: Any) -> None:
        super().__init__(hub_id, **kwargs)
