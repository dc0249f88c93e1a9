"""Dataset readers: raw release folders (and, for CORD, the hub copy) -> ``Document`` records.

Every reader shares one interface (``docalign.data.readers.base.Reader``): ``files(split)`` lists the
samples of a split in a fixed order, ``read(split)`` / ``read_files(keys)`` yield ``Document`` records
lazily, ``repairs`` counts (or, when strict, raises on) bad input and ``stats`` counts known properties
of a release (empty words, unmatched entity values, answers not found).
"""

from .base import Reader
from .classification import (RVL_CDIP_CLASSES, TOBACCO3482_CLASSES, OCRFunction, RVLCDIPReader,
                             Tobacco3482Reader)
from .cord import CORD_HUB_ID, CORD_LABELS, CORDHubReader, CORDReader, check_hub_dataset, parse_cord_ground_truth
from .docvqa import DocVQAPage, DocVQAReader
from .funsd import FUNSD_CATEGORIES, FUNSD_LABELS, FUNSDReader
from .sroie import SROIE_CATEGORIES, SROIE_LABELS, SROIEReader

__all__ = [
    "CORD_HUB_ID", "CORD_LABELS", "CORDHubReader", "CORDReader", "DocVQAPage", "DocVQAReader", "FUNSDReader",
    "FUNSD_CATEGORIES", "FUNSD_LABELS", "OCRFunction", "RVLCDIPReader", "RVL_CDIP_CLASSES", "Reader",
    "SROIEReader", "SROIE_CATEGORIES", "SROIE_LABELS", "TOBACCO3482_CLASSES", "Tobacco3482Reader",
    "check_hub_dataset", "parse_cord_ground_truth",
]
