"""Alignment losses: pure functions of embeddings that return named terms (``{"loss_ditc": t}``).

- ``contrastive``: InfoNCE (``L_cl``) and a learnable, clamped temperature.
- ``aet``: AETNet's DITC, IMC, GLITC, PITA and the token -> patch mapping PITA needs.
- ``supcon``: VLCDoC's supervised inter- and intra-modality contrast.

Cross-rank concatenation (with and without gradients, identity in one process) is ``docalign.distributed``.
"""

from .aet import (
    ditc_loss,
    glitc_loss,
    imc_loss,
    patch_grid_side,
    patch_text_features,
    pita_loss,
    pool_patch_regions,
    token_patch_index,
)
from .contrastive import Temperature, info_nce
from .supcon import sup_contrastive, supcon_inter, supcon_intra, supcon_intra_views

__all__ = [
    "Temperature",
    "ditc_loss",
    "glitc_loss",
    "imc_loss",
    "info_nce",
    "patch_grid_side",
    "patch_text_features",
    "pita_loss",
    "pool_patch_regions",
    "sup_contrastive",
    "supcon_inter",
    "supcon_intra",
    "supcon_intra_views",
    "token_patch_index",
]
