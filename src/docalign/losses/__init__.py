"""Alignment losses: pure functions of embeddings that return named terms (``{"loss_ditc": t}``).

- ``contrastive``: InfoNCE (``L_cl``) and a learnable, clamped temperature.
- ``aet``: AETNet's DITC, IMC, GLITC, PITA, the token -> patch mapping PITA needs, and collapse diagnostics.
- ``supcon``: VLCDoC's supervised inter- and intra-modality contrast.

Cross-rank concatenation (with and without gradients, identity in one process) is ``docalign.distributed``.
"""

from .aet import (
    batch_contrast,
    contrast_chance,
    ditc_loss,
    glitc_loss,
    imc_loss,
    mean_cross_cosine,
    patch_grid_side,
    patch_text_features,
    pita_loss,
    pita_similarity,
    pool_patch_regions,
    token_patch_index,
)
from .contrastive import Temperature, info_nce
from .supcon import sup_contrastive, supcon_inter, supcon_intra, supcon_intra_views

__all__ = [
    "Temperature",
    "batch_contrast",
    "contrast_chance",
    "ditc_loss",
    "glitc_loss",
    "imc_loss",
    "info_nce",
    "mean_cross_cosine",
    "patch_grid_side",
    "patch_text_features",
    "pita_loss",
    "pita_similarity",
    "pool_patch_regions",
    "sup_contrastive",
    "supcon_inter",
    "supcon_intra",
    "supcon_intra_views",
    "token_patch_index",
]
