from .aet import AETTokenClassification
from .token_classification import TokenClassification

__all__ = ["AETTokenClassification", "TokenClassification"]
