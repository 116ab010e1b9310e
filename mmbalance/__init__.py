"""mmbalance: diagnose and fix modality dominance in multimodal PyTorch models."""

from __future__ import annotations

__version__ = "0.1.0"
