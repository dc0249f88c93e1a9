"""A confusion matrix drawn as an image for TensorBoard (``add_image``), without a plotting library."""

from __future__ import annotations

import torch


def confusion_image(confusion: torch.Tensor, cell: int = 12) -> torch.Tensor:
    """(C, C) counts (rows gold, columns predicted) -> a (3, C*cell, C*cell) float image in [0, 1].

    Each row is normalised by its number of documents (a row without documents stays black): the diagonal
    cells are green (recall of the class), the off-diagonal ones red (where the class's documents went).
    """
    counts = confusion.double()
    rates = counts / counts.sum(1, keepdim=True).clamp(min=1)
    eye = torch.eye(len(rates), dtype=torch.bool)
    image = torch.zeros(3, *rates.shape, dtype=torch.float64)
    image[1] = torch.where(eye, rates, 0.0)
    image[0] = torch.where(eye, 0.0, rates)
    image = image.repeat_interleave(cell, 1).repeat_interleave(cell, 2)
    image[:, ::cell, :] = 0.25  # grid lines
    image[:, :, ::cell] = 0.25
    return image.float()
