from .aet import AETDocumentClassification, AETTokenClassification
from .doc_classification import DocumentClassification
from .extractive_qa import ExtractiveQA
from .pretraining_v2 import LayoutLMv2Pretraining
from .token_classification import TokenClassification

__all__ = ["AETDocumentClassification", "AETTokenClassification", "DocumentClassification", "ExtractiveQA",
           "LayoutLMv2Pretraining", "TokenClassification"]
