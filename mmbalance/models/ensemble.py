"""Unimodal ensemble: late fusion of separately trained unimodal models (registered as ``ensemble``).

Each member is a :class:`~mmbalance.models.unimodal.UnimodalModel` reading one modality.
The ensemble averages the members' softmax probabilities (``combine="softmax"``, the
default) and returns their logarithm, ``log(mean_k softmax(z_k))``, as its logits, so
the argmax is the averaged prediction and cross-entropy is the ensemble's log loss;
``combine="logits"`` averages the raw logits instead. Nothing is trained jointly.

Example:
    >>> import torch
    >>> from mmbalance.models.ensemble import ensemble
    >>> m = ensemble(num_classes=3, members=[{"modality": "audio"}, {"modality": "visual"}])
    >>> m.modalities
    ('audio', 'visual')
    >>> m(torch.randn(2, 1, 16, 16), torch.randn(2, 3, 2, 16, 16)).exp().sum(1).round(decimals=4).tolist()
    [1.0, 1.0]
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import torch
from torch import Tensor, nn

from ..errors import ModelError
from ._registry import register_model
from .unimodal import UnimodalModel, unimodal

__all__ = ["COMBINES", "EnsembleModel", "ensemble"]

COMBINES = ("softmax", "logits")


class EnsembleModel(nn.Module):
    """Average of unimodal members (``forward(*inputs)`` in ``modalities`` order)."""

    def __init__(self, members: Sequence[UnimodalModel], combine: str = "softmax") -> None:
        super().__init__()
        if not members:
            raise ModelError("an ensemble needs at least one member")
        if combine not in COMBINES:
            raise ModelError(f"unknown ensemble combine {combine!r}", hint=f"use one of {', '.join(COMBINES)}")
        mods = [m.modalities[0] for m in members]
        if len(set(mods)) != len(mods):
            raise ModelError(f"ensemble members repeat a modality: {', '.join(mods)}")
        self.members = nn.ModuleList(members)
        self.modalities: tuple[str, ...] = tuple(mods)
        self.combine = combine
        self.num_classes = members[0].num_classes

    def member_logits(self, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Each member's own logits ``{modality: (B, C)}``."""
        return {m: member(inputs[m]) for m, member in zip(self.modalities, self.members)}

    def forward(self, *inputs: Tensor) -> Tensor:
        if len(inputs) != len(self.modalities):
            raise ModelError(f"the ensemble takes {len(self.modalities)} inputs ({', '.join(self.modalities)}), "
                             f"got {len(inputs)}")
        parts = list(self.member_logits(dict(zip(self.modalities, inputs))).values())
        if self.combine == "logits":
            return torch.stack(parts).mean(0)
        logp = torch.stack([torch.log_softmax(z.float(), dim=1) for z in parts])
        return torch.logsumexp(logp, dim=0) - math.log(len(parts))


@register_model("ensemble")
def ensemble(num_classes: int, members: Sequence[Mapping[str, Any]] = (), combine: str = "softmax") -> EnsembleModel:
    """Late fusion of unimodal models; ``members``: ``[{"base": "av-tiny", "modality": "audio"}, ...]``."""
    if not members or not all(isinstance(m, Mapping) for m in members):
        raise ModelError("the ensemble needs members=[{\"modality\": ...}, ...]",
                         hint='e.g. --model-arg \'members=[{"modality":"audio"},{"modality":"visual"}]\'')
    return EnsembleModel([unimodal(num_classes, **dict(m)) for m in members], combine=combine)
