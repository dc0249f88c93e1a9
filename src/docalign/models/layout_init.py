"""Initial values of new 2-D position (layout) embedding tables.

A layout table has one row per coordinate value (0-1000 after normalisation). Drawn at random, as
Hugging Face initialises them, neighbouring coordinates start unrelated: a warm-started model has to
learn from a few thousand boxes that x=412 is next to x=413, and a coordinate seldom seen in
training keeps its noise at test time. ``sinusoidal`` fills each table with sines and cosines of the
coordinate at geometric frequencies (as Transformer position encodings), scaled to the standard
deviation of the random initialisation, so nearby coordinates start with similar rows and every
coordinate means something from the first step. ``random`` keeps Hugging Face's N(0, 0.02) draw.
Tables loaded from a checkpoint are never touched.
"""

from __future__ import annotations

import torch
from torch import nn

LAYOUT_INITS = ("sinusoidal", "random")


def sinusoidal_table(rows: int, dim: int, std: float = 0.02, max_period: float = 10000.0) -> torch.Tensor:
    """(rows, dim): row p = [sin(p w_0), ..., sin(p w_{k-1}), cos(p w_0), ...] * scale, w_i = max_period^(-2i/dim).

    The first half of the columns are sines, the second half cosines (an odd last column is a sine of the
    slowest frequency); ``scale`` makes the whole table's standard deviation ``std``.
    """
    half = (dim + 1) // 2
    freqs = max_period ** (-torch.arange(half, dtype=torch.float64) * 2 / dim)
    angles = torch.arange(rows, dtype=torch.float64)[:, None] * freqs[None]
    table = torch.cat([angles.sin(), angles.cos()], dim=1)[:, :dim]
    return (table * (std / table.std())).float()


def init_layout_tables(tables: list[nn.Embedding], mode: str, std: float = 0.02) -> None:
    """Fill the given new layout tables according to ``mode`` (see the module docstring)."""
    if mode not in LAYOUT_INITS:
        raise ValueError(f"backbone.layout_init must be one of {LAYOUT_INITS}, got {mode!r}")
    if mode == "random":
        return
    with torch.no_grad():
        for table in tables:
            table.weight.copy_(sinusoidal_table(table.num_embeddings, table.embedding_dim, std))
