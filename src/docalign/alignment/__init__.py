"""Alignment components that a task system takes as its ``alignment`` argument (see ``aet``).

- ``aet.AETAlignment``: AETNet's alignment encoders, fusion, momentum encoders, queues and DITC/IMC/GLITC/PITA.
- ``views.AlignmentViews``: the augmented second views of page images (training only).
"""

from .aet import AETAlignment, upgrade_checkpoint, upgrade_state_dict
from .views import AlignmentViews

__all__ = ["AETAlignment", "AlignmentViews", "upgrade_checkpoint", "upgrade_state_dict"]
