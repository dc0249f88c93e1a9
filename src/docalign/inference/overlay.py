"""A page drawn with its predictions (PIL): coloured, labelled boxes.

Entity labelling: every word box in its entity type's colour (thin; ``O`` words light grey), every entity's box
thicker with its type written above it. Classifiers: the class and its probability in a banner at the top. QA: each
answer's box with its question number. Colours are fixed per type name (a hash into a palette), so one type has one
colour across pages and runs.
"""

from __future__ import annotations

import zlib
from typing import Any

from PIL import Image, ImageDraw, ImageFont

PALETTE = [
    (230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240), (240, 50, 230),
    (128, 128, 0), (0, 128, 128), (170, 110, 40), (128, 0, 0), (0, 0, 128),
]  # fmt: skip
OTHER = (190, 190, 190)


def colour(label: str) -> tuple[int, int, int]:
    """The colour of a type name (stable: crc32 of the name into ``PALETTE``)."""
    return PALETTE[zlib.crc32(label.encode()) % len(PALETTE)]


def _label(draw: ImageDraw.ImageDraw, xy: tuple[int, int], text: str, fill: tuple[int, int, int], font: Any) -> None:
    x, y = xy
    left, top, right, bottom = draw.textbbox((x, y), text, font=font)
    y = max(0, y - (bottom - top) - 2)
    left, top, right, bottom = draw.textbbox((x, y), text, font=font)
    draw.rectangle((left - 1, top - 1, right + 1, bottom + 1), fill=fill)
    draw.text((x, y), text, fill=(255, 255, 255), font=font)


def draw_overlay(image: Image.Image, record: dict[str, Any]) -> Image.Image:
    """A copy of ``image`` (RGB) with the boxes of ``record`` (a page JSON of ``docalign predict``) drawn on it."""
    page = image.convert("RGB")
    draw = ImageDraw.Draw(page)
    font = ImageFont.load_default()
    width = max(1, round(max(page.size) / 500))
    for word in record.get("words", []):
        label = word.get("label", "O")
        kind = label.partition("-")[2] or label
        draw.rectangle(word["box"], outline=OTHER if label == "O" else colour(kind), width=1)
    for entity in record.get("entities", []):
        box = entity["box"]
        draw.rectangle(box, outline=colour(entity["label"]), width=2 * width)
        _label(draw, (box[0], box[1]), f"{entity['label']} {entity['confidence']:.2f}", colour(entity["label"]), font)
    for i, answer in enumerate(record.get("answers", []), 1):
        if answer.get("box"):
            draw.rectangle(answer["box"], outline=colour(f"answer{i}"), width=2 * width)
            _label(draw, (answer["box"][0], answer["box"][1]), f"Q{i}: {answer['answer']}", colour(f"answer{i}"), font)
    document_class = record.get("document_class")
    if document_class:
        text = f"{document_class['label']} {document_class['confidence']:.2f}"
        _label(draw, (4, 4 + 20), text, colour(document_class["label"]), font)
    return page
