"""Dataset readers: raw release folders and hub copies (CORD, FUNSD, SROIE, RVL-CDIP, DocVQA, Tobacco-3482,
Kleister-NDA) ->
``Document`` records.

Every reader shares one interface (``docalign.data.readers.base.Reader``): ``files(split)`` lists the
samples of a split in a fixed order, ``read(split)`` / ``read_files(keys)`` yield ``Document`` records
lazily, ``repairs`` counts (or, when strict, raises on) bad input and ``stats`` counts known properties
of a release (empty words, unmatched entity values, answers not found).
"""

from .base import Reader
from .classification import (
    RVL_CDIP_CLASSES,
    RVL_CDIP_HUB_ID,
    TOBACCO3482_CLASSES,
    TOBACCO3482_HUB_ID,
    LabelledHubRow,
    OCRFunction,
    RVLCDIPHubReader,
    RVLCDIPReader,
    Tobacco3482HubReader,
    Tobacco3482Reader,
)
from .cord import CORD_HUB_ID, CORD_LABELS, CORDHubReader, CORDReader, check_hub_dataset, parse_cord_ground_truth
from .docvqa import DOCVQA_HUB_ID, DocVQAHubPage, DocVQAHubReader, DocVQAPage, DocVQAReader
from .funsd import FUNSD_CATEGORIES, FUNSD_HUB_ID, FUNSD_LABELS, FUNSDHubReader, FUNSDReader
from .hub import HubReader, HubRow, TaggedHubReader
from .kleister import KLEISTER_KEYS, KleisterNDAReader, KleisterRow
from .sroie import SROIE_CATEGORIES, SROIE_HUB_ID, SROIE_LABELS, SROIEHubReader, SROIEReader

__all__ = [
    "CORD_HUB_ID",
    "CORD_LABELS",
    "CORDHubReader",
    "CORDReader",
    "DOCVQA_HUB_ID",
    "DocVQAHubPage",
    "DocVQAHubReader",
    "DocVQAPage",
    "DocVQAReader",
    "FUNSDHubReader",
    "LabelledHubRow",
    "TOBACCO3482_HUB_ID",
    "Tobacco3482HubReader",
    "FUNSDReader",
    "FUNSD_CATEGORIES",
    "FUNSD_HUB_ID",
    "FUNSD_LABELS",
    "HubReader",
    "KLEISTER_KEYS",
    "KleisterNDAReader",
    "KleisterRow",
    "HubRow",
    "OCRFunction",
    "RVLCDIPHubReader",
    "RVLCDIPReader",
    "RVL_CDIP_CLASSES",
    "RVL_CDIP_HUB_ID",
    "Reader",
    "SROIEHubReader",
    "SROIEReader",
    "SROIE_CATEGORIES",
    "SROIE_HUB_ID",
    "SROIE_LABELS",
    "TOBACCO3482_CLASSES",
    "TaggedHubReader",
    "Tobacco3482Reader",
    "check_hub_dataset",
    "parse_cord_ground_truth",
]
