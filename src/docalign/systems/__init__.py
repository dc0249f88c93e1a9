from .token_classification import TokenClassification

__all__ = ["TokenClassification"]
