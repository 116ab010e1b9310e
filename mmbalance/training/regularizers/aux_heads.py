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

import math
from typing import Any, Mapping

import torch
from torch import Tensor, nn

from ...errors import UsageError

__all__ = ["AuxHeads", "build_aux_heads"]


class AuxHeads(nn.Module):
    """``{modality: Linear(D_m, C)}``; ``forward(embeddings) -> {modality: logits}``."""

    def __init__(self, dims: Mapping[str, int], num_classes: int) -> None:
        super().__init__()
        self.heads = nn.ModuleDict({m: nn.Linear(int(d), num_classes) for m, d in dims.items()})

    def forward(self, embeddings: Mapping[str, Tensor]) -> dict[str, Tensor]:
        # an embedding with more than one axis per sample (tokens, frames) is flattened per sample
        return {m: head(embeddings[m].flatten(1)) for m, head in self.heads.items()}


def build_aux_heads(adapter: nn.Module, view: Any = None, probe: Mapping[str, Tensor] | None = None) -> AuxHeads:
    """Heads on the model's device, sized from a built-in model's ``fusion.dims`` or by one forward.

    A plug-in model names its encoders (``--embedding-layer``, a hook ``view``): one forward of
    ``probe`` (a batch of inputs, pass-through inputs included) through ``view`` gives each
    embedding's size per sample and the number of classes.
    """
    model = getattr(adapter, "model", adapter)
    dims = getattr(getattr(model, "fusion", None), "dims", None)
    num_classes = getattr(adapter, "num_classes", None) or getattr(model, "num_classes", None)
    device = next(model.parameters()).device
    if getattr(adapter, "has_embeddings", True) and isinstance(dims, dict) and isinstance(num_classes, int):
        return AuxHeads(dims, num_classes).to(device)
    if view is None or probe is None:
        raise UsageError(f"{type(model).__name__} exposes no per-modality embeddings for auxiliary heads",
                         hint="name each modality's encoder module with --embedding-layer audio=...,visual=...")
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            embeddings, logits = view.encode_with_logits(probe, grad=False)
    finally:
        model.train(was)
    sizes = {m: math.prod(e.shape[1:]) for m, e in embeddings.items()}
    return AuxHeads(sizes, int(num_classes) if isinstance(num_classes, int) else int(logits.shape[1])).to(device)
