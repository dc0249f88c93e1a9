"""docalign: layout-aware document models fine-tuned with cross-modal alignment objectives."""

__version__ = "0.1.0"
