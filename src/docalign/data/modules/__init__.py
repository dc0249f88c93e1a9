"""The DataModules, one file per kind; all are exported from ``docalign.data`` (``docalign.data.CORD``).

- ``base``: ``DocumentDataModule`` (what every DataModule shares) and ``ReleaseDataModule`` (release folders,
  hub copies, the encoded-split cache).
- ``synthetic``: ``SyntheticReceipts``, the offline default.
- ``entities``: word tagging: ``FUNSD``, ``CORD``, ``SROIE``.
- ``classification``: document classification: ``RVLCDIP``, ``Tobacco3482``.
- ``qa``: extractive question answering: ``DocVQA``.
- ``kleister``: key information extraction from long multi-page documents: ``KleisterNDA``.
"""

from .base import DocumentDataModule, ReleaseDataModule, carve_validation
from .classification import RVLCDIP, ClassificationDataModule, Tobacco3482
from .entities import CORD, FUNSD, SROIE, EntityDataModule
from .kleister import KleisterNDA
from .qa import DocVQA
from .synthetic import SyntheticReceipts

__all__ = [
    "CORD",
    "FUNSD",
    "RVLCDIP",
    "SROIE",
    "ClassificationDataModule",
    "DocVQA",
    "DocumentDataModule",
    "EntityDataModule",
    "KleisterNDA",
    "ReleaseDataModule",
    "SyntheticReceipts",
    "Tobacco3482",
    "carve_validation",
]
