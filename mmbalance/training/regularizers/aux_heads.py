"""Unimodal auxiliary heads: a Linear classifier on each modality's embedding.

They give every encoder a supervised signal of its own, which the fused loss does not
when one modality dominates (G-Blend's unimodal heads; ``--aux-heads`` for the other
methods). The heads train with the model but are not part of it: ``best.pt`` stays the
plain model, the heads live in ``resume.pt``.

Example:
    >>> import torch
    >>> heads = AuxHeads({"audio": 4, "visual": 4}, num_classes=3)
    >>> {m: tuple(z.shape) for m, z in heads({"audio": torch.randn(2, 4), "visual": torch.randn(2, 4)}).items()}
    {'audio': (2, 3), 'visual': (2, 3)}
"""

from __future__ import annotations

from typing import Mapping

from torch import Tensor, nn

from ...errors import UsageError

__all__ = ["AuxHeads", "build_aux_heads"]


class AuxHeads(nn.Module):
    """``{modality: Linear(D_m, C)}``; ``forward(embeddings) -> {modality: logits}``."""

    def __init__(self, dims: Mapping[str, int], num_classes: int) -> None:
        super().__init__()
        self.heads = nn.ModuleDict({m: nn.Linear(int(d), num_classes) for m, d in dims.items()})

    def forward(self, embeddings: Mapping[str, Tensor]) -> dict[str, Tensor]:
        return {m: head(embeddings[m]) for m, head in self.heads.items()}


def build_aux_heads(adapter: nn.Module) -> AuxHeads:
    """Heads sized from a built-in model's fusion head (``fusion.dims``), on the model's device."""
    model = getattr(adapter, "model", adapter)
    dims = getattr(getattr(model, "fusion", None), "dims", None)
    num_classes = getattr(adapter, "num_classes", None) or getattr(model, "num_classes", None)
    if not getattr(adapter, "has_embeddings", True) or not isinstance(dims, dict) or not isinstance(num_classes, int):
        raise UsageError(f"{type(model).__name__} exposes no per-modality embeddings for auxiliary heads",
                         hint="unimodal auxiliary heads (--aux-heads, gblend) need a built-in model")
    device = next(model.parameters()).device
    return AuxHeads(dims, num_classes).to(device)
