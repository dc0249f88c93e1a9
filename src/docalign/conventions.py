"""The conventions every layer shares (the ground floor: this module imports nothing from docalign).

- ``PAGE_SCALE``: boxes are integers on a 0-``PAGE_SCALE`` grid, as in the LayoutLM family.
- ``IGNORE_INDEX``: the target value that losses and metrics skip (PyTorch's cross-entropy default).
- ``PIXEL_MEAN``, ``PIXEL_STD``: the fusion backbones' pixel normalisation, ``(x - mean) / std`` on [0, 1] images
  (LayoutLMv3's processor: 0.5 and 0.5 per channel).
"""

from __future__ import annotations

PAGE_SCALE = 1000
IGNORE_INDEX = -100
PIXEL_MEAN = 0.5
PIXEL_STD = 0.5
