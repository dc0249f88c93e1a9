"""The conventions every layer shares (the ground floor: this module imports nothing from docalign).

- ``PAGE_SCALE``: boxes are integers on a 0-``PAGE_SCALE`` grid, as in the LayoutLM family.
- ``IGNORE_INDEX``: the target value that losses and metrics skip (PyTorch's cross-entropy default).
- ``PIXEL_MEAN``, ``PIXEL_STD``: the fusion backbones' pixel normalisation, ``(x - mean) / std`` on [0, 1] images
  (LayoutLMv3's processor: 0.5 and 0.5 per channel).
- ``MAX_PAGE_PIXELS``: the most pixels (width x height) a page image may have, decoded or rendered from a PDF, in
  the data layer and in ``docalign ocr``: a 600-dpi A4 scan is 4960 x 7016 = 34.8 M pixels; twice that is still a
  page, not a decompression bomb or a 14,400-point PDF page (1.6 G pixels at 200 dpi).
"""

from __future__ import annotations

PAGE_SCALE = 1000
IGNORE_INDEX = -100
PIXEL_MEAN = 0.5
PIXEL_STD = 0.5
MAX_PAGE_PIXELS = 80_000_000
