"""LayoutLMv2's pre-training corruptions of a collated batch: masked tokens, covered lines, swapped images.

Pure functions of tensors and a ``torch.Generator``: the same generator state gives the same corruption.
Random numbers are drawn on the CPU (then moved), so a seed means the same thing on every device.

- MVLM (``mask_tokens``): each word token (``word_ids >= 0``: never [CLS], [SEP] or padding) is chosen
  with probability ``rate``; a chosen token becomes the mask token (80%), a random token (10%) or stays
  (10%). Boxes are not touched: the model reads the masked token's layout.
- TIA (``text_lines``, ``cover_boxes``): a *line* is a maximal run of consecutive words, in reading order,
  that sit on one text row: a word joins the current line when it starts at or right of the previous
  word's start and its vertical extent overlaps the line's by at least ``min_overlap`` of the smaller
  height. Reading order comes from the OCR / annotation (FUNSD: entity by entity), so a two-line entity
  gives two lines and two entities side by side on one row give one. A line's box is the union of its
  words' boxes. ``cover_boxes`` paints boxes (0-1000) in pixel coordinates: every pixel whose square
  intersects the box (at least one pixel per box).
- TIM (``mismatch_images``): each sample gets another document's image with probability
  ``replace_rate`` (a donor drawn among the batch's samples of *other* documents, so a page is never paired
  with itself, nor with another window of its own document; with no such sample it stays matched), or no
  image with probability ``drop_rate`` (see ``LayoutLMv2Pretraining`` for what "no image" is).
"""

from __future__ import annotations

import torch

from ..conventions import IGNORE_INDEX, PAGE_SCALE

DROPPED = -1  # mismatch_images: the sample's image is dropped


def mask_tokens(
    input_ids: torch.Tensor,
    word_ids: torch.Tensor,
    rate: float,
    mask_token_id: int,
    vocab_size: int,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """MVLM's masking.

    Args:
        input_ids: (B, L) token ids; word_ids: (B, L) word index per token, -1 on special and padding tokens.
        rate: probability that a word token is chosen; mask_token_id: the tokenizer's mask token;
        vocab_size: random replacements are drawn uniformly from ``range(vocab_size)``.
    Returns:
        (corrupted input_ids (B, L), labels (B, L): the original id where chosen, -100 elsewhere).
    """
    shape = input_ids.shape
    chosen = (torch.rand(shape, generator=generator) < rate).to(input_ids.device) & (word_ids >= 0)
    how = torch.rand(shape, generator=generator).to(input_ids.device)
    random_ids = torch.randint(vocab_size, shape, generator=generator).to(input_ids.device)
    labels = torch.where(chosen, input_ids, torch.full_like(input_ids, IGNORE_INDEX))
    corrupted = torch.where(chosen & (how < 0.8), torch.full_like(input_ids, mask_token_id), input_ids)
    corrupted = torch.where(chosen & (how >= 0.8) & (how < 0.9), random_ids, corrupted)
    return corrupted, labels


def text_lines(
    word_ids: torch.Tensor, bbox: torch.Tensor, min_overlap: float = 0.5
) -> tuple[torch.Tensor, torch.Tensor]:
    """The text lines of one window (see the module docstring).

    Args:
        word_ids: (L,) word index per token, -1 on special and padding tokens; bbox: (L, 4) int, 0-1000.
    Returns:
        (line index per token (L,) long, -1 on special and padding tokens; line boxes (N, 4) long, 0-1000).
    """
    words: dict[int, list[int]] = {}  # word index -> its box, in order of first appearance
    for w, box in zip(word_ids.tolist(), bbox.tolist()):
        if w >= 0 and w not in words:
            words[w] = box
    line_of_word: dict[int, int] = {}
    lines: list[list[int]] = []
    previous_x0 = None
    for w, (x0, y0, x1, y1) in words.items():
        if lines:
            lx0, ly0, lx1, ly1 = lines[-1]
            overlap = min(y1, ly1) - max(y0, ly0)
            if x0 >= previous_x0 and overlap >= 0 and overlap >= min_overlap * min(y1 - y0, ly1 - ly0):
                lines[-1] = [min(lx0, x0), min(ly0, y0), max(lx1, x1), max(ly1, y1)]
                line_of_word[w] = len(lines) - 1
                previous_x0 = x0
                continue
        lines.append([x0, y0, x1, y1])
        line_of_word[w] = len(lines) - 1
        previous_x0 = x0
    line_of_token = torch.tensor([line_of_word.get(w, -1) for w in word_ids.tolist()], dtype=torch.long)
    return line_of_token, torch.tensor(lines, dtype=torch.long).reshape(-1, 4)


def box_to_pixels(box: list[int], height: int, width: int) -> tuple[int, int, int, int]:
    """A 0-1000 box -> (row0, row1, col0, col1), half-open: the pixels whose squares intersect the box."""
    x0, y0, x1, y1 = box
    c0, r0 = x0 * width // PAGE_SCALE, y0 * height // PAGE_SCALE
    c1, r1 = -(-x1 * width // PAGE_SCALE), -(-y1 * height // PAGE_SCALE)  # ceiling division
    c0, r0 = min(c0, width - 1), min(r0, height - 1)
    return r0, max(r1, r0 + 1), c0, max(c1, c0 + 1)


def cover_boxes(image: torch.Tensor, boxes: torch.Tensor, fill: float) -> torch.Tensor:
    """A copy of ``image`` (C, H, W) with every box of ``boxes`` (N, 4) int, 0-1000, painted with ``fill``."""
    out = image.clone()
    height, width = image.shape[-2:]
    for box in boxes.tolist():
        r0, r1, c0, c1 = box_to_pixels(box, height, width)
        out[:, r0:r1, c0:c1] = fill
    return out


def mismatch_images(
    doc_index: torch.Tensor, replace_rate: float, drop_rate: float, generator: torch.Generator
) -> torch.Tensor:
    """TIM's negatives: per sample, whose image it gets.

    Args:
        doc_index: (B,) document of each sample (windows of one document share its image).
    Returns:
        (B,) long: ``i`` (its own image: a positive), another sample's index ``j`` with
        ``doc_index[j] != doc_index[i]`` (replaced), or ``DROPPED`` (-1).
    """
    batch = doc_index.shape[0]
    draw = torch.rand(batch, generator=generator)
    pick = torch.rand(batch, generator=generator)
    docs = doc_index.tolist()
    source = list(range(batch))
    for i in range(batch):
        if draw[i] < replace_rate:
            donors = [j for j in range(batch) if docs[j] != docs[i]]
            if donors:  # batch of one, or one document only: stays matched rather than paired with itself
                source[i] = donors[min(int(pick[i] * len(donors)), len(donors) - 1)]
        elif draw[i] < replace_rate + drop_rate:
            source[i] = DROPPED
    return torch.tensor(source, dtype=torch.long)
