from .doc_classification import DocumentClassification
from .extractive_qa import ExtractiveQA
from .pretraining_v2 import LayoutLMv2Pretraining
from .token_classification import TokenClassification
from .vlcdoc import VLCDocClassification

__all__ = [
    "DocumentClassification",
    "ExtractiveQA",
    "LayoutLMv2Pretraining",
    "TokenClassification",
    "VLCDocClassification",
]
