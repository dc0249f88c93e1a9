"""Documents, readers, encoding and the DataModules (``docalign.data.modules``, exported here: ``docalign.data.CORD``)."""

from .modules import (
    CORD,
    FUNSD,
    RVLCDIP,
    SROIE,
    ClassificationDataModule,
    DocumentDataModule,
    DocVQA,
    EntityDataModule,
    KleisterNDA,
    ReleaseDataModule,
    SyntheticReceipts,
    Tobacco3482,
    carve_validation,
)

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
